// The release barrier: after an instance's process exits, its next start waits
// until the GPU memory it held is back, so llama.cpp's fit sees what is really
// free. A lone llama-server releases its memory by the time it is reaped
// (measured on an H200: back 144 ms after kill -9), so the common case passes
// at the first look; what lingers is a descendant or worker that still has the
// device open. The decision is pure; the facts come from /proc and nvidia-smi.
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from '../process/errno.ts';
import { DEFAULT_PROC_ROOT, type ProcOptions } from '../process/proc.ts';
import type { GpuInfo, GpuProcess } from './inventory.ts';

/** What was true when the instance's process exited. */
export interface ExitSnapshot {
  /** GPU index → MiB the instance held there (its buffers, or the driver's per-process figure). */
  heldMiB: ReadonlyMap<number, number>;
  /** GPU index → MiB in use on that GPU right after the exit. */
  usedAtExitMiB: ReadonlyMap<number, number>;
  /** The pids of the exited run (the server and what was swept). */
  pids: readonly number[];
}

/** What is true now. */
export interface ReleaseFacts {
  gpus: readonly GpuInfo[];
  /** The driver's compute processes; null when it did not answer. */
  processes: readonly GpuProcess[] | null;
  /** Whether the driver's pids are ours (same pid namespace); false inside a container that has its own. */
  pidsAreOurs: boolean;
  /** Processes of the instance that still have a /dev/nvidia* device open. */
  holders: readonly number[];
}

export type ReleaseVerdict = { released: true } | { released: false; reason: string };

/** Memory counts as back when at least this share of what the instance held is free again (others may allocate meanwhile). */
const RELEASED_SHARE = 0.9;

/** Is the GPU memory of the exited run back? */
export function checkRelease(snapshot: ExitSnapshot, facts: ReleaseFacts): ReleaseVerdict {
  if (facts.holders.length > 0) return { released: false, reason: `pid ${facts.holders.join(', ')} of the last run still has the GPU open` };
  if (facts.pidsAreOurs && facts.processes !== null) {
    const lingering = facts.processes.filter((p) => snapshot.pids.includes(p.pid));
    if (lingering.length > 0) {
      const what = lingering.map((p) => `pid ${p.pid} holds ${p.usedMiB ?? '?'} MiB on ${gpuName(facts.gpus, p.gpuUuid)}`).join(', ');
      return { released: false, reason: `the last run's memory is not back yet: ${what}` };
    }
    return { released: true };
  }
  // Foreign pids (a container): judge by the memory in use on each GPU the instance held.
  for (const [index, held] of snapshot.heldMiB) {
    const used = facts.gpus.find((g) => g.index === index)?.usedMiB;
    const atExit = snapshot.usedAtExitMiB.get(index);
    if (used === null || used === undefined || atExit === undefined || held <= 0) continue;
    if (used > atExit - held * RELEASED_SHARE) {
      return { released: false, reason: `GPU ${index}: ${used} MiB in use, the last run's ${Math.round(held)} MiB not back yet` };
    }
  }
  return { released: true };
}

/** Which of `pids` have a GPU device (`/dev/nvidia*`) open, from their /proc fd links. */
export async function findDeviceHolders(pids: readonly number[], { procRoot = DEFAULT_PROC_ROOT }: ProcOptions = {}): Promise<number[]> {
  const holders: number[] = [];
  for (const pid of pids) {
    const dir = join(procRoot, String(pid), 'fd');
    let fds: string[];
    try {
      fds = await readdir(dir);
    } catch (err) {
      if (['ENOENT', 'ESRCH', 'EACCES'].includes(errnoOf(err) ?? '')) continue;
      throw err;
    }
    for (const fd of fds) {
      const target = await readlink(join(dir, fd)).catch((err: unknown) => {
        if (['ENOENT', 'ESRCH', 'EACCES'].includes(errnoOf(err) ?? '')) return '';
        throw err;
      });
      if (target.startsWith('/dev/nvidia')) {
        holders.push(pid);
        break;
      }
    }
  }
  return holders;
}

function gpuName(gpus: readonly GpuInfo[], uuid: string): string {
  const gpu = gpus.find((g) => g.uuid === uuid);
  return gpu ? `GPU ${gpu.index}` : uuid;
}
