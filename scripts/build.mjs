// Bundles the CLI with esbuild. Code splitting keeps each command's modules in
// their own chunk, so `supervisor status` loads only what status needs.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });
await build({
  // tiny-model: the generated test/demo model (dev tool, not part of the supervisor).
  entryPoints: { cli: 'src/cli/main.ts', 'tiny-model': 'tools/tiny-model/main.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  // pino-pretty is loaded on a TTY only and stays a runtime dependency.
  external: ['pino', 'pino-pretty', 'thread-stream'],
  banner: { js: '#!/usr/bin/env node' },
  define: { __SUPERVISOR_VERSION__: JSON.stringify(version) },
  logLevel: 'warning',
});
