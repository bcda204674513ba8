// `supervisor install-pkg`: install a llama.cpp bundle, or roll back.
//   1. check the file and its format (magic bytes); take the lock; clean leftovers
//   2. hash it; the active checksum again → nothing to do; a kept version → switch to it
//   3. copy it into the cache (hashing as it goes), then stage it (stage-package.ts)
//   4. rename the staged package into llama-cpp.d, switch the link, prune
// A failure at any step leaves the active install as it was; the staging
// directory and a cache copy made by this run are removed.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { readText } from '../boot/env-flags.ts';
import { SupervisorError, UsageError } from '../errors.ts';
import { activateVersion, findPrevious, findVersionBySha, pickVersionName, pruneVersions, readActive, type InstalledFrom } from './activate.ts';
import { ArchiveError } from './archive-error.ts';
import { cacheArchive, exists, hashFile } from './cache.ts';
import { detectFormat, formatFromName, readHead, SUPPORTED_FORMATS, type ArchiveFormat } from './detect-format.ts';
import { cleanLeftovers } from './leftovers.ts';
import { acquireLock } from './lock.ts';
import { getSoftAppRoot, makeBundlePaths, STAGING_PREFIX, type BundlePaths } from './paths.ts';
import { silentProgress, type Progress } from './progress.ts';
import { stagePackage } from './stage-package.ts';

export interface InstallOptions {
  archive: string;
  /** Default: SUPERVISOR_SOFT_APP, else /soft/app. */
  root?: string;
  force?: boolean;
  /** Run `llama-server --version` before activating (default true). */
  verify?: boolean;
  /** Default: AUTO_INFER_LLAMA_CPP_PKG_SHA256. */
  expectedSha256?: string | null;
  env?: NodeJS.ProcessEnv;
  progress?: Progress;
  log?: (line: string) => void;
  signal?: AbortSignal;
  lockTimeoutMs?: number;
  shimCommand?: readonly string[];
}

export interface InstallResult {
  status: 'installed' | 'already-installed' | 'reactivated';
  archive: string;
  sha256: string;
  format: ArchiveFormat;
  /** The active path (the symlink). */
  active: string;
  /** The version directory it leads to. */
  versionDir: string;
  version: string | null;
  warnings: string[];
  pruned: string[];
  timingsMs: Record<string, number>;
}

export interface RollbackResult {
  status: 'rolled-back';
  from: string | null;
  to: string;
  active: string;
  record: InstalledFrom | null;
}

/** Installs an archive (see the steps above). */
export async function installPackage(options: InstallOptions): Promise<InstallResult> {
  try {
    return await install(options);
  } catch (err) {
    throw describeAbort(err);
  }
}

async function install(options: InstallOptions): Promise<InstallResult> {
  const { env = process.env, force = false, verify = true, progress = silentProgress, log = () => {}, signal } = options;
  const startedAt = Date.now();
  const timingsMs: Record<string, number> = {};
  const paths = makeBundlePaths(options.root ?? getSoftAppRoot(env));
  const archive = resolve(options.archive);
  const archiveName = basename(archive);
  const expected = readExpectedSha(options.expectedSha256 !== undefined ? options.expectedSha256 : readText(env, 'AUTO_INFER_LLAMA_CPP_PKG_SHA256'));
  const size = await statArchive(archive);
  const detection = detectFormat(await readHead(archive));
  if (!detection.ok) throw new ArchiveError(archiveName, `unsupported archive format: the file is ${detection.what}; supported: ${SUPPORTED_FORMATS}`);
  const { format } = detection;
  const warnings: string[] = [];
  const named = formatFromName(archiveName);
  if (named !== format) warnings.push(`${archiveName} is named like ${named ? `a .${named}` : 'no supported format'} but is a ${format} archive; going by its content`);

  await mkdir(paths.versionsDir, { recursive: true, mode: 0o755 });
  await mkdir(paths.cacheDir, { recursive: true, mode: 0o755 });
  const lock = await acquireLock({ path: paths.lockFile, timeoutMs: options.lockTimeoutMs, signal, onWait: (o) => log(`waiting for another install (pid ${o.pid}, since ${o.at})`) });
  try {
    const removed = await cleanLeftovers(paths);
    if (removed.length > 0) log(`removed ${removed.length} leftover(s) of an interrupted install`);
    const active = await readActive(paths);
    let sha256: string | null = null;
    if (expected !== null || (!force && active?.record)) {
      const hashStarted = Date.now();
      const task = progress.start('hashing', size);
      sha256 = await hashFile(archive, { onProgress: (n) => task.update(n), signal });
      task.finish();
      timingsMs.hash = Date.now() - hashStarted;
    }
    if (expected !== null && sha256 !== expected) {
      throw new ArchiveError(archiveName, `sha256 mismatch: AUTO_INFER_LLAMA_CPP_PKG_SHA256 expects ${expected}, the archive is ${sha256}`);
    }
    const base = { archive, format, active: paths.activeLink, warnings, timingsMs };
    if (!force && sha256 !== null && active?.record?.sha256 === sha256 && (await exists(join(active.dir, 'bin', 'llama-server')))) {
      timingsMs.total = Date.now() - startedAt;
      return { ...base, status: 'already-installed', sha256, versionDir: active.dir, version: active.record.version ?? null, pruned: [] };
    }
    if (!force && sha256 !== null) {
      const kept = await findVersionBySha(paths, sha256);
      if (kept !== null && kept !== active?.name) {
        const previous = await activateVersion(paths, active, kept);
        const pruned = await pruneQuietly({ paths, keep: keepList(kept, previous), warnings });
        const record = await readActive(paths);
        timingsMs.total = Date.now() - startedAt;
        return { ...base, status: 'reactivated', sha256, versionDir: join(paths.versionsDir, kept), version: record?.record?.version ?? null, pruned };
      }
    }

    const copyStarted = Date.now();
    const cached = await cacheArchive({ paths, archive, archiveName, size, sha256, ext: format, progress, signal });
    timingsMs.copy = Date.now() - copyStarted;
    if (sha256 !== null && cached.sha256 !== sha256) {
      if (cached.created) await rm(cached.path, { force: true });
      throw new SupervisorError(`${archiveName} changed while it was being read (sha256 ${sha256} then ${cached.sha256}); try again once it is complete`);
    }
    const staging = join(paths.versionsDir, `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(staging, { mode: 0o700 });
    let activated = false;
    try {
      const staged = await stagePackage({
        file: cached.path,
        size,
        archiveName,
        format,
        sha256: cached.sha256,
        staging,
        spaceWhere: paths.versionsDir,
        verify,
        env,
        excludeLibraryDirs: [paths.activeLink, paths.versionsDir],
        shimCommand: options.shimCommand,
        progress,
        signal,
      });
      Object.assign(timingsMs, staged.timingsMs);
      warnings.push(...staged.warnings);
      const activateStarted = Date.now();
      // A forced reinstall of the active archive replaces that version: what --rollback leads to must stay the
      // version before it, not become the identical copy being replaced (which is pruned).
      const sameAsActive = active !== null && active.record?.sha256 === cached.sha256;
      const rollbackTarget = sameAsActive ? await findPrevious(paths, active.name) : undefined;
      const name = await pickVersionName(paths, cached.sha256);
      await rename(staged.dir, join(paths.versionsDir, name));
      const previous = await activateVersion(paths, active, name);
      activated = true;
      const pruned = await pruneQuietly({ paths, keep: keepList(name, rollbackTarget === undefined ? previous : rollbackTarget), warnings });
      timingsMs.activate = Date.now() - activateStarted;
      timingsMs.total = Date.now() - startedAt;
      return { ...base, status: 'installed', sha256: cached.sha256, versionDir: join(paths.versionsDir, name), version: staged.version, pruned };
    } catch (err) {
      if (cached.created && !activated) await rm(cached.path, { force: true });
      throw err;
    } finally {
      await rm(staging, { recursive: true, force: true, maxRetries: 5 });
    }
  } finally {
    await lock.release();
  }
}

/** Switches back to the version active before this one. */
export async function rollbackPackage({ root, env = process.env, log = () => {}, lockTimeoutMs }: { root?: string; env?: NodeJS.ProcessEnv; log?: (line: string) => void; lockTimeoutMs?: number } = {}): Promise<RollbackResult> {
  const paths = makeBundlePaths(root ?? getSoftAppRoot(env));
  await mkdir(paths.versionsDir, { recursive: true, mode: 0o755 });
  const lock = await acquireLock({ path: paths.lockFile, timeoutMs: lockTimeoutMs, onWait: (o) => log(`waiting for another install (pid ${o.pid}, since ${o.at})`) });
  try {
    await cleanLeftovers(paths);
    const active = await readActive(paths);
    const target = await findPrevious(paths, active?.name ?? null);
    if (target === null) {
      const what = active ? `${paths.activeLink} is the only kept version` : `no install is active at ${paths.activeLink} and ${paths.versionsDir} holds none`;
      throw new SupervisorError(`nothing to roll back to: ${what}`);
    }
    const from = await activateVersion(paths, active, target);
    return { status: 'rolled-back', from, to: target, active: paths.activeLink, record: (await readActive(paths))?.record ?? null };
  } finally {
    await lock.release();
  }
}

// Pruning after a successful switch: a failure there is a warning, not a failed install.
async function pruneQuietly({ paths, keep, warnings }: { paths: BundlePaths; keep: string[]; warnings: string[] }): Promise<string[]> {
  try {
    return (await pruneVersions(paths, keep)).versions;
  } catch (err) {
    warnings.push(`could not remove old versions: ${(err as Error).message}`);
    return [];
  }
}

function keepList(current: string, previous: string | null): string[] {
  return previous !== null && previous !== current ? [current, previous] : [current];
}

async function statArchive(archive: string): Promise<number> {
  try {
    const info = await stat(archive);
    if (info.isFile()) return info.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
  }
  throw new ArchiveError(archive, 'package not found (not a regular file)');
}

function readExpectedSha(raw: string | null): string | null {
  if (raw === null || raw.trim() === '') return null;
  const sha = raw.trim().toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(sha)) throw new UsageError(`AUTO_INFER_LLAMA_CPP_PKG_SHA256=${JSON.stringify(raw)} is not a sha256 (64 hex digits)`);
  return sha;
}

function describeAbort(err: unknown): unknown {
  if ((err as Error)?.name !== 'AbortError') return err;
  return new SupervisorError('interrupted; the active install is unchanged', { cause: err });
}
