// `mkdir -p` that always ends. Node 20's mkdir(path, { recursive: true }) never
// settles under /proc (`/proc/1/nope/x`: mkdir says ENOENT, the parent exists,
// and it tries again for ever, at 100 % CPU). Here each directory is made
// once, its parent first, so a refusal is final.
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { errnoOf } from '../process/errno.ts';

/** Makes `path` and its missing parents; resolves when it is a directory, or rejects with why not. */
export async function makeDirectories(path: string, mode?: number): Promise<void> {
  try {
    await mkdir(path, { mode });
    return;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'EEXIST') return assertDirectory(path, err);
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw err;
  }
  await makeDirectories(dirname(path), mode);
  try {
    await mkdir(path, { mode });
  } catch (err) {
    // The parent is there now: this answer is final, also ENOENT (a file system that takes no new entries, as /proc).
    if (errnoOf(err) === 'EEXIST') return assertDirectory(path, err);
    throw err;
  }
}

async function assertDirectory(path: string, existsError: unknown): Promise<void> {
  if (!(await stat(path)).isDirectory()) throw existsError;
}
