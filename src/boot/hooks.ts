// Boot hooks: executables in <hooksDir>/{stage-1,stage-2}/{on-first-run,on-every-run}.d/,
// run one at a time in lexical order, each in its own process group with a
// timeout, their output logged line by line under the hook's name. A stage's
// first-run marker is written only when all its first-run hooks succeeded, so a
// failed first run is tried again at the next start (upstream wrote it anyway).
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { join } from 'node:path';
import { signalGroup } from '../supervise/process-tree.ts';
import { describeError, errnoOf, writeFileAtomic } from './atomic-fs.ts';
import { silentBootLog, type BootLog } from './boot-log.ts';

export type HookStage = 'stage-1' | 'stage-2';
export type HookKind = 'on-first-run' | 'on-every-run';

/** SUPERVISOR_HOOKS_DIR's default. */
export const DEFAULT_HOOKS_DIR = '/etc/infer-dev/hooks';
/** Where first-run markers live (the container's writable layer, like upstream's /pei-init). */
export const DEFAULT_STATE_DIR = '/var/lib/infer-dev';
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
}

/** What a stage's first-run marker holds. */
export interface FirstRunMarker {
  version: 1;
  stage: HookStage;
  hooks: string[];
  completed_at: string;
}

/** The result of one stage/kind directory, and for first-run, what happened to the marker. */
export interface StageHooksReport {
  stage: HookStage;
  kind: HookKind;
  dir: string;
  results: HookResult[];
  /** first-run only: `present` (hooks skipped), `written`, or `not-written` (a hook failed). */
  marker: { path: string; state: 'present' | 'written' | 'not-written'; message: string } | null;
}

/** The directory of one stage and kind. */
export function getHookDir(hooksDir: string, stage: HookStage, kind: HookKind): string {
  return join(hooksDir, stage, `${kind}.d`);
}

/** The first-run marker file of a stage. */
export function getMarkerPath(stateDir: string, stage: HookStage): string {
  return join(stateDir, `${stage}.first-run.json`);
}

/** Runs one stage/kind: for first-run, skipped when the marker exists and the marker written only after full success. */
export async function runStageHooks({
  hooksDir = DEFAULT_HOOKS_DIR,
  stateDir = DEFAULT_STATE_DIR,
  stage,
  kind,
  ...options
}: HookRunOptions & { hooksDir?: string; stateDir?: string; stage: HookStage; kind: HookKind }): Promise<StageHooksReport> {
  const log = options.log ?? silentBootLog;
  const dir = getHookDir(hooksDir, stage, kind);
  const markerPath = getMarkerPath(stateDir, stage);
  if (kind === 'on-first-run') {
    const existing = await readFirstRunMarker(markerPath);
    if (existing !== null) {
      const message = `first run already done (${existing}); first-run hooks skipped`;
      log('info', `${stage} ${kind}: ${message}`, { event: 'boot-hooks-skipped', stage, marker: markerPath });
      return { stage, kind, dir, results: [], marker: { path: markerPath, state: 'present', message } };
    }
  }
  const results = await runHookDir({ dir, label: `${stage}/${kind}.d`, ...options, log });
  if (kind === 'on-every-run') return { stage, kind, dir, results, marker: null };

  const failed = results.filter((r) => !r.ok && !r.skipped);
  if (failed.length > 0) {
    const message = `marker not written: ${failed.map((r) => r.name).join(', ')} failed; first-run hooks run again at the next start`;
    log('warn', `${stage} ${kind}: ${message}`, { event: 'boot-marker-not-written', stage, marker: markerPath });
    return { stage, kind, dir, results, marker: { path: markerPath, state: 'not-written', message } };
  }
  const marker: FirstRunMarker = { version: 1, stage, hooks: results.filter((r) => r.ok).map((r) => r.name), completed_at: new Date().toISOString() };
  await mkdir(stateDir, { recursive: true, mode: 0o755 });
  await writeFileAtomic(markerPath, `${JSON.stringify(marker, null, 2)}\n`);
  const message = `marker written (${marker.hooks.length} hook(s) ok)`;
  log('info', `${stage} ${kind}: ${message}`, { event: 'boot-marker-written', stage, marker: markerPath });
  return { stage, kind, dir, results, marker: { path: markerPath, state: 'written', message } };
}

/** A short description of an existing marker; null when there is none. */
export async function readFirstRunMarker(path: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
  try {
    const marker = JSON.parse(text) as Partial<FirstRunMarker>;
    return `marker ${path} from ${marker.completed_at ?? 'an unknown time'}`;
  } catch (err) {
    // Present is what counts; a marker someone edited by hand still means "done".
    if (err instanceof SyntaxError) return `marker ${path}, unreadable JSON`;
    throw err;
  }
}

/** Runs every executable of a directory in lexical order; a failure does not stop the next hook (unless stopOnFailure). */
export async function runHookDir({ dir, label, ...options }: HookRunOptions & { dir: string; label: string }): Promise<HookResult[]> {
  const log = options.log ?? silentBootLog;
  const results: HookResult[] = [];
  let entries: HookEntry[];
  try {
    entries = await listHooks(dir);
  } catch (err) {
    const message = `cannot read hook directory ${dir}: ${describeError(err)}`;
    log('error', message, { event: 'boot-hook-dir-error', dir });
    return [{ ...emptyResult(label, dir), message }];
  }
  for (const entry of entries) {
    const name = `${label}/${entry.name}`;
    if (entry.problem !== null) {
      const message = `skipped: ${entry.problem}`;
      log('warn', `hook ${name} ${message}`, { event: 'boot-hook-skipped', hook: name });
      results.push({ ...emptyResult(name, entry.path), skipped: true, message });
      continue;
    }
    const result = await runHook({ path: entry.path, name, ...options, log });
    results.push(result);
    if (!result.ok && options.stopOnFailure) break;
  }
  return results;
}

/** One directory entry: a runnable hook, or why it is not one. */
export interface HookEntry {
  name: string;
  path: string;
  /** null: runnable. */
  problem: string | null;
}

/** The entries of a hook directory in lexical (byte) order; dotfiles are ignored, a missing directory is empty. */
export async function listHooks(dir: string): Promise<HookEntry[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  const sorted = names.filter((n) => !n.startsWith('.')).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const entries: HookEntry[] = [];
  for (const name of sorted) {
    const path = join(dir, name);
    entries.push({ name, path, problem: await findHookProblem(path) });
  }
  return entries;
}

// Why a path cannot run as a hook; null when it can.
async function findHookProblem(path: string): Promise<string | null> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return info.isDirectory() ? 'a directory, not a hook' : 'not a regular file';
    await access(path, constants.X_OK);
    return null;
  } catch (err) {
    if (errnoOf(err) === 'EACCES') return 'not executable (chmod +x it to run it)';
    if (errnoOf(err) === 'ENOENT') return 'a dangling symlink';
    throw err;
  }
}

function emptyResult(name: string, path: string): HookResult {
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
}: HookRunOptions & { path: string; name: string }): Promise<HookResult> {
  const startedAt = Date.now();
  const finish = (fields: Partial<HookResult> & { ok: boolean; message: string }): HookResult => {
    const result = { ...emptyResult(name, path), startedAt, durationMs: Date.now() - startedAt, ...fields };
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
  if (timedOut) signalGroup(pid, 'SIGKILL');
  await Promise.race([outputDone, new Promise((resolve) => setTimeout(resolve, OUTPUT_DRAIN_MS))]);
  // Whatever still holds the pipes (a daemon the hook started) keeps being logged but no longer keeps us alive.
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();

  const note = lastLine ? `: ${lastLine.slice(0, MAX_NOTE_CHARS)}` : '';
  if (timedOut) {
    const how = forced ? `SIGKILL after ${formatSeconds(killGraceMs)} grace` : 'SIGTERM';
    return finish({ ok: false, exitCode: code, signal, timedOut, message: `timed out after ${formatSeconds(timeoutMs)}, stopped with ${how}` });
  }
  if (signal !== null) return finish({ ok: false, exitCode: null, signal, message: `killed by ${signal}${note}` });
  if (code !== 0) return finish({ ok: false, exitCode: code, signal, message: `exit code ${code}${note}` });
  return finish({ ok: true, exitCode: 0, signal, message: `exit 0 in ${formatSeconds(Date.now() - startedAt)}` });
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
