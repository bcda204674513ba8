// What an interrupted install leaves behind (kill -9, power loss): staging and
// trash directories, half-copied archives, temp symlinks and temp files. Only
// ever run while holding the install lock, so none of them is in use.
import { readdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PARTIAL_PREFIX, STAGING_PREFIX, TRASH_PREFIX, type BundlePaths } from './paths.ts';

/** Removes leftovers of earlier runs; returns the paths removed. */
export async function cleanLeftovers(paths: BundlePaths): Promise<string[]> {
  const linkTemp = `.${basename(paths.activeLink)}.tmp-`;
  const rules: ReadonlyArray<readonly [string, (name: string) => boolean]> = [
    [paths.versionsDir, (n) => n.startsWith(STAGING_PREFIX) || n.startsWith(TRASH_PREFIX) || n.startsWith(`.${basename(paths.historyFile)}.tmp-`) || n.startsWith(`${basename(paths.lockFile)}.stale-`)],
    [paths.cacheDir, (n) => n.startsWith(PARTIAL_PREFIX)],
    [paths.root, (n) => n.startsWith(linkTemp)],
  ];
  const removed: string[] = [];
  for (const [dir, isLeftover] of rules) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const name of names.filter(isLeftover)) {
      await rm(join(dir, name), { recursive: true, force: true, maxRetries: 3 });
      removed.push(join(dir, name));
    }
  }
  return removed;
}
