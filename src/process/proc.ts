// Everything we read from /proc about processes, with one parser for
// /proc/<pid>/stat. A process may vanish between listing and reading, and
// another user's may not be readable: both read as "nothing there".
import { readdirSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf } from './errno.ts';

/** Where procfs is mounted; tests point it at a fixture tree. */
export interface ProcOptions {
  procRoot?: string;
}

export const DEFAULT_PROC_ROOT = '/proc';

/** ENOENT/ESRCH: the process vanished while we looked; EACCES/EPERM: not ours to read. */
const VANISHED_OR_FORBIDDEN = new Set(['ENOENT', 'ESRCH', 'EACCES', 'EPERM']);

/** The fields of /proc/<pid>/stat we use. */
export interface ProcStat {
  pid: number;
  comm: string;
  /** R, S, D, Z (zombie), X (dead), T... */
  state: string;
  ppid: number;
  pgrp: number;
  /** Clock ticks after boot: tells a pid's process from a later one that reused the pid (NaN if absent). */
  startTime: number;
}

/** `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parentheses, so split after the last ')'. */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return null;
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 (state) of proc(5); starttime is field 22.
  const [state, ppid, pgrp] = fields;
  if (state === undefined || ppid === undefined) return null;
  // NaN when a (fixture) line stops early: comparisons with NaN are false, so nothing is concluded from it.
  return { pid: Number(text.slice(0, open).trim()), comm: text.slice(open + 1, close), state, ppid: Number(ppid), pgrp: Number(pgrp), startTime: Number(fields[19]) };
}

/** The numeric entries of /proc. */
export async function listPids({ procRoot = DEFAULT_PROC_ROOT }: ProcOptions = {}): Promise<number[]> {
  return (await readdir(procRoot)).filter((n) => /^\d+$/.test(n)).map(Number);
}

/** listPids, synchronously (PID 1's last-moment paths). */
function listPidsSync({ procRoot = DEFAULT_PROC_ROOT }: ProcOptions = {}): number[] {
  return readdirSync(procRoot).filter((n) => /^\d+$/.test(n)).map(Number);
}

/** A /proc file as text; null when the process vanished or is not ours to read. */
async function readProcFile(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'latin1');
  } catch (err) {
    if (VANISHED_OR_FORBIDDEN.has(errnoOf(err) ?? '')) return null;
    throw err;
  }
}

/** readProcFile, synchronously. */
export function readProcFileSync(path: string): string | null {
  try {
    return readFileSync(path, 'latin1');
  } catch (err) {
    if (VANISHED_OR_FORBIDDEN.has(errnoOf(err) ?? '')) return null;
    throw err;
  }
}

/** /proc/<pid>/stat, parsed; null when the process is gone or unreadable. */
export async function readProcStat(pid: number, { procRoot = DEFAULT_PROC_ROOT }: ProcOptions = {}): Promise<ProcStat | null> {
  const text = await readProcFile(join(procRoot, String(pid), 'stat'));
  return text === null ? null : parseProcStat(text);
}

/** readProcStat, synchronously. */
export function readProcStatSync(pid: number, { procRoot = DEFAULT_PROC_ROOT }: ProcOptions = {}): ProcStat | null {
  const text = readProcFileSync(join(procRoot, String(pid), 'stat'));
  return text === null ? null : parseProcStat(text);
}

/** A process's environment as `NAME=value` entries; null when gone or unreadable. */
export async function readEnviron(pid: number, { procRoot = DEFAULT_PROC_ROOT }: ProcOptions = {}): Promise<string[] | null> {
  const text = await readProcFile(join(procRoot, String(pid), 'environ'));
  return text === null ? null : text.split('\0');
}

/** pid → stat of every process we can read. */
export function readAllStatsSync({ procRoot = DEFAULT_PROC_ROOT }: ProcOptions = {}): Map<number, ProcStat> {
  const stats = new Map<number, ProcStat>();
  for (const pid of listPidsSync({ procRoot })) {
    const stat = readProcStatSync(pid, { procRoot });
    if (stat !== null) stats.set(pid, stat);
  }
  return stats;
}

/** Every process below pid (children, grandchildren...), through the ppid field. */
export function listDescendants({ procRoot = DEFAULT_PROC_ROOT, pid }: ProcOptions & { pid: number }): number[] {
  const stats = readAllStatsSync({ procRoot });
  const below = new Set<number>([pid]);
  // A parent may have a larger pid than its child (pid wrap-around): repeat until nothing is added.
  for (let grew = true; grew; ) {
    grew = false;
    for (const [child, stat] of stats) {
      if (!below.has(child) && below.has(stat.ppid)) {
        below.add(child);
        grew = true;
      }
    }
  }
  below.delete(pid);
  return [...below];
}

/** Whether a pid names a live process: signal 0, EPERM counts as alive, a zombie does not. */
export function isAlive(pid: number, opts: ProcOptions = {}): boolean {
  if (!Number.isInteger(pid) || pid < 1) throw new RangeError(`pid must be an integer >= 1, received ${pid}`);
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errnoOf(err) === 'EPERM') return true;
    if (errnoOf(err) === 'ESRCH') return false;
    throw err;
  }
  // An exited but unreaped process still answers signal 0; it holds nothing but its pid.
  let text: string;
  try {
    text = readFileSync(join(opts.procRoot ?? DEFAULT_PROC_ROOT, String(pid), 'stat'), 'latin1');
  } catch (err) {
    // Gone between the signal and the read: not alive. Not readable: trust the signal.
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ESRCH') return false;
    if (errnoOf(err) === 'EACCES') return true;
    throw err;
  }
  const state = parseProcStat(text)?.state;
  return state !== 'Z' && state !== 'X';
}
