// Runs one hook: its own process group, a timeout (SIGTERM, then SIGKILL after
// a grace, to the whole group), its output logged line by line under its name,
// and a result that reads the same for success and failure.
import { LineSplitter } from '../process/line-splitter.ts';
import { runCommand } from '../process/run-command.ts';
import { silentLog, type Log } from '../logging/log.ts';

/** SUPERVISOR_HOOK_TIMEOUT_S's default, in seconds. */
export const DEFAULT_HOOK_TIMEOUT_S = 300;
/** SIGTERM → SIGKILL grace for a hook that timed out: enough to clean up, short next to the timeout. */
const HOOK_KILL_GRACE_MS = 5000;
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
  log?: Log;
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
  log = silentLog,
  onHookStart,
}: HookRunOptions & { path: string; name: string }): Promise<HookResult> {
  const startedAt = Date.now();
  onHookStart?.(name);
  const finish = (fields: Partial<HookResult> & { ok: boolean; message: string }): HookResult => {
    const result = { ...makeEmptyHookResult(name, path), startedAt, durationMs: Date.now() - startedAt, ...fields };
    const done = { event: 'boot-hook-done', hook: name, ok: result.ok, exit_code: result.exitCode, signal: result.signal, timed_out: result.timedOut, duration_ms: result.durationMs };
    log[result.ok ? 'info' : 'error'](done, `hook ${name}: ${result.message}`);
    return result;
  };
  log.info({ event: 'boot-hook-start', hook: name, path }, `hook ${name}: starting`);
  let lastLine = '';
  const splitters = {
    stdout: new LineSplitter((line) => onLine('stdout', line), MAX_LINE_CHARS),
    stderr: new LineSplitter((line) => onLine('stderr', line), MAX_LINE_CHARS),
  };
  function onLine(stream: 'stdout' | 'stderr', line: string): void {
    if (line.trim() !== '') lastLine = line;
    log.info({ event: 'hook-output', hook: name, stream }, `[${name}] ${line}`);
  }
  // Its own process group, so a timeout takes down what it started too; a daemon it started keeps being logged.
  const run = await runCommand({
    file: path,
    env,
    timeoutMs,
    killGraceMs,
    maxOutputBytes: 0,
    afterDrain: 'unref',
    onOutput: (stream, chunk) => splitters[stream].push(chunk),
    onTimeout: () =>
      log.warn({ event: 'boot-hook-timeout', hook: name }, `hook ${name}: timed out after ${formatSeconds(timeoutMs)}; sending SIGTERM to its process group`),
  });
  for (const splitter of Object.values(splitters)) splitter.end();
  if (run.spawnError !== null) return finish({ ok: false, message: run.spawnError });

  const { code, signal, timedOut } = run;
  const note = lastLine ? `: ${lastLine.slice(0, MAX_NOTE_CHARS)}` : '';
  if (timedOut) {
    const how = run.forced ? `SIGKILL after ${formatSeconds(killGraceMs)} grace` : 'SIGTERM';
    return finish({ ok: false, exitCode: code, signal, timedOut, message: `timed out after ${formatSeconds(timeoutMs)}, stopped with ${how}` });
  }
  if (signal !== null) return finish({ ok: false, exitCode: null, signal, message: `killed by ${signal}${note}` });
  if (code !== 0) return finish({ ok: false, exitCode: code, signal, message: `exit code ${code}${note}` });
  return finish({ ok: true, exitCode: 0, signal, message: `exit 0 in ${formatSeconds(Date.now() - startedAt)}` });
}

function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}
