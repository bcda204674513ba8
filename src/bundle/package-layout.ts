// What a package must look like (upstream's rules): the package root is the
// archive root if it has bin/, else its single top-level folder if that has
// bin/. bin/llama-server must be an executable file. No README* at the root
// or no bin/*.so* only warns, as upstream did.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { EntryTree } from './entry-policy.ts';

/** Where the package root is inside staging ("" for staging itself), and what was left out. */
export type RootChoice = { ok: true; root: string; ignored: string[] } | { ok: false; reason: string };

/** How many top-level names an error lists. */
const LIST_LIMIT = 8;

/** Picks the package root from the extracted tree (no I/O). */
export function choosePackageRoot(tree: EntryTree): RootChoice {
  const isDirLike = (path: string): boolean => tree.kindOf(path) === 'directory' || tree.kindOf(path) === 'symlink';
  if (isDirLike('bin')) return { ok: true, root: '', ignored: [] };
  const top = tree.childrenOf('');
  const dirs = top.filter((p) => tree.kindOf(p) === 'directory');
  if (dirs.length === 1 && isDirLike(`${dirs[0]}/bin`)) return { ok: true, root: dirs[0], ignored: top.filter((p) => p !== dirs[0]) };
  const shown = top.slice(0, LIST_LIMIT).map((p) => (tree.kindOf(p) === 'directory' ? `${p}/` : p));
  const more = top.length > LIST_LIMIT ? ` and ${top.length - LIST_LIMIT} more` : '';
  const found = top.length === 0 ? 'the archive is empty' : `the archive root holds ${shown.join(', ')}${more}`;
  return { ok: false, reason: `invalid package layout: expected bin/llama-server at the archive root or inside its single top-level folder; ${found}` };
}

/** Checks the extracted package on disk; throws nothing, returns the error (if any) and the warnings. */
export async function checkPackageFiles({ dir, withoutUnixModes = false }: { dir: string; withoutUnixModes?: boolean }): Promise<{ error: string | null; warnings: string[] }> {
  const warnings: string[] = [];
  const server = join(dir, 'bin', 'llama-server');
  let info;
  try {
    info = await stat(server);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return { error: 'invalid package layout: no bin/llama-server in the package', warnings };
    throw err;
  }
  if (!info.isFile()) return { error: 'invalid package layout: bin/llama-server is not a regular file', warnings };
  if ((info.mode & 0o111) === 0) {
    const hint = withoutUnixModes
      ? ': the zip carries no Unix file modes (made on Windows?); zip it on Linux or macOS (Info-ZIP `zip -r --symlinks`) or use a .tar.gz'
      : '';
    return { error: `bin/llama-server is not executable (mode 0${(info.mode & 0o777).toString(8)})${hint}`, warnings };
  }
  const rootNames = await readdir(dir);
  if (!rootNames.some((n) => n.startsWith('README'))) warnings.push('no README* at the package root (expected by convention)');
  const binNames = await readdir(join(dir, 'bin'));
  if (!binNames.some((n) => /\.so(\.|$)/.test(n))) warnings.push('no bin/*.so* shared libraries (expected by convention)');
  return { error: null, warnings };
}
