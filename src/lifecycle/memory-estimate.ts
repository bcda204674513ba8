// What an instance will need on each of its devices before it has ever run:
// the model's weights (every shard's file size) plus its KV cache (f16 K and V
// for every layer and token of the context), split by tensor_split. After a
// load, what llama-server itself reported replaces the estimate.
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { GgufShape } from './gguf-metadata.ts';

/** `model-00001-of-00003.gguf`: the shards of a split model. */
const SHARD = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/;
/** Bytes of one K or V value (llama.cpp's default cache type, f16). */
const KV_VALUE_BYTES = 2;
const MiB = 1024 * 1024;

/** KV cache bytes for `ctx` tokens; null when the shape does not say enough. */
export function kvCacheBytes(shape: GgufShape, ctx: number): number | null {
  const { blockCount, embeddingLength, headCount, headCountKv } = shape;
  if (blockCount === null || headCountKv === null) return null;
  const headDim = shape.keyLength ?? (embeddingLength !== null && headCount ? embeddingLength / headCount : null);
  if (headDim === null) return null;
  const valueDim = shape.valueLength ?? headDim;
  return blockCount * ctx * headCountKv * (headDim + valueDim) * KV_VALUE_BYTES;
}

/** Total bytes of a model file and its sibling shards. */
export async function modelFileBytes(path: string): Promise<number> {
  const shard = SHARD.exec(basename(path));
  if (shard === null) return (await stat(path)).size;
  const [, stem, , total] = shard;
  const names = new Set((await readdir(dirname(path))).filter((n) => n.startsWith(`${stem}-`) && n.endsWith(`-of-${total}.gguf`)));
  let bytes = 0;
  for (const name of names) bytes += (await stat(join(dirname(path), name))).size;
  return bytes;
}

/** MiB per device: weights + KV cache, split by the shares (`tensor_split`, equal when absent). */
export function splitEstimate({ weightsBytes, kvBytes, devices, tensorSplit }: { weightsBytes: number; kvBytes: number; devices: number; tensorSplit: readonly number[] | null }): number[] {
  const count = Math.max(devices, 1);
  const shares = tensorSplit !== null && tensorSplit.length > 0 ? Array.from({ length: count }, (_, i) => tensorSplit[i] ?? 0) : Array(count).fill(1);
  const sum = shares.reduce((a, b) => a + b, 0) || count;
  return shares.map((share) => Math.ceil(((weightsBytes + kvBytes) * share) / sum / MiB));
}
