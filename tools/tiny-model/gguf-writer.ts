// A minimal GGUF v3 writer: metadata key/values plus f32 tensors, nothing else.
// Layout: header, KV pairs, tensor infos, padding to 32 bytes, tensor data
// (each tensor starting on a 32-byte boundary). All numbers little-endian.

const GGUF_MAGIC = 'GGUF';
const GGUF_VERSION = 3;
const ALIGNMENT = 32; // GGUF_DEFAULT_ALIGNMENT: no general.alignment key needed

// gguf_type values from ggml/include/gguf.h
const T_UINT32 = 4;
const T_INT32 = 5;
const T_FLOAT32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;
const GGML_TYPE_F32 = 0;

export type GgufValue =
  | { type: 'uint32'; value: number }
  | { type: 'int32'; value: number }
  | { type: 'float32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'float32[]'; value: ArrayLike<number> }
  | { type: 'int32[]'; value: ArrayLike<number> };

export interface GgufTensor {
  name: string;
  /** Innermost first, as GGUF stores them: dims[0] is the row length (ne0). */
  dims: readonly number[];
  data: Float32Array;
}

/** Appends little-endian values to a growing list of chunks. */
class ByteSink {
  private chunks: Buffer[] = [];
  length = 0;

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  u8(v: number): void {
    this.push(Buffer.from([v]));
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  raw(b: Buffer): void {
    this.push(b);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.length % alignment)) % alignment;
    if (pad > 0) this.push(Buffer.alloc(pad));
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

function writeValue(out: ByteSink, v: GgufValue): void {
  switch (v.type) {
    case 'uint32':
      out.u32(T_UINT32);
      out.u32(v.value);
      return;
    case 'int32':
      out.u32(T_INT32);
      out.i32(v.value);
      return;
    case 'float32':
      out.u32(T_FLOAT32);
      out.f32(v.value);
      return;
    case 'bool':
      out.u32(T_BOOL);
      out.u8(v.value ? 1 : 0);
      return;
    case 'string':
      out.u32(T_STRING);
      out.str(v.value);
      return;
    case 'string[]':
      out.u32(T_ARRAY);
      out.u32(T_STRING);
      out.u64(v.value.length);
      for (const s of v.value) out.str(s);
      return;
    case 'float32[]':
      out.u32(T_ARRAY);
      out.u32(T_FLOAT32);
      out.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) out.f32(v.value[i]);
      return;
    case 'int32[]':
      out.u32(T_ARRAY);
      out.u32(T_INT32);
      out.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) out.i32(v.value[i]);
      return;
  }
}

function alignUp(n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT;
}

// Serialises metadata and f32 tensors into one GGUF v3 file image, for generating test models.
export function buildGguf(metadata: ReadonlyArray<readonly [string, GgufValue]>, tensors: readonly GgufTensor[]): Buffer {
  const out = new ByteSink();
  out.raw(Buffer.from(GGUF_MAGIC, 'ascii'));
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.length);

  for (const [key, value] of metadata) {
    out.str(key);
    writeValue(out, value);
  }

  // Tensor infos: offsets are relative to the start of the data section.
  let offset = 0;
  for (const t of tensors) {
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new Error(`tensor ${t.name}: dims ${t.dims.join('x')} need ${count} values, got ${t.data.length}`);
    }
    out.str(t.name);
    out.u32(t.dims.length);
    for (const d of t.dims) out.u64(d);
    out.u32(GGML_TYPE_F32);
    out.u64(offset);
    offset = alignUp(offset + t.data.byteLength);
  }

  out.padTo(ALIGNMENT);
  for (const t of tensors) {
    // Copy so the bytes are little-endian regardless of the view's backing buffer offset.
    const bytes = Buffer.alloc(t.data.byteLength);
    for (let i = 0; i < t.data.length; i++) bytes.writeFloatLE(t.data[i], i * 4);
    out.raw(bytes);
    out.padTo(ALIGNMENT);
  }
  return out.toBuffer();
}
