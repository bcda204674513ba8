// One instance's log file: the child's stdout and stderr plus the supervisor's own
// records, written in order, rotated by size without splitting lines, and mirrored
// in a small in-memory tail so a crash report can quote the last lines even when
// the disk is full. (Longer than ~250 lines because the ring buffer belongs to it.)

import { EventEmitter } from 'node:events';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface RotatingLogOptions {
  file: string;
  /** A file never grows past this; the writer rotates first. */
  maxBytes: number;
  /** Rotated files kept: file.1 (newest) … file.keep (oldest). 0 keeps none. */
  keep: number;
  /** Size of the in-memory tail that tail() reads; default 64 KiB. */
  tailBytes?: number;
  /** write() returns false once this much is queued; 'drain' follows when it falls below. Default 1 MiB. */
  highWaterBytes?: number;
  /** Timestamps for lastWriteAt; default Date.now. */
  now?: () => number;
}

const NEWLINE = 0x0a;

/**
 * Writes a child's output to a size-rotated file. Events: 'drain' (the queue fell
 * below the high-water mark after write() returned false) and 'error' (an fs error,
 * once per distinct errno; emitted only when someone listens, so it never crashes
 * the daemon). Chunks passed to write() are kept by reference until written.
 */
export class RotatingLog extends EventEmitter {
  readonly file: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #highWaterBytes: number;
  readonly #now: () => number;
  readonly #ring: ByteRing;

  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #needDrain = false;
  #started = false;
  #closing: Promise<void> | null = null;
  #pumping = false;
  #idle: Promise<void> = Promise.resolve();

  #handle: FileHandle | null = null;
  #fileSize = 0;
  #fileEndsWithNewline = true;
  #streamEndsWithNewline = true;

  #bytesWritten = 0;
  #bytesDropped = 0;
  #lastWriteAt: number | null = null;
  readonly #reportedErrnos = new Set<string>();

  constructor({ file, maxBytes, keep, tailBytes = 64 * 1024, highWaterBytes = 1024 * 1024, now = Date.now }: RotatingLogOptions) {
    super();
    validateCount({ name: 'maxBytes', value: maxBytes, min: 1 });
    validateCount({ name: 'keep', value: keep, min: 0 });
    validateCount({ name: 'tailBytes', value: tailBytes, min: 0 });
    validateCount({ name: 'highWaterBytes', value: highWaterBytes, min: 1 });
    this.file = file;
    this.#maxBytes = maxBytes;
    this.#keep = keep;
    this.#highWaterBytes = highWaterBytes;
    this.#now = now;
    this.#ring = new ByteRing(tailBytes);
  }

  /** Bytes handed to write() and appendRecord(), whether or not they reached the disk. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** Bytes that never reached the file: fs errors, or written after close(). */
  get bytesDropped(): number {
    return this.#bytesDropped;
  }

  /** When the child last wrote (appendRecord does not count); null before its first output. */
  get lastWriteAt(): number | null {
    return this.#lastWriteAt;
  }

  /** Creates the log directory and opens the file for append; rejects if that fails. */
  async open(): Promise<void> {
    if (this.#started) throw new Error(`RotatingLog for ${this.file} was already opened`);
    try {
      await this.#openFile();
    } catch (err) {
      // Later writes retry the open; the ring keeps working meanwhile.
      const errno = errnoOf(err);
      if (errno !== undefined) this.#reportedErrnos.add(errno);
      throw err;
    } finally {
      this.#started = true;
      this.#kick();
    }
  }

  /** Queues child output; false means "pause the pipe until 'drain'". Never throws on fs errors. */
  write(chunk: Buffer): boolean {
    this.#lastWriteAt = this.#now();
    return this.#accept(chunk);
  }

  /** Writes a supervisor line (e.g. "[supervisor] exited with code 1") on a line of its own. */
  appendRecord(text: string): void {
    const line = text.endsWith('\n') ? text : `${text}\n`;
    this.#accept(Buffer.from(this.#streamEndsWithNewline ? line : `\n${line}`));
  }

  /** The last n lines seen (the oldest may be cut short by the ring's size). */
  tail(n: number): string[] {
    if (n <= 0) return [];
    const lines = this.#ring.contents().toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-n).map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  }

  /** Resolves once everything queued so far is in the file (or dropped on an fs error). */
  async flush(): Promise<void> {
    while (this.#pumping) await this.#idle;
  }

  /** Flushes and closes the file; later writes only reach the tail. */
  close(): Promise<void> {
    this.#closing ??= this.#closeNow();
    return this.#closing;
  }

  async #closeNow(): Promise<void> {
    await this.flush();
    // Never opened: what was queued has nowhere to go.
    this.#bytesDropped += this.#queuedBytes;
    this.#queue = [];
    this.#queuedBytes = 0;
    const handle = this.#handle;
    this.#handle = null;
    if (handle) await this.#guardFs(() => handle.close());
  }

  #accept(chunk: Buffer): boolean {
    if (chunk.length === 0) return !this.#needDrain;
    this.#ring.push(chunk);
    this.#bytesWritten += chunk.length;
    this.#streamEndsWithNewline = chunk[chunk.length - 1] === NEWLINE;
    if (this.#closing) {
      this.#bytesDropped += chunk.length;
      return true;
    }
    this.#queue.push(chunk);
    this.#queuedBytes += chunk.length;
    this.#kick();
    if (this.#queuedBytes >= this.#highWaterBytes) this.#needDrain = true;
    return !this.#needDrain;
  }

  #kick(): void {
    if (!this.#started || this.#pumping || this.#queue.length === 0) return;
    this.#pumping = true;
    this.#idle = this.#pump();
  }

  async #pump(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        const data = batch.length === 1 ? batch[0] : Buffer.concat(batch);
        await this.#writeData(data);
        this.#queuedBytes -= data.length;
        if (this.#needDrain && this.#queuedBytes < this.#highWaterBytes) {
          this.#needDrain = false;
          this.emit('drain');
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Writes data, rotating as often as needed; on an fs error drops the rest of it. */
  async #writeData(data: Buffer): Promise<void> {
    let offset = 0;
    const written = await this.#guardFs(async () => {
      while (offset < data.length) {
        if (!this.#handle) await this.#openFile();
        const space = Math.max(0, this.#maxBytes - this.#fileSize);
        if (data.length - offset <= space) {
          await this.#writeAll(data.subarray(offset));
          offset = data.length;
          return;
        }
        const cut = this.#chooseCut({ data, offset, space });
        if (cut > 0) await this.#writeAll(data.subarray(offset, offset + cut));
        offset += cut;
        await this.#rotate();
      }
    });
    if (!written) this.#bytesDropped += data.length - offset;
  }

  /** How much of data[offset…] goes into the current file before rotating. */
  #chooseCut({ data, offset, space }: { data: Buffer; offset: number; space: number }): number {
    const lastFittingNewline = space > 0 ? data.lastIndexOf(NEWLINE, offset + space - 1) : -1;
    if (lastFittingNewline >= offset) return lastFittingNewline + 1 - offset;
    // No line end fits. If the file ends on a line boundary, start the line in a fresh
    // file; otherwise (a line longer than maxBytes, or already split) fill up to the limit.
    if (this.#fileSize > 0 && this.#fileEndsWithNewline) return 0;
    return space;
  }

  async #writeAll(buf: Buffer): Promise<void> {
    const handle = this.#handle!;
    for (let done = 0; done < buf.length; ) {
      const { bytesWritten } = await handle.write(buf, done, buf.length - done);
      done += bytesWritten;
      this.#fileSize += bytesWritten;
    }
    this.#fileEndsWithNewline = buf[buf.length - 1] === NEWLINE;
  }

  /** file.(keep-1) → file.keep … file → file.1, then a fresh file. */
  async #rotate(): Promise<void> {
    const handle = this.#handle!;
    this.#handle = null;
    await handle.close();
    if (this.#keep === 0) {
      await ignoreEnoent(() => unlink(this.file));
    } else {
      for (let i = this.#keep - 1; i >= 1; i--) {
        await ignoreEnoent(() => rename(`${this.file}.${i}`, `${this.file}.${i + 1}`));
      }
      await ignoreEnoent(() => rename(this.file, `${this.file}.1`));
    }
    await this.#openFile();
  }

  async #openFile(): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true });
    // 'a+' rather than 'a': the last byte is read back to know whether the file ends mid-line.
    const handle = await open(this.file, 'a+');
    const { size } = await handle.stat();
    let endsWithNewline = true;
    if (size > 0) {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, size - 1);
      endsWithNewline = last[0] === NEWLINE;
    }
    this.#handle = handle;
    this.#fileSize = size;
    this.#fileEndsWithNewline = endsWithNewline;
  }

  /** Runs an fs operation; an errno error is reported once per errno and yields false. */
  async #guardFs(operation: () => Promise<void>): Promise<boolean> {
    try {
      await operation();
      return true;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === undefined) throw err;
      if (!this.#reportedErrnos.has(errno)) {
        this.#reportedErrnos.add(errno);
        if (this.listenerCount('error') > 0) this.emit('error', err);
      }
      return false;
    }
  }
}

/** The last `capacity` bytes pushed, in a fixed buffer. */
class ByteRing {
  readonly #buf: Buffer;
  #start = 0;
  #length = 0;
  #overflowed = false;

  constructor(capacity: number) {
    this.#buf = Buffer.alloc(capacity);
  }

  push(chunk: Buffer): void {
    const cap = this.#buf.length;
    if (cap === 0) return;
    const src = chunk.length > cap ? chunk.subarray(chunk.length - cap) : chunk;
    const end = (this.#start + this.#length) % cap;
    const first = Math.min(src.length, cap - end);
    src.copy(this.#buf, end, 0, first);
    if (first < src.length) src.copy(this.#buf, 0, first);
    const total = this.#length + src.length;
    if (total > cap || src !== chunk) this.#overflowed = true;
    this.#start = total > cap ? (this.#start + total - cap) % cap : this.#start;
    this.#length = Math.min(total, cap);
  }

  /** A copy of the contents, oldest first, without a UTF-8 sequence cut at the front. */
  contents(): Buffer {
    const cap = this.#buf.length;
    const head = this.#buf.subarray(this.#start, Math.min(this.#start + this.#length, cap));
    const wrapped = this.#buf.subarray(0, Math.max(0, this.#start + this.#length - cap));
    const all = Buffer.concat([head, wrapped]);
    let skip = 0;
    // After overflow the oldest byte may sit inside a multi-byte character: drop continuation bytes.
    while (this.#overflowed && skip < all.length && skip < 3 && (all[skip] & 0xc0) === 0x80) skip++;
    return all.subarray(skip);
  }
}

async function ignoreEnoent(operation: () => Promise<void>): Promise<void> {
  try {
    await operation();
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}

function validateCount({ name, value, min }: { name: string; value: number; min: number }): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`RotatingLog option ${name} must be an integer >= ${min}, received ${value}`);
  }
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
