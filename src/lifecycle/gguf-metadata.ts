// The few GGUF metadata values a memory estimate needs (architecture, layers,
// KV heads, embedding, context length), read from the file's header without
// loading the model: numbers are little-endian, strings and arrays are
// length-prefixed (GGUF v2/v3), and the tokenizer's large arrays are skipped.
import { open } from 'node:fs/promises';

/** What the estimate uses; null where the file does not say. */
export interface GgufShape {
  architecture: string | null;
  blockCount: number | null;
  embeddingLength: number | null;
  headCount: number | null;
  headCountKv: number | null;
  keyLength: number | null;
  valueLength: number | null;
  contextLength: number | null;
}

// gguf_type, from ggml/include/gguf.h: element sizes of the fixed-size types.
const FIXED_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const T_STRING = 8;
const T_ARRAY = 9;
/** Headers hold the whole vocabulary (tens of MiB for big ones): read this far at most. */
const MAX_HEADER_BYTES = 64 * 1024 * 1024;
const FIRST_READ_BYTES = 256 * 1024;

class NeedMore extends Error {}

/** Reads the shape of a GGUF model; rejects for a file that is no GGUF. */
export async function readGgufShape(path: string): Promise<GgufShape> {
  const file = await open(path, 'r');
  try {
    for (let size = FIRST_READ_BYTES; ; size *= 4) {
      const buffer = Buffer.alloc(Math.min(size, MAX_HEADER_BYTES));
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      try {
        return parseGgufShape(buffer.subarray(0, bytesRead));
      } catch (err) {
        if (!(err instanceof NeedMore)) throw err;
        // The metadata goes on past the bytes read: read more, unless the file (or our bound) ends there.
        if (bytesRead < buffer.length) throw new Error(`${path}: the GGUF metadata is cut short`);
        if (buffer.length >= MAX_HEADER_BYTES) throw new Error(`${path}: GGUF metadata longer than ${MAX_HEADER_BYTES} bytes`);
      }
    }
  } finally {
    await file.close();
  }
}

/** The shape from the first bytes of a GGUF file; throws NeedMore when they end before the metadata does. */
export function parseGgufShape(bytes: Buffer): GgufShape {
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new NeedMore();
  };
  const u32 = () => (need(4), (at += 4), bytes.readUInt32LE(at - 4));
  const u64 = () => (need(8), (at += 8), Number(bytes.readBigUInt64LE(at - 8)));
  const str = () => {
    const n = u64();
    need(n);
    at += n;
    return bytes.toString('utf8', at - n, at);
  };
  if (bytes.length >= 4 && bytes.toString('latin1', 0, 4) !== 'GGUF') throw new Error('not a GGUF file (no GGUF magic)');
  need(4);
  at = 4;
  const version = u32();
  if (version < 2) throw new Error(`GGUF version ${version} is not supported (2 or later)`);
  u64(); // tensor count
  const kvCount = u64();
  const values = new Map<string, number | string>();
  for (let i = 0; i < kvCount; i++) {
    const key = str();
    const type = u32();
    if (type === T_STRING) values.set(key, str());
    else if (type === T_ARRAY) skipArray();
    else values.set(key, readFixed(type));
  }
  function readFixed(type: number): number {
    const size = FIXED_SIZES[type];
    if (size === undefined) throw new Error(`unknown GGUF value type ${type}`);
    need(size);
    at += size;
    switch (type) {
      case 4:
        return bytes.readUInt32LE(at - 4);
      case 5:
        return bytes.readInt32LE(at - 4);
      case 10:
      case 11:
        return Number(bytes.readBigUInt64LE(at - 8));
      default:
        return 0; // not a count we read
    }
  }
  function skipArray(): void {
    const type = u32();
    const n = u64();
    if (type === T_STRING) for (let k = 0; k < n; k++) str();
    else {
      const size = FIXED_SIZES[type];
      if (size === undefined) throw new Error(`unknown GGUF array type ${type}`);
      need(size * n);
      at += size * n;
    }
  }
  const arch = typeof values.get('general.architecture') === 'string' ? (values.get('general.architecture') as string) : null;
  const num = (suffix: string) => {
    const v = arch === null ? undefined : values.get(`${arch}.${suffix}`);
    return typeof v === 'number' ? v : null;
  };
  return {
    architecture: arch,
    blockCount: num('block_count'),
    embeddingLength: num('embedding_length'),
    headCount: num('attention.head_count'),
    headCountKv: num('attention.head_count_kv') ?? num('attention.head_count'),
    keyLength: num('attention.key_length'),
    valueLength: num('attention.value_length'),
    contextLength: num('context_length'),
  };
}
