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

/** What the driver listed right after the instance's process exited. */
export interface ExitSnapshot {
  /** The pids of the exited run (the server and what was swept). */
  pids: readonly number[];
  /** Those of them the driver still listed with memory at the exit: only these are waited for by pid. */
  listed: readonly number[];
}

/** What is true now. */
export interface ReleaseFacts {
  /** The driver's compute processes; null when it did not answer. */
  processes: readonly GpuProcess[] | null;
  gpus: readonly GpuInfo[];
  /** Processes of the instance still alive with a /dev/nvidia* device open. */
  holders: readonly number[];
}

export type ReleaseVerdict = { released: true } | { released: false; reason: string };

/**
 * Is the exited run's GPU memory back? The driver frees a process's memory when its last device file closes,
 * so no live process of the instance may have one open; and a pid the driver still listed at the exit must be
 * gone from its list (it can lag the reap). Inside a container the driver's pids are the host's and match none
 * of ours, so there the open device files alone decide.
 */
export function checkRelease(snapshot: ExitSnapshot, facts: ReleaseFacts): ReleaseVerdict {
  if (facts.holders.length > 0) return { released: false, reason: `pid ${facts.holders.join(', ')} of the last run still has the GPU open` };
  if (snapshot.listed.length === 0 || facts.processes === null) return { released: true };
  const lingering = facts.processes.filter((p) => snapshot.listed.includes(p.pid));
  if (lingering.length === 0) return { released: true };
  const what = lingering.map((p) => `pid ${p.pid} holds ${p.usedMiB ?? '?'} MiB on ${gpuName(facts.gpus, p.gpuUuid)}`).join(', ');
  return { released: false, reason: `the last run's memory is not back yet: ${what}` };
}

/** The pids of a run that the driver lists with memory (none inside a container: there they are host pids). */
export function listedPids(pids: readonly number[], processes: readonly GpuProcess[] | null): number[] {
  return processes === null ? [] : pids.filter((pid) => processes.some((p) => p.pid === pid));
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
