// Runs one hook: its own process group, a timeout (SIGTERM, then SIGKILL after
// a grace, to the whole group), its output logged line by line under its name,
// and a result that reads the same for success and failure.
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { signalGroup } from '../supervise/process-tree.ts';
import { describeError, errnoOf } from './atomic-fs.ts';
import { silentBootLog, type BootLog } from './boot-log.ts';

/** SUPERVISOR_HOOK_TIMEOUT_S's default, in seconds. */
export const DEFAULT_HOOK_TIMEOUT_S = 300;
/** SIGTERM → SIGKILL grace for a hook that timed out: enough to clean up, short next to the timeout. */
export const HOOK_KILL_GRACE_MS = 5000;
/** After a hook exits, how long its pipes may take to deliver the last lines before we stop waiting (a backgrounded grandchild can hold them open forever). */
const OUTPUT_DRAIN_MS = 200;
/** A line longer than this is logged in pieces. */
const MAX_LINE_CHARS = 16 * 1024;
const MAX_NOTE_CHARS = 200;

/** One hook's run (or why it was not run). */
export interface HookResult {
  /** `stage-1/on-first-run.d/10-setup`. */
  name: string;
  path: string;
  ok: boolean;
  /** Not run: not executable, not a file. `ok` is false. */
  skipped: boolean;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  startedAt: number;
  durationMs: number;
  message: string;
}

/** How hooks run; defaults fit production. */
export interface HookRunOptions {
  timeoutMs?: number;
  killGraceMs?: number;
  env?: NodeJS.ProcessEnv;
  log?: BootLog;
  /** SUPERVISOR_ON_BOOT_ERROR=exit: stop at the first failed hook. */
  stopOnFailure?: boolean;
  /** Called as each hook starts (so status can show it running). */
  onHookStart?: (name: string) => void;
}

/** A result with nothing run yet (for skipped entries and spawn failures). */
export function makeEmptyHookResult(name: string, path: string): HookResult {
  return { name, path, ok: false, skipped: false, exitCode: null, signal: null, timedOut: false, startedAt: Date.now(), durationMs: 0, message: '' };
}

/** Runs one hook in its own process group; on timeout SIGTERM, then SIGKILL after the grace, to the whole group. */
export async function runHook({
  path,
  name,
  timeoutMs = DEFAULT_HOOK_TIMEOUT_S * 1000,
  killGraceMs = HOOK_KILL_GRACE_MS,
  env = process.env,
  log = silentBootLog,
  onHookStart,
}: HookRunOptions & { path: string; name: string }): Promise<HookResult> {
  const startedAt = Date.now();
  onHookStart?.(name);
  const finish = (fields: Partial<HookResult> & { ok: boolean; message: string }): HookResult => {
    const result = { ...makeEmptyHookResult(name, path), startedAt, durationMs: Date.now() - startedAt, ...fields };
    log(result.ok ? 'info' : 'error', `hook ${name}: ${result.message}`, {
      event: 'boot-hook-done',
      hook: name,
      ok: result.ok,
      exit_code: result.exitCode,
      signal: result.signal,
      timed_out: result.timedOut,
      duration_ms: result.durationMs,
    });
    return result;
  };
  log('info', `hook ${name}: starting`, { event: 'boot-hook-start', hook: name, path });
  // detached: the hook leads its own group, so a timeout takes down what it started too.
  const child = spawn(path, [], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch (err) {
    return finish({ ok: false, message: describeSpawnError(err) });
  }
  const pid = child.pid as number;
  // After the spawn, an error (a failed kill) is worth a line, never a crash.
  child.on('error', (err) => log('warn', `hook ${name}: ${describeError(err)}`, { event: 'boot-hook-error', hook: name }));
  let lastLine = '';
  const logLine = (stream: 'stdout' | 'stderr') => (line: string) => {
    if (line.trim() !== '') lastLine = line;
    log('info', `[${name}] ${line}`, { event: 'hook-output', hook: name, stream });
  };
  const outputDone = Promise.all([
    forwardLines({ stream: child.stdout!, onLine: logLine('stdout') }),
    forwardLines({ stream: child.stderr!, onLine: logLine('stderr') }),
  ]);

  let timedOut = false;
  let forced = false;
  let killTimer: NodeJS.Timeout | undefined;
  const timeoutTimer = setTimeout(() => {
    timedOut = true;
    log('warn', `hook ${name}: timed out after ${formatSeconds(timeoutMs)}; sending SIGTERM to its process group`, { event: 'boot-hook-timeout', hook: name });
    signalGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => {
      forced = true;
      signalGroup(pid, 'SIGKILL');
    }, killGraceMs);
  }, timeoutMs);
  const { code, signal } = await exited;
  clearTimeout(timeoutTimer);
  clearTimeout(killTimer);
  // A timed-out hook's group goes entirely, also children that outlived their leader.
  if (timedOut) killLeftoverGroup(pid);
  await Promise.race([outputDone, new Promise((resolve) => setTimeout(resolve, OUTPUT_DRAIN_MS))]);
  // Whatever still holds the pipes (a daemon the hook started) keeps being logged but no longer keeps us alive.
  for (const stream of [child.stdout, child.stderr]) (stream as Socket | null)?.unref();

  const note = lastLine ? `: ${lastLine.slice(0, MAX_NOTE_CHARS)}` : '';
  if (timedOut) {
    const how = forced ? `SIGKILL after ${formatSeconds(killGraceMs)} grace` : 'SIGTERM';
    return finish({ ok: false, exitCode: code, signal, timedOut, message: `timed out after ${formatSeconds(timeoutMs)}, stopped with ${how}` });
  }
  if (signal !== null) return finish({ ok: false, exitCode: null, signal, message: `killed by ${signal}${note}` });
  if (code !== 0) return finish({ ok: false, exitCode: code, signal, message: `exit code ${code}${note}` });
  return finish({ ok: true, exitCode: 0, signal, message: `exit 0 in ${formatSeconds(Date.now() - startedAt)}` });
}

// The leader is gone and reaped, so its pid may be reused: signal the group only, never the pid.
function killLeftoverGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch (err) {
    if (errnoOf(err) !== 'ESRCH') throw err;
  }
}

function describeSpawnError(err: unknown): string {
  const code = errnoOf(err);
  if (code === 'ENOEXEC') return 'cannot run: not a valid executable (missing #! line?)';
  if (code === 'EACCES') return 'cannot run: permission denied';
  if (code === 'ENOENT') return 'cannot run: file or its interpreter not found';
  return `cannot run: ${describeError(err)}`;
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

// Calls onLine for every line of a stream (a partial last line too); resolves at the end of the stream.
function forwardLines({ stream, onLine }: { stream: Readable; onLine: (line: string) => void }): Promise<void> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  const flush = (text: string) => {
    pending += text;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      onLine(pending.slice(0, newline).replace(/\r$/, ''));
      pending = pending.slice(newline + 1);
    }
    while (pending.length > MAX_LINE_CHARS) {
      onLine(pending.slice(0, MAX_LINE_CHARS));
      pending = pending.slice(MAX_LINE_CHARS);
    }
  };
  stream.on('data', (chunk: Buffer) => flush(decoder.write(chunk)));
  return new Promise((resolve) => {
    stream.once('close', () => {
      flush(decoder.end());
      if (pending) onLine(pending);
      pending = '';
      resolve();
    });
  });
}
