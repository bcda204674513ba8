// Bundles for the installer benchmarks (bundle-extract, bundle-reinstall):
// the real CPU llama-server build as a package, and a synthetic bundle shaped
// like a CUDA build (a few large incompressible .so files with symlink chains,
// a llama-server, many small files), packed with GNU tar + gzip and Info-ZIP
// zip as release archives are. Plain Node ESM; needs tar, gzip, zip, unzip.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statfsSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CLI, findLlamaServer, fmt, MiB, onCleanup } from './lib.mjs';

/** The CLI under test (SUPERVISOR_TEST_CLI: another build). */
export const BENCH_CLI = process.env.SUPERVISOR_TEST_CLI ?? CLI;

/** Where the benchmark works: tmpfs if it has room (stable timings: no disk writeback between runs), else the temp dir. Removed on cleanup. */
export function makeBenchDir(prefix, needBytes) {
  let base = tmpdir();
  let fs = `${base} (the temp dir)`;
  if (existsSync('/dev/shm')) {
    const { bavail, bsize } = statfsSync('/dev/shm');
    if (bavail * bsize >= needBytes) {
      base = '/dev/shm';
      fs = '/dev/shm (tmpfs)';
    }
  }
  const dir = mkdtempSync(join(base, `${prefix}-`));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, fs };
}

/** Which of the reference tools are here; the benchmark skips what it cannot compare. */
export function missingTools() {
  return ['tar', 'gzip', 'zip', 'unzip', 'sha256sum'].filter((tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0);
}

/** Writes a file of random (incompressible) bytes, 1 MiB at a time. */
function writeRandomFile(path, bytes, mode = 0o755) {
  const fd = openSync(path, 'w', mode);
  for (let left = bytes; left > 0; left -= MiB) writeSync(fd, randomBytes(Math.min(MiB, left)));
  closeSync(fd);
}

/** Text that compresses about 4 times, like headers, scripts and docs. */
function makeText(bytes, seed) {
  const words = ['ggml', 'tensor', 'cuda', 'kernel', 'llama', 'context', 'batch', 'token', 'vocab', 'layer', 'rope', 'attention', 'quant'];
  const parts = [];
  let size = 0;
  let x = seed;
  while (size < bytes) {
    x = (x * 1103515245 + 12345) >>> 0;
    const word = `${words[x % words.length]}_${(x >>> 8) % 1000} `;
    parts.push(word);
    size += word.length;
  }
  return parts.join('').slice(0, bytes);
}

/** A tree shaped like a CUDA llama.cpp release: ~totalMiB in all. */
export function makeSyntheticTree(root, totalMiB) {
  const scale = totalMiB / 500;
  const bin = join(root, 'llama-cuda', 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(root, 'llama-cuda', 'README.md'), 'synthetic CUDA-shaped llama.cpp bundle for benchmarks\n');
  const libs = [
    ['libggml-cuda.so', 300],
    ['libllama.so', 60],
    ['libggml-base.so', 40],
    ['libmtmd.so', 24],
    ['libggml-cpu.so', 16],
  ];
  for (const [name, mib] of libs) {
    const real = `${name}.0.9.0`;
    writeRandomFile(join(bin, real), Math.round(mib * scale * MiB));
    symlinkSync(real, join(bin, `${name}.0`));
    symlinkSync(`${name}.0`, join(bin, name));
  }
  writeRandomFile(join(bin, 'llama-server'), Math.round(8 * scale * MiB));
  const smallCount = Math.max(50, Math.round(1000 * scale));
  for (let i = 0; i < smallCount; i++) {
    const path = join(root, 'llama-cuda', 'share', `d${i % 40}`, `f${i}.txt`);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, makeText(8 * 1024 + ((i * 7919) % (40 * 1024)), i + 1));
  }
  return join(root, 'llama-cuda');
}

/** The real CPU build as a package tree: README.md and bin/ with its symlink chains. */
export function makeRealTree(root) {
  const server = findLlamaServer();
  if (!server.path) return { dir: null, reason: server.reason };
  const pkg = join(root, 'llama-cpu');
  mkdirSync(pkg, { recursive: true });
  cpSync(dirname(server.path), join(pkg, 'bin'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(pkg, 'README.md'), 'llama.cpp CPU build\n');
  return { dir: pkg, reason: null };
}

/** Packs a package dir (its parent as archive root) as .tar.gz (GNU tar + gzip at `level`) and .zip (Info-ZIP, symlinks kept). */
export function packArchives(pkgDir, outDir, name, { gzipLevel = 6, zipLevel = 6 } = {}) {
  const t0 = performance.now();
  const tgz = join(outDir, `${name}.tar.gz`);
  const zip = join(outDir, `${name}.zip`);
  execFileSync('tar', ['-I', `gzip -${gzipLevel}`, '-cf', tgz, '-C', dirname(pkgDir), pkgDir.split('/').pop()]);
  execFileSync('zip', [`-${zipLevel}`, '-qry', zip, pkgDir.split('/').pop()], { cwd: dirname(pkgDir) });
  return { tgz, zip, seconds: (performance.now() - t0) / 1000 };
}

/** Entries in a tree (files, dirs, links), to check an extraction is complete. */
export function countEntries(dir) {
  let n = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    n += 1;
    if (entry.isDirectory()) n += countEntries(join(dir, entry.name));
  }
  return n;
}

export { fmt, MiB };
