// Instances left behind by a supervisor that died without stopping them
// (kill -9 of `supervisor run`): they keep serving with ppid 1 and hold their
// ports, so a new daemon could not start its own. We do not adopt them: their
// output pipes went with the dead daemon, so their logs are gone and their next
// write may kill them anyway. We stop them (SIGTERM, then SIGKILL) before our
// own instances start, and the config's instances come up fresh.
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { INSTANCE_MARKER_ENV, SOCKET_MARKER_ENV, SUPERVISOR_MARKER_ENV } from '../config/instance-plan.ts';
import { errnoOf } from '../process/errno.ts';
import { waitUntilGone } from '../process/marked.ts';
import { DEFAULT_PROC_ROOT, listPids, readEnviron, readProcStat, type ProcOptions } from '../process/proc.ts';
import { sendSignal } from '../process/signal.ts';
import type { Log } from '../logging/log.ts';

/** How long orphans get to leave after SIGTERM before SIGKILL. */
const ORPHAN_STOP_GRACE_MS = 3000;
/** After SIGKILL, how long to wait for them to be gone. */
const ORPHAN_KILL_WAIT_MS = 1000;

/** A process of an instance whose supervisor is gone. */
export interface Orphan {
  pid: number;
  instance: string;
  supervisorPid: number;
}

/**
 * Finds marked processes whose supervisor is gone: the pid in their marker no longer exists, or belongs to a
 * process that started after them (the pid was reused). Only our own PID namespace counts: a pid in a
 * container's marker means nothing out here. Only a supervisor on our socket counts (a process without the
 * socket marker, from a version before it, counts too): a dead daemon on another socket is its next daemon's
 * to sweep, and that one would find nothing to say why its instance went.
 */
async function findOrphans({ socketPath, ...opts }: ProcOptions & { socketPath: string | null }): Promise<Orphan[]> {
  const procRoot = opts.procRoot ?? DEFAULT_PROC_ROOT;
  const ourNamespace = await readNamespace(join(procRoot, 'self'));
  const orphans: Orphan[] = [];
  for (const pid of await listPids({ procRoot })) {
    if (pid === process.pid) continue;
    const environ = await readEnviron(pid, { procRoot });
    const instance = markerValue(environ, INSTANCE_MARKER_ENV);
    const supervisorPid = Number(markerValue(environ, SUPERVISOR_MARKER_ENV));
    if (instance === null || !Number.isInteger(supervisorPid) || supervisorPid < 1 || supervisorPid === process.pid) continue;
    const socket = markerValue(environ, SOCKET_MARKER_ENV);
    if (socket !== null && socketPath !== null && socket !== socketPath) continue;
    if ((await readNamespace(join(procRoot, String(pid)))) !== ourNamespace) continue;
    const self = await readProcStat(pid, { procRoot });
    if (self === null) continue;
    const supervisor = await readProcStat(supervisorPid, { procRoot });
    if (supervisor === null || supervisor.startTime > self.startTime) orphans.push({ pid, instance, supervisorPid });
  }
  return orphans;
}

/** Stops every orphan (SIGTERM, SIGKILL after the grace); returns the ones found. */
export async function stopOrphans({
  log,
  graceMs = ORPHAN_STOP_GRACE_MS,
  procRoot,
  socketPath = null,
}: {
  log: Log;
  graceMs?: number;
  procRoot?: string;
  /** This daemon's control socket: only leftovers of earlier daemons on it are swept (null: any). */
  socketPath?: string | null;
}): Promise<Orphan[]> {
  const orphans = await findOrphans({ procRoot, socketPath });
  if (orphans.length === 0) return orphans;
  const described = orphans.map((o) => `${o.instance} (pid ${o.pid}, of dead supervisor ${o.supervisorPid})`).join(', ');
  log.warn({ event: 'orphans', orphans }, `stopping ${orphans.length} process(es) left by a supervisor that died: ${described}`);
  const pids = orphans.map((o) => o.pid);
  for (const pid of pids) sendSignal(pid, 'SIGTERM');
  const stubborn = await waitUntilGone(pids, graceMs);
  for (const pid of stubborn) sendSignal(pid, 'SIGKILL');
  const left = await waitUntilGone(stubborn, ORPHAN_KILL_WAIT_MS);
  if (left.length > 0) log.error({ event: 'orphans-left', pids: left }, `cannot stop process(es) ${left.join(', ')} left by a dead supervisor`);
  return orphans;
}

function markerValue(environ: readonly string[] | null, name: string): string | null {
  const entry = environ?.find((e) => e.startsWith(`${name}=`));
  return entry === undefined ? null : entry.slice(name.length + 1);
}

// The pid namespace of a /proc/<pid> directory (`pid:[4026531836]`); null when unreadable.
async function readNamespace(procDir: string): Promise<string | null> {
  try {
    return await readlink(join(procDir, 'ns', 'pid'));
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ESRCH' || code === 'EACCES' || code === 'EPERM') return null;
    throw err;
  }
}
