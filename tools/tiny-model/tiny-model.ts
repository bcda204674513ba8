// A tiny random-weight llama model (about 0.5 MB) that a real llama-server
// loads and serves, so tests run the real server without downloading a model.
// What matters about such a model (byte tokens, a bias toward printable ASCII and a quick </s>) is said where it is built.

import { rename, unlink, writeFile } from 'node:fs/promises';
import { buildGguf, type GgufTensor, type GgufValue } from './gguf-writer.ts';

export interface TinyModelOptions {
  /** PRNG seed for the random weights (default 1). */
  seed?: number;
  /** llama.context_length; llama-server caps n_ctx at it (default 65536). */
  contextLength?: number;
}

const N_LAYER = 2;
const N_EMBD = 64;
const N_HEAD = 4;
const N_FF = 128;
const ROPE_DIMS = N_EMBD / N_HEAD; // 16

// Token types (llama_token_type)
const TYPE_NORMAL = 1;
const TYPE_UNKNOWN = 2;
const TYPE_CONTROL = 3;
const TYPE_BYTE = 6;

// The "bias" dimension: every embedding holds 1.0 here, and the output weight
// in it steers generation toward printable ASCII and a quick </s>.
const BIAS_DIM = 0;
const BIAS_BANNED = -5; // byte and special tokens: never generated
const BIAS_EOS = 0.4; // </s>: answers end after a few tokens
const WEIGHT_RANGE = 0.05; // other weights: uniform in ±0.05

// Plain-text ChatML-like template that llama-server's minja renders.
const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";

interface Vocab {
  tokens: string[];
  types: number[];
}

// <unk>, <s>, </s>, the 256 byte tokens, then printable ASCII (space as ▁).
function buildVocab(): Vocab {
  const tokens = ['<unk>', '<s>', '</s>'];
  const types = [TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TYPE_BYTE);
  }
  for (let c = 0x20; c <= 0x7e; c++) {
    tokens.push(c === 0x20 ? '\u2581' : String.fromCharCode(c));
    types.push(TYPE_NORMAL);
  }
  return { tokens, types };
}

/** mulberry32: small, fast, deterministic. Returns floats in [0, 1). Also seeds the config fuzz test. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Builds the GGUF image of the tiny model in memory; deterministic for a given seed.
export function makeTinyModel(opts: TinyModelOptions = {}): Buffer {
  const rand = mulberry32(opts.seed ?? 1);
  const { tokens, types } = buildVocab();
  const nVocab = tokens.length;

  const random = (n: number): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * WEIGHT_RANGE;
    return a;
  };
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1);
  const tensor = (name: string, dims: number[], data: Float32Array): GgufTensor => ({ name, dims, data });

  const tokEmbd = random(N_EMBD * nVocab);
  const output = random(N_EMBD * nVocab);
  for (let t = 0; t < nVocab; t++) {
    tokEmbd[t * N_EMBD + BIAS_DIM] = 1;
    const banned = types[t] !== TYPE_NORMAL;
    output[t * N_EMBD + BIAS_DIM] = t === 2 ? BIAS_EOS : banned ? BIAS_BANNED : 0;
  }

  const tensors: GgufTensor[] = [
    tensor('token_embd.weight', [N_EMBD, nVocab], tokEmbd),
    tensor('output_norm.weight', [N_EMBD], ones(N_EMBD)),
    tensor('output.weight', [N_EMBD, nVocab], output),
  ];
  for (let i = 0; i < N_LAYER; i++) {
    const p = `blk.${i}.`;
    tensors.push(
      tensor(`${p}attn_norm.weight`, [N_EMBD], ones(N_EMBD)),
      tensor(`${p}attn_q.weight`, [N_EMBD, N_EMBD], random(N_EMBD * N_EMBD)),
      tensor(`${p}attn_k.weight`, [N_EMBD, N_EMBD], random(N_EMBD * N_EMBD)),
      tensor(`${p}attn_v.weight`, [N_EMBD, N_EMBD], random(N_EMBD * N_EMBD)),
      tensor(`${p}attn_output.weight`, [N_EMBD, N_EMBD], random(N_EMBD * N_EMBD)),
      tensor(`${p}ffn_norm.weight`, [N_EMBD], ones(N_EMBD)),
      tensor(`${p}ffn_gate.weight`, [N_EMBD, N_FF], random(N_EMBD * N_FF)),
      tensor(`${p}ffn_up.weight`, [N_EMBD, N_FF], random(N_EMBD * N_FF)),
      tensor(`${p}ffn_down.weight`, [N_FF, N_EMBD], random(N_FF * N_EMBD)),
    );
  }

  const u32 = (value: number): GgufValue => ({ type: 'uint32', value });
  const metadata: Array<[string, GgufValue]> = [
    ['general.architecture', { type: 'string', value: 'llama' }],
    ['general.name', { type: 'string', value: 'infer-dev tiny random llama' }],
    ['general.file_type', u32(0)], // ALL_F32
    ['llama.context_length', u32(opts.contextLength ?? 65536)],
    ['llama.embedding_length', u32(N_EMBD)],
    ['llama.feed_forward_length', u32(N_FF)],
    ['llama.block_count', u32(N_LAYER)],
    ['llama.attention.head_count', u32(N_HEAD)],
    ['llama.attention.head_count_kv', u32(N_HEAD)],
    ['llama.rope.dimension_count', u32(ROPE_DIMS)],
    ['llama.attention.layer_norm_rms_epsilon', { type: 'float32', value: 1e-5 }],
    ['tokenizer.ggml.model', { type: 'string', value: 'llama' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tokens }],
    ['tokenizer.ggml.scores', { type: 'float32[]', value: new Float32Array(nVocab) }],
    ['tokenizer.ggml.token_type', { type: 'int32[]', value: types }],
    ['tokenizer.ggml.unknown_token_id', u32(0)],
    ['tokenizer.ggml.bos_token_id', u32(1)],
    ['tokenizer.ggml.eos_token_id', u32(2)],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: true }],
    ['tokenizer.chat_template', { type: 'string', value: CHAT_TEMPLATE }],
  ];
  return buildGguf(metadata, tensors);
}

// Writes the tiny model atomically (temp file, then rename) so readers never see a partial file.
export async function writeTinyModel(path: string, opts: TinyModelOptions = {}): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    await writeFile(tmp, makeTinyModel(opts));
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
