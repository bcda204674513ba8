// What an instance asks about GPUs, answered from the daemon's GpuMonitor and
// the shared start turns: the devices its plan runs on, whether its last run's
// memory is back, and what it holds now on each device (and how we know).
import { selectGpus } from '../config/gpu-ids.ts';
import { INSTANCE_MARKER_ENV, SUPERVISOR_MARKER_ENV, type InstancePlan } from '../config/instance-plan.ts';
import { findProcessesWithEnv } from '../process/marked.ts';
import { gpuBuffers, type LoadReport } from './load-report.ts';
import type { GpuMonitor, GpuSnapshot } from './monitor.ts';
import { checkRelease, findDeviceHolders, listedPids, type ExitSnapshot, type ReleaseVerdict } from './release-barrier.ts';
import { GpuTurns } from './turns.ts';

/** MiB an instance holds on one GPU, and where the figure comes from. */
export interface DeviceMemory {
  gpu: number;
  uuid: string | null;
  mib: number;
  /** `buffers`: the server's own buffer lines; `nvml`: the driver's per-process figure (our pids); `delta`: the GPU's used memory before and after the start. */
  source: 'buffers' | 'nvml' | 'delta';
}

export interface InstanceGpu {
  /** The GPU indices the plan runs on, in CUDA's order ([] for gpu_ids = "none", or without GPUs). */
  devicesOf(plan: InstancePlan): Promise<number[]>;
  /** Right after an exit: which of the run's pids the driver still lists. */
  snapshotExit(pids: readonly number[]): Promise<ExitSnapshot>;
  /** Is the exited run's memory back? */
  checkRelease(instance: string, snapshot: ExitSnapshot): Promise<ReleaseVerdict>;
  /** The start turn on these devices: null when taken, else who is loading there. */
  takeTurn(instance: string, devices: readonly number[]): string | null;
  releaseTurn(instance: string): void;
  /** Used MiB per device, from an answer at most `maxAgeMs` old, for the before/after figure. */
  usedMiB(devices: readonly number[], maxAgeMs: number): Promise<Map<number, number>>;
  /** What the instance holds on each of its devices, from what is known now (never waits). */
  memoryOf(args: { pids: readonly number[]; devices: readonly number[]; report: LoadReport | null; delta: ReadonlyMap<number, number> }): DeviceMemory[];
  /** Who holds memory on these devices, for a warning: `GPU 0: pid 12 (87982 MiB)...`. */
  describeHolders(devices: readonly number[], nameOf: (pid: number) => string | null): string;
}

/** InstanceGpu over the daemon's monitor, for instances of this supervisor. */
export function makeInstanceGpu({ monitor, turns = new GpuTurns() }: { monitor: GpuMonitor; turns?: GpuTurns }): InstanceGpu {
  const indexOf = (snapshot: GpuSnapshot | null, uuid: string) => snapshot?.gpus.find((g) => g.uuid === uuid)?.index ?? null;
  return {
    async devicesOf(plan) {
      const selection = selectGpus(plan.gpuIds);
      if (selection === 'none') return [];
      const snapshot = await monitor.snapshot();
      return snapshot === null ? [] : monitor.devicesOf(selection, snapshot.gpus);
    },
    async snapshotExit(pids) {
      const snapshot = await monitor.snapshot(0);
      return { pids, listed: listedPids(pids, snapshot?.processes ?? null) };
    },
    async checkRelease(instance, snapshot) {
      const alive = await findProcessesWithEnv({ [INSTANCE_MARKER_ENV]: instance, [SUPERVISOR_MARKER_ENV]: String(process.pid) });
      const holders = await findDeviceHolders(alive);
      // Only a pid the driver listed at the exit needs its list again: the common case asks it nothing.
      const now = holders.length === 0 && snapshot.listed.length > 0 ? await monitor.snapshot(0) : monitor.latest;
      return checkRelease(snapshot, { holders, processes: now?.processes ?? null, gpus: now?.gpus ?? [] });
    },
    takeTurn: (instance, devices) => turns.take(instance, devices),
    releaseTurn: (instance) => turns.release(instance),
    async usedMiB(devices, maxAgeMs) {
      const snapshot = await monitor.snapshot(maxAgeMs);
      const used = new Map<number, number>();
      for (const gpu of snapshot?.gpus ?? []) if (devices.includes(gpu.index) && gpu.usedMiB !== null) used.set(gpu.index, gpu.usedMiB);
      return used;
    },
    memoryOf({ pids, devices, report, delta }) {
      const snapshot = monitor.peek();
      const uuidOf = (gpu: number) => snapshot?.gpus.find((g) => g.index === gpu)?.uuid ?? null;
      const memory = new Map<number, DeviceMemory>();
      // The server's own lines: CUDA<k> is the k-th device it sees.
      for (const { device, mib } of report ? gpuBuffers(report) : []) {
        const gpu = devices[device];
        if (gpu !== undefined) memory.set(gpu, { gpu, uuid: uuidOf(gpu), mib: Math.round(mib), source: 'buffers' });
      }
      for (const p of snapshot?.processes ?? []) {
        const gpu = indexOf(snapshot, p.gpuUuid);
        if (gpu === null || memory.has(gpu) || !pids.includes(p.pid) || p.usedMiB === null) continue;
        memory.set(gpu, { gpu, uuid: p.gpuUuid, mib: p.usedMiB, source: 'nvml' });
      }
      for (const [gpu, mib] of delta) if (!memory.has(gpu) && mib > 0) memory.set(gpu, { gpu, uuid: uuidOf(gpu), mib, source: 'delta' });
      return [...memory.values()].sort((a, b) => a.gpu - b.gpu);
    },
    describeHolders(devices, nameOf) {
      const snapshot = monitor.latest;
      const parts: string[] = [];
      for (const gpu of devices) {
        const here = (snapshot?.processes ?? []).filter((p) => indexOf(snapshot, p.gpuUuid) === gpu);
        const who = here.map((p) => `${nameOf(p.pid) ?? `pid ${p.pid}`} (${p.usedMiB ?? '?'} MiB)`).join(', ');
        parts.push(`GPU ${gpu}: ${who || 'no process the driver lists'}`);
      }
      return parts.join('; ');
    },
  };
}
