// Our children and descendants, read from /proc: the reaper's list of pids to
// try, and the escalation's list of pids to SIGKILL.
import { existsSync, readdirSync, readFileSync } from 'node:fs';

export interface ProcRootOption {
  /** Where procfs is mounted. */
  procRoot?: string;
}

/** Our direct children, from each thread's /proc/self/task/<tid>/children (all threads: orphans go to any). */
export function listOwnChildren({ procRoot = '/proc' }: ProcRootOption = {}): number[] {
  const taskDir = `${procRoot}/self/task`;
  const pids: number[] = [];
  for (const tid of readdirSync(taskDir)) {
    const text = readProcText(`${taskDir}/${tid}/children`);
    if (text === MISSING_FILE) return listChildrenByStat({ procRoot, pid: process.pid });
    if (text === null) continue; // thread exited while we looked
    for (const field of text.split(' ')) if (field !== '') pids.push(Number(field));
  }
  return pids;
}

/** Every process below pid (children, grandchildren...), through the ppid field of /proc/<pid>/stat. */
export function listDescendants({ procRoot = '/proc', pid }: ProcRootOption & { pid: number }): number[] {
  const parentOf = readParents({ procRoot });
  const below = new Set<number>([pid]);
  // A parent may have a larger pid than its child (pid wrap-around): repeat until nothing is added.
  for (let grew = true; grew; ) {
    grew = false;
    for (const [child, parent] of parentOf) {
      if (!below.has(child) && below.has(parent)) {
        below.add(child);
        grew = true;
      }
    }
  }
  below.delete(pid);
  return [...below];
}

/** Fallback for kernels without CONFIG_PROC_CHILDREN: every /proc/<pid>/stat whose ppid is pid. */
function listChildrenByStat({ procRoot, pid }: { procRoot: string; pid: number }): number[] {
  return [...readParents({ procRoot })].filter(([, parent]) => parent === pid).map(([child]) => child);
}

/** pid -> ppid for every process in /proc. */
function readParents({ procRoot }: { procRoot: string }): Map<number, number> {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync(procRoot)) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcText(`${procRoot}/${name}/stat`);
    const ppid = typeof stat === 'string' ? parsePpid(stat) : null;
    if (ppid !== null) parentOf.set(Number(name), ppid);
  }
  return parentOf;
}

/** `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so split after the last ')'. */
function parsePpid(stat: string): number | null {
  const close = stat.lastIndexOf(')');
  if (close < 0) return null;
  const ppid = stat.slice(close + 2).split(' ')[1];
  return ppid === undefined ? null : Number(ppid);
}

const MISSING_FILE = Symbol('missing file');

/** A /proc file's text; null when its process went away; MISSING_FILE when the kernel lacks the file. */
function readProcText(path: string): string | null | typeof MISSING_FILE {
  try {
    return readFileSync(path, 'latin1');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ESRCH: the process exited between readdir and read.
    if (code === 'ESRCH') return null;
    // ENOENT: the process is gone, or (for `children` of a live thread) the kernel has no such file.
    if (code === 'ENOENT') return path.endsWith('/children') && existsSync(path.slice(0, -'/children'.length)) ? MISSING_FILE : null;
    throw err;
  }
}
