// The /soft links: /soft/{app,data,workspace} point at /hard/volume/<name> when
// a volume is mounted there, else at /hard/image/<name> (upstream create-links.sh).
// Unlike upstream, a stale or dangling link is repaired (atomically), and a real
// directory or file in a link's place is never touched, only reported.
import { chmod, lstat, mkdir, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceSymlink, describeError, errnoOf, isDirectory, pathResolves } from './atomic-fs.ts';
import { silentLog, type Log } from '../logging/log.ts';
import type { StepOutcome } from './steps.ts';

/** The names under /soft, in upstream's order. */
const SOFT_LINK_NAMES = Object.freeze(['app', 'data', 'workspace'] as const);

/** Where the link trees live; tests point both at temp dirs. */
export interface LinkRoots {
  /** Default `/soft`. */
  softRoot?: string;
  /** Default `/hard` (holds `volume/` and `image/`). */
  hardRoot?: string;
}

/** linkSoftDirs' options. */
export interface LinkOptions extends LinkRoots {
  /** SUPERVISOR_CHMOD_VOLUMES: upstream's `chmod -R 777` of each mounted volume dir. */
  chmodVolumes?: boolean;
  log?: Log;
}

/** One link's result, with the paths for the log. */
export interface LinkOutcome extends StepOutcome {
  path: string;
  target: string;
}

const FULL_ACCESS = 0o777;
/** Errors kept in a chmod report; the rest are only counted. */
const MAX_REPORTED_ERRORS = 3;

/** Creates or repairs the three /soft links (and chmods volumes when asked); one outcome per link, plus one per chmod. */
export async function linkSoftDirs({ softRoot = '/soft', hardRoot = '/hard', chmodVolumes = false, log = silentLog }: LinkOptions = {}): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  await mkdir(softRoot, { recursive: true });
  for (const name of SOFT_LINK_NAMES) {
    const volume = join(hardRoot, 'volume', name);
    const hasVolume = await isDirectory(volume);
    if (hasVolume && chmodVolumes) outcomes.push(await chmodVolume({ dir: volume, log }));
    const outcome = await linkOne({ path: join(softRoot, name), target: hasVolume ? volume : join(hardRoot, 'image', name) });
    log[outcome.state === 'ok' ? 'info' : 'warn']({ event: 'boot-link', path: outcome.path, target: outcome.target, state: outcome.state }, `${outcome.name}: ${outcome.message}`);
    outcomes.push(outcome);
  }
  return outcomes;
}

/** Makes `path` a symlink to `target` unless something that is not a symlink is in the way. */
async function linkOne({ path, target }: { path: string; target: string }): Promise<LinkOutcome> {
  const startedAt = Date.now();
  const done = (state: StepOutcome['state'], message: string): LinkOutcome => ({
    name: `link ${path}`,
    state,
    message,
    path,
    target,
    startedAt,
    durationMs: Date.now() - startedAt,
  });
  let current: string | null;
  try {
    current = await readExisting(path);
  } catch (err) {
    if (err instanceof InTheWay) return done('warning', `${err.message}; left alone, remove it to get the link to ${target}`);
    return done('failed', `cannot inspect ${path}: ${describeError(err)}`);
  }
  const targetNote = (await pathResolves(target)) ? '' : ` (${target} does not exist yet)`;
  if (current === target) return done(targetNote ? 'warning' : 'ok', `already points to ${target}${targetNote}`);
  // stat follows the old link: ENOENT means it was dangling (upstream never repaired those).
  const wasDangling = current !== null && !(await pathResolves(path));
  try {
    await replaceSymlink(path, target);
  } catch (err) {
    return done('failed', `cannot link ${path} to ${target}: ${describeError(err)}`);
  }
  const was = current === null ? '' : ` (was ${current}${wasDangling ? ', dangling' : ''})`;
  return done(targetNote ? 'warning' : 'ok', `-> ${target}${was}${targetNote}`);
}

/** A real file or directory where a link belongs. */
class InTheWay extends Error {}

// The current link text; null when nothing is there; InTheWay for anything that is not a symlink.
async function readExisting(path: string): Promise<string | null> {
  let info;
  try {
    info = await lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
  if (info.isSymbolicLink()) return readlink(path);
  throw new InTheWay(`${path} is a real ${info.isDirectory() ? 'directory' : 'file'}, not a link`);
}

// Upstream's rule: only when the volume dir itself is not 0777 yet, then the whole tree.
async function chmodVolume({ dir, log }: { dir: string; log: Log }): Promise<StepOutcome> {
  const startedAt = Date.now();
  const name = `chmod ${dir}`;
  const mode = (await stat(dir)).mode & 0o7777;
  if (mode === FULL_ACCESS) return { name, state: 'skipped', message: 'already mode 777', startedAt, durationMs: Date.now() - startedAt };
  log.info({ event: 'boot-chmod', dir }, `SUPERVISOR_CHMOD_VOLUMES: chmod -R 777 ${dir}`);
  const { changed, failed, errors } = await chmodTree({ root: dir, mode: FULL_ACCESS });
  const state = failed === 0 ? 'ok' : 'warning';
  const message = `chmod -R 777: ${changed} entries changed${failed ? `, ${failed} failed (${errors.join('; ')})` : ''}`;
  return { name, state, message, startedAt, durationMs: Date.now() - startedAt };
}

/** chmod of a whole tree without recursion (an explicit stack: any depth) and without following symlinks. */
export async function chmodTree({ root, mode }: { root: string; mode: number }): Promise<{ changed: number; failed: number; errors: string[] }> {
  let changed = 0;
  let failed = 0;
  const errors: string[] = [];
  const fail = (path: string, err: unknown) => {
    failed += 1;
    if (errors.length < MAX_REPORTED_ERRORS) errors.push(`${path}: ${errnoOf(err) ?? describeError(err)}`);
  };
  const stack = [root];
  while (stack.length > 0) {
    const path = stack.pop() as string;
    let info;
    try {
      info = await lstat(path);
    } catch (err) {
      // Removed while we walked: nothing to change.
      if (errnoOf(err) === 'ENOENT') continue;
      fail(path, err);
      continue;
    }
    // chmod(2) follows symlinks: a link could point anywhere on the host, so links are skipped.
    if (info.isSymbolicLink()) continue;
    if ((info.mode & 0o7777) !== mode) {
      try {
        await chmod(path, mode);
        changed += 1;
      } catch (err) {
        fail(path, err);
      }
    }
    if (!info.isDirectory()) continue;
    try {
      for (const entry of await readdir(path)) stack.push(join(path, entry));
    } catch (err) {
      fail(path, err);
    }
  }
  return { changed, failed, errors };
}
