// Starts one llama-server as the leader of its own process group, with the
// plan's environment on top of ours and both output pipes handed to the
// caller. The only place that spawns an instance.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { SUPERVISOR_MARKER_ENV, type InstancePlan } from '../config/instance-plan.ts';
import { signalGroup } from './process-tree.ts';

/** How a child ended: exit code, or the signal that killed it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running child as the instance sees it. */
export interface ChildHandle {
  pid: number;
  stdout: Readable;
  stderr: Readable;
  /** Resolves once, when the process has exited and its pipes are closed. */
  exited: Promise<ExitStatus>;
  /** Signals the whole process group; false when it is already gone. */
  signal(signal: NodeJS.Signals): boolean;
}

/** Why a spawn failed before the program ran (a config problem, not a crash). */
export class SpawnFailure extends Error {}

export interface Spawner {
  spawn(plan: InstancePlan): Promise<ChildHandle>;
}

/** The real spawner: child_process with a detached group (pgid = pid). */
export const processSpawner: Spawner = {
  async spawn(plan) {
    const ids = plan.user === null ? {} : lookupUser(plan.user);
    const child = spawn(plan.executable, plan.args, {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...plan.env, [SUPERVISOR_MARKER_ENV]: String(process.pid) },
      ...ids,
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err: NodeJS.ErrnoException) => {
        reject(new SpawnFailure(describeSpawnError(plan.executable, err)));
      });
    });
    const pid = child.pid as number;
    const exited = new Promise<ExitStatus>((resolve) => {
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    return {
      pid,
      stdout: child.stdout!,
      stderr: child.stderr!,
      exited,
      signal: (signal) => signalGroup(pid, signal),
    };
  },
};

function describeSpawnError(executable: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') return `cannot run ${executable}: no such file (or not found on PATH)`;
  if (err.code === 'EACCES') return `cannot run ${executable}: permission denied (not executable?)`;
  return `cannot run ${executable}: ${err.message}`;
}

// uid and gid from /etc/passwd; a missing user is a config problem.
function lookupUser(user: string): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === user || (/^\d+$/.test(user) && l.split(':')[2] === user));
  if (!line) throw new SpawnFailure(`user "${user}" does not exist in /etc/passwd`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
