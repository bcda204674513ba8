// Byte offsets of tar headers, so an error can say where an entry starts.
// node-tar does not expose positions; this walker sees the same decompressed
// bytes just before node-tar does and records, in order, the offset of every
// header that node-tar hands to its filter (file system entries: not pax or
// GNU long-name headers, which only describe the next entry). It reads only
// what it needs to find the next header: the type flag and the size (octal,
// base-256, or a pax `size` record). It never decides what is extracted.

const BLOCK = 512;

/** Type flags node-tar passes to its filter (types.normalFsTypes). */
const FS_TYPES = new Set(['0', '', '1', '2', '3', '4', '5', '6', '7', 'D']);
/** Type flags of headers that describe the next entry (node-tar's "meta" entries). */
const META_TYPES = new Set(['x', 'g', 'K', 'L', 'N', 'X']);
/** Pax headers whose records (may) carry `size`. */
const PAX_LOCAL = new Set(['x', 'X']);
/** node-tar skips (does not parse) meta headers larger than this (parse.js maxMetaEntrySize). */
const MAX_META_BYTES = 1024 * 1024;

/** One header as seen by the walker. */
export interface TarHeaderPosition {
  offset: number;
  /** The type flag character ('' for old-style files). */
  type: string;
  /** The raw 100-byte name field (long names live in pax/GNU headers). */
  rawName: string;
}

/** Feed it the decompressed tar stream chunk by chunk; take() the header offsets in archive order. */
export class TarOffsets {
  #position = 0;
  /** Bytes of the current header block or pax body collected so far. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  /** What the bytes after the current position are. */
  #state: 'header' | 'skip' | 'pax' | 'end' = 'header';
  #skipRemaining = 0;
  #paxRemaining = 0;
  #paxPadding = 0;
  #paxLocal = false;
  #nextSize: number | undefined;
  #globalSize: number | undefined;
  #nullBlocks = 0;
  readonly #queue: TarHeaderPosition[] = [];
  readonly #ignored: TarHeaderPosition[] = [];

  /** Consumes one chunk of decompressed tar data. */
  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && this.#state !== 'end') {
      if (this.#state === 'skip') {
        const n = Math.min(this.#skipRemaining, chunk.length - at);
        this.#skipRemaining -= n;
        this.#position += n;
        at += n;
        if (this.#skipRemaining === 0) this.#state = 'header';
        continue;
      }
      const want = this.#state === 'header' ? BLOCK - this.#pendingBytes : this.#paxRemaining - this.#pendingBytes;
      const n = Math.min(want, chunk.length - at);
      this.#pending.push(chunk.subarray(at, at + n));
      this.#pendingBytes += n;
      this.#position += n;
      at += n;
      if (n < want) continue;
      const whole = Buffer.concat(this.#pending);
      this.#pending = [];
      this.#pendingBytes = 0;
      if (this.#state === 'header') this.#onHeader(whole);
      else this.#onPax(whole);
    }
  }

  /** The next filesystem entry's header, in order; undefined if the walker has not seen it (it never lags). */
  take(): TarHeaderPosition | undefined {
    return this.#queue.shift();
  }

  /** Headers of types node-tar skips without asking the filter (sparse files, tape volumes, unknown types). */
  takeIgnored(): TarHeaderPosition | undefined {
    return this.#ignored.shift();
  }

  #onHeader(block: Buffer): void {
    const offset = this.#position - BLOCK;
    if (block.every((b) => b === 0)) {
      if (++this.#nullBlocks >= 2) this.#state = 'end';
      return;
    }
    this.#nullBlocks = 0;
    if (!hasValidChecksum(block)) {
      // node-tar refuses this header (strict mode); nothing after it is read.
      this.#state = 'end';
      return;
    }
    const type = block.toString('latin1', 156, 157).replace('\0', '');
    const ownSize = parseNumber(block.subarray(124, 136));
    const isFs = FS_TYPES.has(type);
    // node-tar applies a pending pax size (local, then global) only to filesystem entries.
    const size = isFs ? (this.#nextSize ?? this.#globalSize ?? ownSize) : ownSize;
    if (isFs || !META_TYPES.has(type)) {
      const entry = { offset, type, rawName: decodeNameField(block.subarray(0, 100)) };
      (isFs ? this.#queue : this.#ignored).push(entry);
      this.#nextSize = undefined;
    }
    const body = Math.ceil(size / BLOCK) * BLOCK;
    if ((type === 'x' || type === 'X' || type === 'g') && size <= MAX_META_BYTES) {
      if (size === 0) return;
      this.#paxLocal = PAX_LOCAL.has(type);
      this.#paxRemaining = size;
      this.#paxPadding = body - size;
      this.#state = 'pax';
      return;
    }
    if (body > 0) {
      this.#skipRemaining = body;
      this.#state = 'skip';
    }
  }

  #onPax(body: Buffer): void {
    const size = parsePaxSize(body.toString('utf8'));
    if (size !== undefined) {
      if (this.#paxLocal) this.#nextSize = size;
      else this.#globalSize = size;
    }
    if (this.#paxPadding > 0) {
      this.#skipRemaining = this.#paxPadding;
      this.#state = 'skip';
    } else this.#state = 'header';
  }
}

/**
 * The name field as text. A long name fills it up to the last byte, which may fall inside a character: decoded in
 * streaming mode, an unfinished last character is left out instead of shown as U+FFFD.
 */
function decodeNameField(field: Buffer): string {
  const nul = field.indexOf(0);
  return new TextDecoder('utf-8').decode(nul === -1 ? field : field.subarray(0, nul), { stream: true });
}

/** The header checksum: the byte sum with the checksum field counted as spaces (node-tar's rule). */
function hasValidChecksum(block: Buffer): boolean {
  let sum = 8 * 0x20;
  for (let i = 0; i < 148; i++) sum += block[i];
  for (let i = 156; i < BLOCK; i++) sum += block[i];
  return sum === parseNumber(block.subarray(148, 156));
}

/** A tar number field: octal text, or base-256 when the top bit of the first byte is set. */
export function parseNumber(field: Buffer): number {
  if (field[0] & 0x80) {
    let value = field[0] & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i];
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  const value = text === '' ? 0 : parseInt(text, 8);
  return Number.isFinite(value) ? value : 0;
}

/** The `size` record of a pax extended header body ("%d size=%d\n" records), if any. */
export function parsePaxSize(text: string): number | undefined {
  let found: number | undefined;
  for (const line of text.split('\n')) {
    const match = /^\d+ size=(\d+)$/.exec(line);
    if (match) found = Number(match[1]);
  }
  return found;
}
