// One instance's log file: the child's stdout and stderr plus the supervisor's own
// records, written in order, rotated by size without splitting lines, and mirrored
// in a small in-memory tail so a crash report can quote the last lines even when
// the disk is full. (Longer than ~250 lines because the ring buffer and the batch
// cursor that feeds writev belong to it.)

import { EventEmitter } from 'node:events';
import { writev } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { makeDirectories } from '../fs/directories.ts';
import { dirname } from 'node:path';

export interface RotatingLogOptions {
  file: string;
  /** A file never grows past this; the writer rotates first. */
  maxBytes: number;
  /** Rotated files kept: file.1 (newest) … file.keep (oldest). 0 keeps none. */
  keep: number;
  /** Size of the in-memory tail that tail() reads; default 64 KiB. */
  tailBytes?: number;
  /** write() returns false once this much is queued; 'drain' follows when it falls below. Default 8 MiB. */
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
 *
 * Hot path: write() only queues the chunk. The pump takes the whole queue as one
 * batch, copies just the batch's last tailBytes into the ring, and hands the chunks
 * to writev() as they are (split only where the file must rotate), so each byte is
 * copied by the kernel alone.
 */
export class RotatingLog extends EventEmitter {
  readonly file: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  readonly #highWaterBytes: number;
  readonly #now: () => number;
  readonly #ring: ByteRing;

  /** Accepted chunks the pump has not taken yet; their bytes are not in the ring yet either (see #queueInRing). */
  #queue: Buffer[] = [];
  #queueBytes = 0;
  /** close() copied #queue into the ring already (later chunks go straight to the ring). */
  #queueInRing = false;
  /** Bytes of the batch being written; with #queueBytes what counts against the high-water mark. */
  #inFlightBytes = 0;
  /** Bytes of the batch being written that reached the file. */
  #batchWritten = 0;
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

  constructor({ file, maxBytes, keep, tailBytes = 64 * 1024, highWaterBytes = 8 * 1024 * 1024, now = Date.now }: RotatingLogOptions) {
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
    const contents = this.#queueInRing ? this.#ring.contents() : this.#ring.contents(this.#queue, this.#queueBytes);
    const lines = contents.toString('utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-n).map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  }

  /** Resolves once everything queued so far is in the file (or dropped on an fs error). */
  async flush(): Promise<void> {
    while (this.#pumping) await this.#idle;
  }

  /** Flushes and closes the file; later writes only reach the tail. */
  close(): Promise<void> {
    if (!this.#closing) {
      // Chunks written from now on go straight to the ring: the queued ones must be there first.
      this.#queueToRing();
      this.#closing = this.#closeNow();
    }
    return this.#closing;
  }

  async #closeNow(): Promise<void> {
    await this.flush();
    // Never opened: what was queued has nowhere to go.
    this.#bytesDropped += this.#queueBytes;
    this.#queue = [];
    this.#queueBytes = 0;
    const handle = this.#handle;
    this.#handle = null;
    if (handle) await this.#guardFs(() => handle.close());
  }

  #accept(chunk: Buffer): boolean {
    const length = chunk.length;
    if (length === 0) return !this.#needDrain;
    this.#bytesWritten += length;
    this.#streamEndsWithNewline = chunk[length - 1] === NEWLINE;
    if (this.#closing) {
      this.#ring.push([chunk], length);
      this.#bytesDropped += length;
      return true;
    }
    this.#queue.push(chunk);
    this.#queueBytes += length;
    if (!this.#pumping) this.#kick();
    if (this.#queueBytes + this.#inFlightBytes >= this.#highWaterBytes) this.#needDrain = true;
    return !this.#needDrain;
  }

  /** Copies the tail of the queue into the ring (once per queue). */
  #queueToRing(): void {
    if (this.#queueInRing) return;
    this.#ring.push(this.#queue, this.#queueBytes);
    this.#queueInRing = true;
  }

  #kick(): void {
    if (!this.#started || this.#pumping || this.#queue.length === 0) return;
    this.#pumping = true;
    this.#idle = this.#pump();
  }

  async #pump(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        // The whole queue is one batch: its tail goes to the ring now, its bytes to the file below.
        this.#queueToRing();
        const batch = this.#queue;
        const bytes = this.#queueBytes;
        this.#queue = [];
        this.#queueBytes = 0;
        this.#queueInRing = false;
        this.#inFlightBytes = bytes;
        await this.#writeBatch(batch, bytes);
        this.#inFlightBytes = 0;
        if (this.#needDrain && this.#queueBytes < this.#highWaterBytes) {
          this.#needDrain = false;
          this.emit('drain');
        }
      }
    } finally {
      this.#inFlightBytes = 0;
      this.#pumping = false;
    }
  }

  /** Writes a batch, rotating as often as needed; on an fs error drops the rest of it. */
  async #writeBatch(chunks: Buffer[], bytes: number): Promise<void> {
    const batch = new Batch(chunks, bytes);
    this.#batchWritten = 0;
    const written = await this.#guardFs(async () => {
      while (batch.remaining > 0) {
        if (!this.#handle) await this.#openFile();
        const space = Math.max(0, this.#maxBytes - this.#fileSize);
        if (batch.remaining <= space) {
          const length = batch.remaining;
          await this.#writeAll(batch.take(length), length);
          return;
        }
        const cut = this.#chooseCut(batch, space);
        if (cut > 0) await this.#writeAll(batch.take(cut), cut);
        await this.#rotate();
      }
    });
    if (!written) this.#bytesDropped += bytes - this.#batchWritten;
  }

  /** How many of the batch's next bytes go into the current file before rotating. */
  #chooseCut(batch: Batch, space: number): number {
    const throughLastFittingNewline = space > 0 ? batch.throughLastNewline(space) : 0;
    if (throughLastFittingNewline > 0) return throughLastFittingNewline;
    // No line end fits. If the file ends on a line boundary, start the line in a fresh
    // file; otherwise (a line longer than maxBytes, or already split) fill up to the limit.
    if (this.#fileSize > 0 && this.#fileEndsWithNewline) return 0;
    return space;
  }

  /** Appends `length` bytes held in `buffers`: one writev, more only after a short write. */
  async #writeAll(buffers: Buffer[], length: number): Promise<void> {
    const fd = this.#handle!.fd;
    const last = buffers[buffers.length - 1];
    const endsWithNewline = last[last.length - 1] === NEWLINE;
    for (let left = length; left > 0; ) {
      const bytesWritten = await appendBuffers(fd, buffers);
      this.#fileSize += bytesWritten;
      this.#batchWritten += bytesWritten;
      left -= bytesWritten;
      if (left > 0) buffers = skipBytes(buffers, bytesWritten);
    }
    this.#fileEndsWithNewline = endsWithNewline;
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
    await makeDirectories(dirname(this.file));
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

/** A batch of chunks read front to back in byte ranges, without copying. Chunks are never empty. */
class Batch {
  readonly #chunks: Buffer[];
  /** The next unread byte: #chunks[#index][#offset]. */
  #index = 0;
  #offset = 0;
  remaining: number;

  constructor(chunks: Buffer[], bytes: number) {
    this.#chunks = chunks;
    this.remaining = bytes;
  }

  /** The next n (1 … remaining) bytes, as views of the chunks. */
  take(n: number): Buffer[] {
    const chunks = this.#chunks;
    this.remaining -= n;
    if (this.#index === 0 && this.#offset === 0 && this.remaining === 0) return chunks;
    const out: Buffer[] = [];
    while (n > 0) {
      const chunk = chunks[this.#index];
      const available = chunk.length - this.#offset;
      if (available <= n) {
        out.push(this.#offset === 0 ? chunk : chunk.subarray(this.#offset));
        n -= available;
        this.#index++;
        this.#offset = 0;
      } else {
        out.push(chunk.subarray(this.#offset, this.#offset + n));
        this.#offset += n;
        n = 0;
      }
    }
    return out;
  }

  /** How many of the next `limit` (1 … remaining) bytes run up to and including the last newline among them; 0 if none. */
  throughLastNewline(limit: number): number {
    const chunks = this.#chunks;
    // Find the chunk holding the limit's last byte; `before` counts the bytes ahead of chunks[i][start].
    let i = this.#index;
    let start = this.#offset;
    let before = 0;
    while (before + chunks[i].length - start < limit) {
      before += chunks[i].length - start;
      i++;
      start = 0;
    }
    let last = start + (limit - before) - 1;
    for (;;) {
      const newline = chunks[i].lastIndexOf(NEWLINE, last);
      if (newline >= start) return before + newline - start + 1;
      if (i === this.#index) return 0;
      i--;
      start = i === this.#index ? this.#offset : 0;
      before -= chunks[i].length - start;
      last = chunks[i].length - 1;
    }
  }
}

/**
 * writev(2) at the end of an O_APPEND file. The callback API on the FileHandle's fd costs
 * less per call than FileHandle.writev (no FileHandle bookkeeping, one promise).
 */
function appendBuffers(fd: number, buffers: Buffer[]): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, buffers, null, (err, bytesWritten) => (err ? reject(err) : resolve(bytesWritten)));
  });
}

/** buffers without their first n bytes (n < their total). */
function skipBytes(buffers: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (n >= buffers[i].length) n -= buffers[i++].length;
  const rest = buffers.slice(i);
  if (n > 0) rest[0] = rest[0].subarray(n);
  return rest;
}

/** The last n bytes (at most all) of the concatenation of chunks, as views. */
function lastBytes(chunks: readonly Buffer[], n: number): Buffer[] {
  let i = chunks.length;
  let need = n;
  while (need > 0) need -= chunks[--i].length;
  const out = chunks.slice(i);
  if (need < 0) out[0] = out[0].subarray(-need);
  return out;
}

/** The last `capacity` bytes pushed, in a fixed buffer. */
class ByteRing {
  readonly #buf: Buffer;
  /** Where the next byte goes; the contents end just before it. */
  #end = 0;
  #length = 0;
  #overflowed = false;

  constructor(capacity: number) {
    this.#buf = Buffer.alloc(capacity);
  }

  /** Appends the concatenation of chunks (total bytes), copying only the part that stays: at most `capacity` bytes. */
  push(chunks: readonly Buffer[], total: number): void {
    const cap = this.#buf.length;
    if (cap === 0 || total === 0) return;
    if (this.#length + total > cap) this.#overflowed = true;
    const buf = this.#buf;
    let end = this.#end;
    for (const src of lastBytes(chunks, Math.min(total, cap))) {
      const room = cap - end;
      if (src.length <= room) {
        buf.set(src, end);
        end += src.length;
      } else {
        buf.set(src.subarray(0, room), end);
        buf.set(src.subarray(room), 0);
        end = src.length - room;
      }
      if (end === cap) end = 0;
    }
    this.#end = end;
    this.#length = Math.min(this.#length + total, cap);
  }

  /**
   * A copy of the contents followed by `pending` (not pushed yet, `pendingBytes` in all), cut to the
   * capacity, oldest first, without a UTF-8 sequence cut at the front.
   */
  contents(pending: readonly Buffer[] = [], pendingBytes = 0): Buffer {
    const cap = this.#buf.length;
    if (cap === 0) return Buffer.alloc(0);
    const start = (this.#end - this.#length + cap) % cap;
    let parts =
      start + this.#length <= cap
        ? [this.#buf.subarray(start, start + this.#length)]
        : [this.#buf.subarray(start), this.#buf.subarray(0, this.#end)];
    if (pendingBytes > 0) parts = parts.concat(lastBytes(pending, Math.min(pendingBytes, cap)));
    let all = Buffer.concat(parts);
    if (all.length > cap) all = all.subarray(all.length - cap);
    const overflowed = this.#overflowed || this.#length + pendingBytes > cap;
    let skip = 0;
    // After overflow the oldest byte may sit inside a multi-byte character: drop continuation bytes.
    while (overflowed && skip < all.length && skip < 3 && (all[skip] & 0xc0) === 0x80) skip++;
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
