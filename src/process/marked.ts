// Processes found by the marker variables in their environment: an instance's
// processes keep INFER_DEV_INSTANCE / INFER_DEV_SUPERVISOR wherever they move
// (setsid, double fork), so leftovers can be found and swept.
import { isAlive, listPids, readEnviron, type ProcOptions } from './proc.ts';
import { sendSignal } from './signal.ts';

/** Finds processes whose environment holds every `name=value` of `markers`, in one pass over /proc. */
export async function findProcessesWithEnv(markers: Readonly<Record<string, string>>, opts: ProcOptions = {}): Promise<number[]> {
  const wanted = Object.entries(markers).map(([name, value]) => `${name}=${value}`);
  const found: number[] = [];
  for (const pid of await listPids(opts)) {
    if (pid === process.pid) continue;
    const entries = await readEnviron(pid, opts);
    if (entries !== null && wanted.every((marker) => entries.includes(marker))) found.push(pid);
  }
  return found;
}

/** Signals every process whose environment holds all of `markers`; returns the pids signalled. */
export async function sweepProcessesWithEnv(
  markers: Readonly<Record<string, string>>,
  signal: NodeJS.Signals | number = 'SIGKILL',
  opts: ProcOptions = {},
): Promise<number[]> {
  const signalled: number[] = [];
  for (const pid of await findProcessesWithEnv(markers, opts)) {
    if (sendSignal(pid, signal)) signalled.push(pid);
  }
  return signalled;
}

/** Waits until none of `pids` is alive, polling every few ms, for at most `timeoutMs`; returns those still alive. */
export async function waitUntilGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter((pid) => isAlive(pid));
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    left = left.filter((pid) => isAlive(pid));
  }
  return left;
}
