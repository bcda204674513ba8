// The archive cache: /soft/app/cache/<sha256>.<ext>. The archive is copied to
// a temporary name while its sha256 is computed and renamed into place only
// when complete, so a name in the cache always means "these exact bytes"; a
// copy cut short by a crash is a .partial-* file the next run removes.
import { createHash, randomBytes } from 'node:crypto';
import { lstat, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { SupervisorError } from '../errors.ts';
import { ArchiveError } from './archive-error.ts';
import { PARTIAL_PREFIX, type BundlePaths } from './paths.ts';
import type { Progress } from './progress.ts';
import { formatBytes, getFreeBytes } from './space-budget.ts';

/** Read size for hashing and copying; two buffers alternate so reading overlaps hashing and writing. */
const CHUNK = 1024 * 1024;

/** Called with the bytes processed so far. */
export type OnBytes = (done: number) => void;

/** The sha256 of a file, as lowercase hex. */
export async function hashFile(path: string, { onProgress, signal }: { onProgress?: OnBytes; signal?: AbortSignal } = {}): Promise<string> {
  const hash = createHash('sha256');
  await readChunks({ path, onChunk: (chunk) => void hash.update(chunk), onProgress, signal });
  return hash.digest('hex');
}

/** A cached archive: its path, checksum, and whether this call created it. */
export interface CachedArchive {
  path: string;
  sha256: string;
  created: boolean;
}

/** The cache file for a checksum and format extension. */
function cachePathFor({ cacheDir, sha256, ext }: { cacheDir: string; sha256: string; ext: string }): string {
  return join(cacheDir, `${sha256}.${ext}`);
}

/** Copies `source` into the cache through a temp file, hashing as it goes; an existing entry for the same bytes is kept. */
async function copyToCache({ source, cacheDir, ext, onProgress, signal }: { source: string; cacheDir: string; ext: string; onProgress?: OnBytes; signal?: AbortSignal }): Promise<CachedArchive> {
  const temp = join(cacheDir, `${PARTIAL_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`);
  const hash = createHash('sha256');
  let out: FileHandle | undefined;
  try {
    out = await open(temp, 'wx', 0o644);
    const target = out;
    await readChunks({
      path: source,
      onChunk: async (chunk) => {
        hash.update(chunk);
        await target.write(chunk);
      },
      onProgress,
      signal,
    });
    await out.sync();
    await out.close();
    out = undefined;
    const sha256 = hash.digest('hex');
    const path = cachePathFor({ cacheDir, sha256, ext });
    if (await exists(path)) {
      await unlink(temp);
      return { path, sha256, created: false };
    }
    await rename(temp, path);
    return { path, sha256, created: true };
  } catch (err) {
    await out?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

/** The archive in the cache: the existing copy when its checksum is known and present, else a fresh copy (free space checked first). */
export async function cacheArchive({ paths, archive, archiveName, size, sha256, ext, progress, signal }: {
  paths: BundlePaths;
  archive: string;
  archiveName: string;
  size: number;
  sha256: string | null;
  /** The file extension: the format (tar, tar.gz, zip). */
  ext: string;
  progress: Progress;
  signal?: AbortSignal;
}): Promise<CachedArchive> {
  if (sha256 !== null) {
    const path = cachePathFor({ cacheDir: paths.cacheDir, sha256, ext });
    if (path === archive || (await sizeOf(path)) === size) return { path, sha256, created: false };
  }
  const free = await getFreeBytes(paths.cacheDir);
  if (size > free) throw new ArchiveError(archiveName, `the archive (${formatBytes(size)}) does not fit in the ${formatBytes(free)} free on ${paths.cacheDir}`);
  const task = progress.start('copying to the cache', size);
  try {
    return await copyToCache({ source: archive, cacheDir: paths.cacheDir, ext, onProgress: (n) => task.update(n), signal });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') throw new SupervisorError(`${archiveName}: no space left on ${paths.cacheDir} while caching the archive (${code})`, { cause: err });
    throw err;
  } finally {
    task.finish();
  }
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** True if something is at the path (a dangling symlink counts). */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

// Reads a file in CHUNK pieces; the next read is already running while a chunk is handled.
async function readChunks({ path, onChunk, onProgress, signal }: { path: string; onChunk: (chunk: Buffer) => void | Promise<void>; onProgress?: OnBytes; signal?: AbortSignal }): Promise<void> {
  const handle = await open(path, 'r');
  const buffers = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  let which = 0;
  let position = 0;
  let pending = handle.read(buffers[0], 0, CHUNK, 0);
  try {
    for (;;) {
      const { bytesRead } = await pending;
      if (bytesRead === 0) break;
      signal?.throwIfAborted();
      const chunk = buffers[which].subarray(0, bytesRead);
      position += bytesRead;
      which ^= 1;
      pending = handle.read(buffers[which], 0, CHUNK, position);
      await onChunk(chunk);
      onProgress?.(position);
    }
  } finally {
    await pending.catch(() => undefined);
    await handle.close();
  }
}
