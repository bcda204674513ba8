// The client is on the `supervisor status` path, which must start in about
// twice `node -e 0`: it may load node:net, errors.ts and protocol.ts, nothing else.

import { readFile } from 'node:fs/promises';
import { expect, test } from 'vitest';

// The module specifiers a source file imports (static imports, re-exports and dynamic import()).
async function getImports(relative: string): Promise<string[]> {
  const source = await readFile(new URL(`../../src/${relative}`, import.meta.url), 'utf8');
  const found = new Set<string>();
  for (const match of source.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]/g)) found.add(match[1]);
  for (const match of source.matchAll(/(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)) found.add(match[1]);
  for (const match of source.matchAll(/\bimport\s*\(\s*['"]([^'"]+)['"]/g)) found.add(match[1]);
  return [...found].sort();
}

test('client.ts imports only node:net, errors.ts and protocol.ts', async () => {
  expect(await getImports('control/client.ts')).toEqual(['../errors.ts', './protocol.ts', 'node:net']);
});

test('protocol.ts and errors.ts import nothing', async () => {
  expect(await getImports('control/protocol.ts')).toEqual([]);
  expect(await getImports('errors.ts')).toEqual([]);
  // Negative control: the scanner does see the server's imports.
  expect(await getImports('control/server.ts')).toContain('node:fs/promises');
});
