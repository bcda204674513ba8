// Our direct children, read from /proc: the reaper's list of pids to try.
import { existsSync, readdirSync } from 'node:fs';
import { readProcFileSync, readAllStatsSync, type ProcOptions } from '../process/proc.ts';

/** Our direct children, from each thread's /proc/self/task/<tid>/children (all threads: orphans go to any). */
export function listOwnChildren({ procRoot = '/proc' }: ProcOptions = {}): number[] {
  const taskDir = `${procRoot}/self/task`;
  const pids: number[] = [];
  for (const tid of readdirSync(taskDir)) {
    const path = `${taskDir}/${tid}/children`;
    const text = readProcFileSync(path);
    if (text === null) {
      // Without CONFIG_PROC_CHILDREN the file is missing while its thread is there: ask every /proc/<pid>/stat.
      if (existsSync(`${taskDir}/${tid}`)) return listChildrenByStat({ procRoot, pid: process.pid });
      continue; // thread exited while we looked
    }
    for (const field of text.split(' ')) if (field.trim() !== '') pids.push(Number(field));
  }
  return pids;
}

// Fallback for kernels without CONFIG_PROC_CHILDREN: every process whose ppid is pid.
function listChildrenByStat({ procRoot, pid }: { procRoot: string; pid: number }): number[] {
  return [...readAllStatsSync({ procRoot })].filter(([, stat]) => stat.ppid === pid).map(([child]) => child);
}
