// Signals and /proc lookups for the processes an instance leaves behind: its
// process group, and anything that escaped the group (setsid) but still carries
// the instance's marker variable in its environment.

import { readdir, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ProcOptions {
  /** Where procfs is mounted; tests point it at a fixture tree. */
  procRoot?: string;
}

const DEFAULT_PROC_ROOT = '/proc';

/** Errors that mean "that process went away (or was never ours to read)" while we looked. */
const VANISHED_OR_FORBIDDEN = new Set(['ENOENT', 'ESRCH', 'EACCES', 'EPERM']);

/** Signals a whole process group (stop aims at -pgid); false when neither group nor pid exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | number): boolean {
  validatePid({ pid: pgid, what: 'pgid', min: 2 });
  if (sendSignal({ target: -pgid, signal })) return true;
  // The group is gone (its leader and members exited or moved): try the pid alone.
  return sendSignal({ target: pgid, signal });
}

/** Whether a pid names a live process: signal 0, EPERM counts as alive, a zombie does not. */
export function isAlive(pid: number, opts: ProcOptions = {}): boolean {
  validatePid({ pid, what: 'pid', min: 1 });
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errnoOf(err) === 'EPERM') return true;
    if (errnoOf(err) === 'ESRCH') return false;
    throw err;
  }
  // An exited but unreaped process still answers signal 0; it holds nothing but its pid.
  const state = readProcState({ procRoot: opts.procRoot ?? DEFAULT_PROC_ROOT, pid });
  return state !== 'Z' && state !== 'X';
}

/** Finds processes whose environment holds every `name=value` of `markers` (an instance's leftovers), in one pass over /proc. */
export async function findProcessesWithEnv(markers: Readonly<Record<string, string>>, opts: ProcOptions = {}): Promise<number[]> {
  const procRoot = opts.procRoot ?? DEFAULT_PROC_ROOT;
  const wanted = Object.entries(markers).map(([name, value]) => `${name}=${value}`);
  const found: number[] = [];
  for (const pid of await listPids({ procRoot })) {
    if (pid === process.pid) continue;
    const environ = await readProcFile({ path: join(procRoot, String(pid), 'environ') });
    if (environ === null) continue;
    const entries = environ.split('\0');
    if (wanted.every((marker) => entries.includes(marker))) found.push(pid);
  }
  return found;
}

/** Kills every process whose environment holds all of `markers` (escaped grandchildren included); returns the pids signalled. */
export async function sweepProcessesWithEnv(
  markers: Readonly<Record<string, string>>,
  signal: NodeJS.Signals | number = 'SIGKILL',
  opts: ProcOptions = {},
): Promise<number[]> {
  const killed: number[] = [];
  for (const pid of await findProcessesWithEnv(markers, opts)) {
    if (sendSignal({ target: pid, signal })) killed.push(pid);
  }
  return killed;
}

/** Lists the direct children of a pid (by the ppid field of /proc/[pid]/stat). */
export async function listChildren(pid: number, opts: ProcOptions = {}): Promise<number[]> {
  const procRoot = opts.procRoot ?? DEFAULT_PROC_ROOT;
  const children: number[] = [];
  for (const candidate of await listPids({ procRoot })) {
    const stat = await readProcFile({ path: join(procRoot, String(candidate), 'stat') });
    if (stat !== null && parseStat({ stat })?.ppid === pid) children.push(candidate);
  }
  return children;
}

function sendSignal({ target, signal }: { target: number; signal: NodeJS.Signals | number }): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return false;
    throw err;
  }
}

async function listPids({ procRoot }: { procRoot: string }): Promise<number[]> {
  const names = await readdir(procRoot);
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

/** Reads a /proc file as text; null when the process vanished or is not ours to read. */
async function readProcFile({ path }: { path: string }): Promise<string | null> {
  try {
    return await readFile(path, 'latin1');
  } catch (err) {
    if (VANISHED_OR_FORBIDDEN.has(errnoOf(err) ?? '')) return null;
    throw err;
  }
}

function readProcState({ procRoot, pid }: { procRoot: string; pid: number }): string | null {
  let stat: string;
  try {
    stat = readFileSync(join(procRoot, String(pid), 'stat'), 'latin1');
  } catch (err) {
    // Gone between the signal and the read: not alive. Not readable: trust the signal.
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ESRCH') return 'X';
    if (errnoOf(err) === 'EACCES') return null;
    throw err;
  }
  return parseStat({ stat })?.state ?? null;
}

/** `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so split after the last ')'. */
function parseStat({ stat }: { stat: string }): { state: string; ppid: number } | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const [state, ppid] = stat.slice(close + 2).split(' ');
  if (state === undefined || ppid === undefined) return null;
  return { state, ppid: Number(ppid) };
}

function validatePid({ pid, what, min }: { pid: number; what: string; min: number }): void {
  // kill(0) or kill(-1) would hit our own group or every process we may signal; -1 (pgid 1) is init's group.
  if (!Number.isInteger(pid) || pid < min) throw new RangeError(`${what} must be an integer >= ${min}, received ${pid}`);
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}
