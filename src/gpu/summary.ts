// One line per GPU for `status` and `supervisor gpus`: used/total, and which
// instances hold what ("other" is what no instance accounts for: another
// program, CUDA contexts, or memory we could not attribute).
import type { DeviceMemory } from './instance-gpu.ts';
import type { GpuSnapshot } from './monitor.ts';

export interface GpuSummary {
  index: number;
  uuid: string;
  name: string;
  total_mib: number | null;
  used_mib: number | null;
  free_mib: number | null;
  utilization: number | null;
  instances: Array<{ name: string; mib: number; source: DeviceMemory['source'] }>;
  /** Used memory no instance accounts for. */
  other_mib: number | null;
}

/** The GPUs with what each instance holds there. */
export function summarizeGpus(snapshot: GpuSnapshot | null, instances: ReadonlyArray<{ name: string; memory: readonly DeviceMemory[] }>): GpuSummary[] {
  return (snapshot?.gpus ?? []).map((gpu) => {
    const here = instances.flatMap((i) => i.memory.filter((m) => m.gpu === gpu.index).map((m) => ({ name: i.name, mib: m.mib, source: m.source })));
    const accounted = here.reduce((sum, i) => sum + i.mib, 0);
    return {
      index: gpu.index,
      uuid: gpu.uuid,
      name: gpu.name,
      total_mib: gpu.totalMiB,
      used_mib: gpu.usedMiB,
      free_mib: gpu.freeMiB,
      utilization: gpu.utilization,
      instances: here,
      other_mib: gpu.usedMiB === null ? null : Math.max(0, gpu.usedMiB - accounted),
    };
  });
}

/** `GPU 0 NVIDIA H200: 142139/143771 MiB used (a 87982, b 54140, other 17)`. */
export function formatGpuLine(gpu: GpuSummary): string {
  const used = gpu.used_mib === null || gpu.total_mib === null ? 'memory unknown' : `${gpu.used_mib}/${gpu.total_mib} MiB used`;
  const parts = gpu.instances.map((i) => `${i.name} ${i.mib}`);
  if (gpu.other_mib !== null && gpu.other_mib > 0) parts.push(`other ${gpu.other_mib}`);
  return `GPU ${gpu.index} ${gpu.name}: ${used}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}
