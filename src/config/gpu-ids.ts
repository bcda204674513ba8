// `gpu_ids`: which GPUs an instance sees. "all" (or absent) inherits ours,
// "none" hides every GPU, otherwise indices and UUIDs (`GPU-…`, `MIG-…`) as
// CUDA_VISIBLE_DEVICES takes them. Also the checks that need the machine's
// GPUs (passed in, so planning stays pure): ids that name no GPU, and
// instances that share one.
import type { InstancePlan } from './instance-plan.ts';

/** One entry of a gpu_ids list: an index, a GPU UUID or a MIG device UUID. */
const GPU_ID = String.raw`(?:\d+|GPU-[0-9A-Fa-f-]+|MIG-[0-9A-Za-z/-]+)`;
/** What gpu_ids may say. */
export const GPU_IDS_PATTERN = new RegExp(String.raw`^(all|none|${GPU_ID}(,${GPU_ID})*)$`, 'i');

/** The GPUs an instance asks for: all of ours, none, or these ids. */
export type GpuSelection = 'all' | 'none' | readonly string[];

/** Reads a (valid) gpu_ids value; absent means all. */
export function selectGpus(gpuIds: string | null): GpuSelection {
  if (gpuIds === null || /^all$/i.test(gpuIds)) return 'all';
  if (/^none$/i.test(gpuIds)) return 'none';
  return gpuIds.split(',');
}

/** A GPU as config check knows it. */
export interface KnownGpu {
  index: number;
  uuid: string;
  mig: ReadonlyArray<{ uuid: string }>;
}

/** The index of the GPU an id names (a MIG device counts as its GPU); null when none does. */
export function resolveGpuId(gpus: readonly KnownGpu[], id: string): number | null {
  if (/^\d+$/.test(id)) return gpus.some((g) => g.index === Number(id)) ? Number(id) : null;
  return gpus.find((g) => g.uuid === id || g.mig.some((m) => m.uuid === id))?.index ?? null;
}

/** One problem found against the machine's GPUs. */
export interface GpuIssue {
  instance: string;
  message: string;
}

/**
 * Warnings about gpu_ids: ids that name no GPU of this machine (only when the GPUs are known), and enabled
 * instances that share a GPU (allowed: several small models fit one GPU, but each start then sees less free).
 */
export function checkGpuIds(instances: readonly Pick<InstancePlan, 'name' | 'enabled' | 'gpuIds'>[], gpus: readonly KnownGpu[] | null): GpuIssue[] {
  const issues: GpuIssue[] = [];
  const used = new Map<string, string[]>();
  for (const instance of instances) {
    if (!instance.enabled) continue;
    const selection = selectGpus(instance.gpuIds);
    if (selection === 'none') continue;
    let keys: string[];
    // Inheriting all GPUs shares them only where there are any.
    if (selection === 'all') keys = gpus === null ? [] : gpus.map((g) => String(g.index));
    else {
      keys = [];
      for (const id of selection) {
        const index = gpus === null ? null : resolveGpuId(gpus, id);
        if (gpus !== null && index === null) {
          const known = gpus.map((g) => `${g.index} (${g.uuid})`).join(', ') || 'none';
          issues.push({ instance: instance.name, message: `gpu_ids names "${id}", which is no GPU of this machine (GPUs: ${known})` });
        } else keys.push(index === null ? id : String(index));
      }
    }
    for (const key of keys) used.set(key, [...(used.get(key) ?? []), instance.name]);
  }
  for (const [gpu, names] of used) {
    if (names.length < 2) continue;
    issues.push({ instance: names[1], message: `shares GPU ${gpu} with ${names.filter((n) => n !== names[1]).join(', ')}: allowed, but each start sees only the memory the others left (they start one after another)` });
  }
  return issues;
}
