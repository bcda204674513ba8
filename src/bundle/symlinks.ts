// Creates the package's symlinks once everything else is extracted and the
// link checks passed on the complete tree (entry-policy.ts): during extraction
// staging holds no symlink at all, so no entry can be written through one.
import { mkdir, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isWithin, type LinkRecord } from './entry-policy.ts';

/** Writes each link under `root` (relative to dest) as a symlink with its own target text. */
export async function writeSymlinks({ dest, links, root }: { dest: string; links: readonly LinkRecord[]; root: string }): Promise<number> {
  let written = 0;
  for (const link of links) {
    if (!isWithin(link.path, root)) continue;
    const at = join(dest, link.path);
    await mkdir(dirname(at), { recursive: true, mode: 0o755 });
    await symlink(link.target, at);
    written++;
  }
  return written;
}
