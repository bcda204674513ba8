// node-tar and yauzl load only for install-pkg: nothing `supervisor status`
// (or any other command) imports statically reaches src/bundle/.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { expect, test } from 'vitest';
import { REPO_ROOT } from '../support/daemon.ts';

/** Every module reachable from `entry` through static imports (dynamic import() is not followed). */
function staticClosure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(/^\s*(?:import|export)\s+(?!type\b)[^'"]*?from\s*['"]([^'"]+)['"]/gm)) {
      const spec = match[1];
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else packages.add(spec);
    }
  };
  visit(join(REPO_ROOT, entry));
  return { files, packages };
}

const inBundle = (files: Set<string>) => [...files].filter((f) => f.includes('/src/bundle/'));

test('the CLI entry and the status command reach neither src/bundle nor tar/yauzl', () => {
  for (const entry of ['src/cli/main.ts', 'src/cli/commands/status.ts']) {
    const { files, packages } = staticClosure(entry);
    expect(inBundle(files), entry).toEqual([]);
    expect([...packages].filter((p) => p === 'tar' || p === 'yauzl'), entry).toEqual([]);
  }
});

test('negative control: install-pkg does reach the installer and node-tar (yauzl is required at run time)', () => {
  const { files, packages } = staticClosure('src/cli/commands/install-pkg.ts');
  expect(inBundle(files).length).toBeGreaterThan(5);
  expect(packages.has('tar')).toBe(true);
  expect(readFileSync(join(REPO_ROOT, 'src/bundle/extract-zip.ts'), 'utf8')).toMatch(/createRequire\(import\.meta\.url\)\('yauzl'\)/);
});
