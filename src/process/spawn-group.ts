// The one way we start a program: as the leader of its own process group
// (pgid = pid), with exactly the environment the caller gives, stdout and
// stderr piped. The exit is taken from 'exit', not 'close': a descendant that
// escaped the group may hold the pipes open for ever, and must not hide the
// exit from us. Signals go to the group only; once the leader is reaped its
// pid may belong to someone else.
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { SpawnError } from '../errors.ts';
import { describeSpawnError, errnoOf } from './errno.ts';
import { signalGroup } from './signal.ts';

/** How a process ended: its exit code, or the signal that killed it. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** What to start. */
export interface SpawnGroupOptions {
  file: string;
  args?: readonly string[];
  /** The child's whole environment: nothing is inherited that is not in here. */
  env: Readonly<Record<string, string | undefined>>;
  uid?: number;
  gid?: number;
  cwd?: string;
}

/** A drain ends this long after the exit at the latest, however much a leftover holding the pipes still writes. */
const DRAIN_CAP_MS = 5000;

/** What becomes of output pipes still open when a drain gives up: closed (a leftover writing there gets EPIPE), or unref'd (still read, no longer keeping the daemon alive). */
export type AfterDrain = 'close' | 'unref';

/** A running (or exited) group leader. */
export interface GroupProcess {
  readonly pid: number;
  readonly stdout: Readable;
  readonly stderr: Readable;
  /** Resolves once, at the exit. */
  readonly exited: Promise<ExitStatus>;
  /**
   * Signals the group; false when no member is left. Never the bare pid: the leader leads its own session
   * (detached), so it cannot leave its group, and once reaped its pid may be someone else's.
   */
  signal(signal: NodeJS.Signals | number): boolean;
  /**
   * Resolves once both pipes have ended (true), or once they have been silent for `ms` after the exit (false;
   * see AfterDrain for the pipes left open). Output still arriving, or held back by a paused reader (a slow log
   * file), is waited for, up to DRAIN_CAP_MS: the last lines before an exit say why it died.
   */
  drainOutput({ ms, afterwards }: { ms: number; afterwards: AfterDrain }): Promise<boolean>;
}

/** Starts `file` as the leader of a new process group; rejects with a SpawnError when it cannot run. */
export async function spawnGroup({ file, args = [], env, uid, gid, cwd }: SpawnGroupOptions): Promise<GroupProcess> {
  const child = spawn(file, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: env as NodeJS.ProcessEnv,
    ...(uid === undefined ? {} : { uid }),
    ...(gid === undefined ? {} : { gid }),
    ...(cwd === undefined ? {} : { cwd }),
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(new SpawnError(describeSpawnError(file, err), { errno: errnoOf(err), cause: err }));
    child.once('error', onError);
    child.once('spawn', () => {
      child.off('error', onError);
      resolve();
    });
  });
  const pid = child.pid as number;
  const stdout = child.stdout!;
  const stderr = child.stderr!;
  const exited = new Promise<ExitStatus>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // After the spawn, an 'error' is a failed kill(): the signal functions below report those themselves.
  child.on('error', () => undefined);
  const ended = Promise.all([stdout, stderr].map((stream) => new Promise<void>((resolve) => stream.once('close', () => resolve()))));
  return {
    pid,
    stdout,
    stderr,
    exited,
    signal: (signal) => signalGroup(pid, signal),
    async drainOutput({ ms, afterwards }) {
      await exited;
      const streams = [stdout, stderr];
      const closed = await new Promise<boolean>((resolve) => {
        let silence: NodeJS.Timeout | undefined;
        const finish = (ended: boolean) => {
          clearTimeout(silence);
          clearTimeout(cap);
          for (const stream of streams) stream.off('data', arm);
          resolve(ended);
        };
        // A paused reader is behind, not the pipe silent: look again later.
        const arm = () => {
          clearTimeout(silence);
          silence = setTimeout(() => (streams.some((s) => s.isPaused()) ? arm() : finish(false)), ms);
        };
        const cap = setTimeout(() => finish(false), Math.max(ms, DRAIN_CAP_MS));
        for (const stream of streams) stream.on('data', arm);
        ended.then(() => finish(true));
        arm();
      });
      if (!closed) {
        for (const stream of [stdout, stderr]) {
          if (afterwards === 'close') stream.destroy();
          else (stream as Readable & { unref?: () => void }).unref?.();
        }
      }
      return closed;
    },
  };
}
