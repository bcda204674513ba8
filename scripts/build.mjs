// Bundles the CLI with esbuild. Code splitting keeps each command's modules in
// their own chunk, so `supervisor status` loads only what status needs.
import { build } from 'esbuild';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';

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
  // pino-pretty is loaded on a TTY only and stays a runtime dependency; pino is
  // bundled (no transports are used), which saves the ESM-to-CJS loader work at start.
  external: ['pino-pretty'],
  // Bundled CommonJS (pino) calls require(): give the ESM output a real one.
  // No V8 flags in the shebang: any --max-semi-space-size, even the default value,
  // costs PID 1 about 40 ms at start (measured), which boot cannot spare.
  banner: { js: "#!/usr/bin/env node\nimport { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);" },
  define: { __SUPERVISOR_VERSION__: JSON.stringify(version) },
  logLevel: 'warning',
});

// `supervisor` is run through its shebang (the image's ENTRYPOINT): make it executable.
chmodSync(new URL('../dist/cli.js', import.meta.url), 0o755);

// The dashboard page (src/ui/page/): its script bundled for the browser and inlined
// with its style into one HTML file, which the gateway serves at /ui. One file, no
// requests beyond it, nothing from outside (works offline).
const page = await build({
  entryPoints: ['src/ui/page/main.ts'],
  bundle: true,
  write: false,
  format: 'iife',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  logLevel: 'warning',
});
const html = readFileSync(new URL('../src/ui/page/index.html', import.meta.url), 'utf8');
const css = readFileSync(new URL('../src/ui/page/style.css', import.meta.url), 'utf8');
// `</script` cannot appear in the bundle's strings unescaped, or the page would end early.
const script = page.outputFiles[0].text.replaceAll('</script', '<\\/script');
mkdirSync(new URL('../dist/ui', import.meta.url), { recursive: true });
writeFileSync(new URL('../dist/ui/index.html', import.meta.url), html.replace('/*STYLE*/', () => css).replace('/*SCRIPT*/', () => script));
