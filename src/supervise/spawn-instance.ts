// Starts one instance's process from its plan: the group leader of its own
// process group (src/process/spawn-group.ts), as the plan's user, with the
// environment the plan gives it on top of what the supervisor may pass on.
// The only place that spawns an instance.
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { SOCKET_MARKER_ENV, SUPERVISOR_MARKER_ENV, type InstancePlan } from '../config/instance-plan.ts';
import { SpawnError } from '../errors.ts';
import { GATEWAY_API_KEY_ENV } from '../config/gateway-plan.ts';
import { spawnGroup, type ExitStatus } from '../process/spawn-group.ts';

export type { ExitStatus };

/** A running child as the instance sees it. */
export interface ChildHandle {
  pid: number;
  stdout: Readable;
  stderr: Readable;
  /** Resolves once, at the exit, even while a leftover still holds the output pipes. */
  exited: Promise<ExitStatus>;
  /** Signals the whole process group (never the bare pid once it exited); false when nothing was there. */
  signal(signal: NodeJS.Signals): boolean;
  /** After the exit: resolves once the output has been read to its end, or after `ms`; pipes still open then are closed. */
  drainOutput(ms: number): Promise<boolean>;
}

export interface Spawner {
  spawn(plan: InstancePlan): Promise<ChildHandle>;
}

/** The supervisor's own secrets: never passed on to an instance. */
const PRIVATE_ENV: readonly string[] = [GATEWAY_API_KEY_ENV];

/** An instance's whole environment: ours without our secrets, the plan's variables on top, and the marker naming this supervisor. */
function makeInstanceEnv(
  inherited: Readonly<Record<string, string | undefined>>,
  plan: Pick<InstancePlan, 'env'>,
  supervisorPid: number,
  socketPath: string | null,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(inherited)) {
    if (value !== undefined && !PRIVATE_ENV.includes(name)) env[name] = value;
  }
  const markers = { [SUPERVISOR_MARKER_ENV]: String(supervisorPid), ...(socketPath === null ? {} : { [SOCKET_MARKER_ENV]: socketPath }) };
  return { ...env, ...plan.env, ...markers };
}

/** The real spawner; `socketPath`: this daemon's control socket, marked on every process it starts. */
export function makeProcessSpawner({ socketPath = null }: { socketPath?: string | null } = {}): Spawner {
  return {
    spawn: (plan) => spawnInstance(plan, socketPath),
  };
}

async function spawnInstance(plan: InstancePlan, socketPath: string | null): Promise<ChildHandle> {
  const ids = plan.user === null ? {} : lookupUser(plan.user);
  const child = await spawnGroup({ file: plan.executable, args: plan.args, env: makeInstanceEnv(process.env, plan, process.pid, socketPath), ...ids });
  return {
    pid: child.pid,
    stdout: child.stdout,
    stderr: child.stderr,
    exited: child.exited,
    signal: (signal) => child.signal(signal),
    drainOutput: (ms) => child.drainOutput({ ms, afterwards: 'close' }),
  };
}

// uid and gid from /etc/passwd; a missing user is a config problem.
function lookupUser(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === user || (/^\d+$/.test(user) && l.split(':')[2] === user));
  if (!line) throw new SpawnError(`user "${user}" does not exist in /etc/passwd`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
