// Where the installer works. Everything lives under one root (default
// /soft/app, or SUPERVISOR_SOFT_APP) so tests can use a temp dir:
//
//   <root>/llama-cpp            symlink → llama-cpp.d/<id> (the active install)
//   <root>/llama-cpp.d/<id>/    one extracted package per version (id = sha256 prefix)
//   <root>/llama-cpp.d/.staging-<pid>-<rand>/   extraction in progress
//   <root>/llama-cpp.d/.lock    held while an install runs
//   <root>/llama-cpp.d/history.json   activations, newest last (for --rollback)
//   <root>/cache/<sha256>.<ext> the archives of the kept versions
import { join, resolve } from 'node:path';

/** The real root inside the infer-dev container. */
const DEFAULT_SOFT_APP = '/soft/app';

/** Every path the installer touches. */
export interface BundlePaths {
  root: string;
  /** The active install: a symlink into versionsDir (a real directory if an older installer made it). */
  activeLink: string;
  versionsDir: string;
  cacheDir: string;
  lockFile: string;
  historyFile: string;
}

/** The root: an explicit option, else SUPERVISOR_SOFT_APP, else /soft/app. */
export function getSoftAppRoot(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.SUPERVISOR_SOFT_APP;
  return fromEnv !== undefined && fromEnv.trim() !== '' ? fromEnv.trim() : DEFAULT_SOFT_APP;
}

/** All paths under one root. */
export function makeBundlePaths(root: string): BundlePaths {
  const abs = resolve(root);
  const versionsDir = join(abs, 'llama-cpp.d');
  return {
    root: abs,
    activeLink: join(abs, 'llama-cpp'),
    versionsDir,
    cacheDir: join(abs, 'cache'),
    lockFile: join(versionsDir, '.lock'),
    historyFile: join(versionsDir, 'history.json'),
  };
}

/** Prefix of leftovers of an interrupted extraction (removed by the next run, under the lock). */
export const STAGING_PREFIX = '.staging-';
/** Prefix of version dirs being deleted (prune), removed by the next run too. */
export const TRASH_PREFIX = '.trash-';
/** Prefix of a half-copied archive in the cache. */
export const PARTIAL_PREFIX = '.partial-';
