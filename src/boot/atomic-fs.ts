// Filesystem writes a reader can trust: a file or symlink is made under a
// temporary name in the same directory and renamed into place, so a crash or a
// concurrent reader never sees half of it.
import { open, readdir, rename, stat, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The errno code of a filesystem error (`ENOENT`, ...), or undefined for other errors. */
export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** A message for a caught error, without its stack. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Options of writeFileAtomic: the final mode (umask does not apply) and an optional owner. */
export interface AtomicWriteOptions {
  mode?: number;
  uid?: number;
  gid?: number;
}

/** Writes a file through temp + fsync + rename; the temp file is removed when anything fails. */
export async function writeFileAtomic(path: string, data: string | Buffer, { mode = 0o644, uid, gid }: AtomicWriteOptions = {}): Promise<void> {
  const temp = makeTempName(path);
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(data);
      await handle.chmod(mode);
      if (uid !== undefined && gid !== undefined) await handle.chown(uid, gid);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await removeQuietly(temp);
    throw err;
  }
}

/** Points `path` at `target`, replacing a symlink already there (dangling or not) in one rename. */
export async function replaceSymlink(path: string, target: string): Promise<void> {
  const temp = makeTempName(path);
  try {
    await symlink(target, temp);
    // rename(2) replaces a symlink or file at `path` atomically; it refuses a directory (EISDIR/ENOTDIR).
    await rename(temp, path);
  } catch (err) {
    await removeQuietly(temp);
    throw err;
  }
}

// Unique, not secret: Math.random, because node:crypto costs boot about 4 ms to load. The random part
// keeps two containers (each PID 1) that share a volume apart.
function makeTempName(path: string): string {
  const random = Math.floor(Math.random() * 0x1_0000_0000).toString(16).padStart(8, '0');
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${random}`);
}

// Cleanup after a failure: a temp name that was never created is fine.
async function removeQuietly(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}

/** Whether a path leads to something, links followed: false for a missing path or a dangling link. */
export async function pathResolves(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR' || errnoOf(err) === 'ELOOP') return false;
    throw err;
  }
}

/** Whether a path is a directory, links followed: false when it is missing. */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return false;
    throw err;
  }
}

/** A directory's entry names; a missing directory has none. */
export async function readDirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
}
