// Boot hooks: executables in <hooksDir>/{stage-1,stage-2}/{on-first-run,on-every-run}.d/,
// run one at a time in lexical order, each in its own process group with a
// timeout, their output logged line by line under the hook's name. A stage's
// first-run marker is written only when all its first-run hooks succeeded, so a
// failed first run is tried again at the next start (upstream wrote it anyway).
import { constants } from 'node:fs';
import { access, mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, errnoOf, readDirOrEmpty, writeFileAtomic } from './atomic-fs.ts';
import { silentLog } from '../logging/log.ts';
import { makeEmptyHookResult, runHook, type HookResult, type HookRunOptions } from './run-hook.ts';

/** Upstream's two stages: stage-1 hooks run before the /soft links, stage-2 after. */
export type HookStage = 'stage-1' | 'stage-2';
/** First-run hooks run until they all succeed once; every-run hooks run at each start. */
export type HookKind = 'on-first-run' | 'on-every-run';

/** SUPERVISOR_HOOKS_DIR's default. */
export const DEFAULT_HOOKS_DIR = '/etc/infer-dev/hooks';
/** Where first-run markers live (the container's writable layer, like upstream's /pei-init). */
export const DEFAULT_STATE_DIR = '/var/lib/infer-dev';

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

/** Where a stage's hooks and markers are, and how its hooks run. */
export interface StageHooksOptions extends HookRunOptions {
  /** Default `/etc/infer-dev/hooks`. */
  hooksDir?: string;
  /** Default `/var/lib/infer-dev`. */
  stateDir?: string;
}

/** Runs one stage/kind: for first-run, skipped when the marker exists and the marker written only after full success. */
export async function runStageHooks({
  hooksDir = DEFAULT_HOOKS_DIR,
  stateDir = DEFAULT_STATE_DIR,
  stage,
  kind,
  ...options
}: StageHooksOptions & { stage: HookStage; kind: HookKind }): Promise<StageHooksReport> {
  const log = options.log ?? silentLog;
  const dir = getHookDir(hooksDir, stage, kind);
  const markerPath = getMarkerPath(stateDir, stage);
  if (kind === 'on-first-run') {
    const existing = await readFirstRunMarker(markerPath);
    if (existing !== null) {
      const message = `first run already done (${existing}); first-run hooks skipped`;
      log.info({ event: 'boot-hooks-skipped', stage, marker: markerPath }, `${stage} ${kind}: ${message}`);
      return { stage, kind, dir, results: [], marker: { path: markerPath, state: 'present', message } };
    }
  }
  const results = await runHookDir({ dir, label: `${stage}/${kind}.d`, ...options, log });
  if (kind === 'on-every-run') return { stage, kind, dir, results, marker: null };

  const failed = results.filter((r) => !r.ok && !r.skipped);
  if (failed.length > 0) {
    const message = `marker not written: ${failed.map((r) => r.name).join(', ')} failed; first-run hooks run again at the next start`;
    log.warn({ event: 'boot-marker-not-written', stage, marker: markerPath }, `${stage} ${kind}: ${message}`);
    return { stage, kind, dir, results, marker: { path: markerPath, state: 'not-written', message } };
  }
  const marker: FirstRunMarker = { version: 1, stage, hooks: results.filter((r) => r.ok).map((r) => r.name), completed_at: new Date().toISOString() };
  await mkdir(stateDir, { recursive: true, mode: 0o755 });
  await writeFileAtomic(markerPath, `${JSON.stringify(marker, null, 2)}\n`);
  const message = `marker written (${marker.hooks.length} hook(s) ok)`;
  log.info({ event: 'boot-marker-written', stage, marker: markerPath }, `${stage} ${kind}: ${message}`);
  return { stage, kind, dir, results, marker: { path: markerPath, state: 'written', message } };
}

/** A short description of an existing marker; null when there is none. */
async function readFirstRunMarker(path: string): Promise<string | null> {
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
  const log = options.log ?? silentLog;
  const results: HookResult[] = [];
  let entries: HookEntry[];
  try {
    entries = await listHooks(dir);
  } catch (err) {
    const message = `cannot read hook directory ${dir}: ${describeError(err)}`;
    log.error({ event: 'boot-hook-dir-error', dir }, message);
    return [{ ...makeEmptyHookResult(label, dir), message }];
  }
  for (const entry of entries) {
    const name = `${label}/${entry.name}`;
    if (entry.problem !== null) {
      const message = `skipped: ${entry.problem}`;
      log.warn({ event: 'boot-hook-skipped', hook: name }, `hook ${name} ${message}`);
      results.push({ ...makeEmptyHookResult(name, entry.path), skipped: true, message });
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
  const names = await readDirOrEmpty(dir);
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
