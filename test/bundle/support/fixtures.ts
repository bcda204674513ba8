// Fixtures for the installer tests: the real llama-server build as package
// members, temp roots, `supervisor install-pkg` runs against the built CLI, and
// tree snapshots to prove nothing else changed.
import { spawn, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/daemon.ts';
import { llamaServerBinDir } from '../../support/llama-server.ts';
import type { PackageEntry } from './archives.ts';

/** The CLI under test: the build in dist/ (SUPERVISOR_TEST_CLI points the tests at another build). */
export const INSTALL_CLI = process.env.SUPERVISOR_TEST_CLI ?? join(REPO_ROOT, 'dist/cli.js');

let realEntries: PackageEntry[] | undefined;

/** README.md, bin/llama-server and bin/*.so* (symlink chains kept) from the cached CPU build. */
export function realBundleEntries(): PackageEntry[] {
  if (realEntries) return realEntries;
  const binDir = llamaServerBinDir();
  const entries: PackageEntry[] = [
    { name: 'README.md', kind: 'file', data: Buffer.from('llama.cpp CPU build for the infer-dev tests\n') },
    { name: 'bin', kind: 'dir' },
  ];
  for (const name of readdirSync(binDir).sort()) {
    const path = join(binDir, name);
    const info = lstatSync(path);
    if (info.isSymbolicLink()) entries.push({ name: `bin/${name}`, kind: 'symlink', target: readlinkSync(path) });
    else if (info.isFile()) entries.push({ name: `bin/${name}`, kind: 'file', data: readFileSync(path), mode: info.mode & 0o777 });
  }
  realEntries = entries;
  return entries;
}

/** A variant of the real bundle: same files, different README (so a different checksum). */
export function realBundleVariant(tag: string): PackageEntry[] {
  return realBundleEntries().map((e) => (e.name === 'README.md' ? { ...e, data: Buffer.from(`llama.cpp CPU build, variant ${tag}\n`) } : e));
}

/** A temp dir with `soft` (the installer's root, not created) and an empty `outside` dir that must stay empty. */
export interface TempRoot {
  dir: string;
  root: string;
  outside: string;
  archives: string;
  remove(): void;
}

export function makeTempRoot(prefix = 'bundle'): TempRoot {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const outside = join(dir, 'outside');
  const archives = join(dir, 'archives');
  mkdirSync(outside);
  mkdirSync(archives);
  return { dir, root: join(dir, 'soft'), outside, archives, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes an archive file and returns its path. */
export function writeArchive(dir: string, name: string, data: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

export interface InstallRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `supervisor install-pkg ARGS` with the root in SUPERVISOR_SOFT_APP. */
export function runInstall(root: string, args: string[], env: Record<string, string | undefined> = {}): InstallRun {
  const started = performance.now();
  const r = spawnSync(process.execPath, [INSTALL_CLI, 'install-pkg', ...args], {
    env: { ...process.env, SUPERVISOR_SOFT_APP: root, AUTO_INFER_LLAMA_CPP_PKG_PATH: undefined, AUTO_INFER_LLAMA_CPP_PKG_SHA256: undefined, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - started };
}

/** The same, without blocking (for concurrent runs and kill -9). */
export function spawnInstall(root: string, args: string[], env: Record<string, string | undefined> = {}) {
  const child = spawn(process.execPath, [INSTALL_CLI, 'install-pkg', ...args], {
    env: { ...process.env, SUPERVISOR_SOFT_APP: root, AUTO_INFER_LLAMA_CPP_PKG_PATH: undefined, AUTO_INFER_LLAMA_CPP_PKG_SHA256: undefined, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

/** `<root>/llama-cpp/bin/llama-server --version` (the installed binary finds its libraries through RUNPATH). */
export function runInstalledVersion(root: string): { code: number; output: string } {
  const r = spawnSync(join(root, 'llama-cpp', 'bin', 'llama-server'), ['--version'], { encoding: 'utf8', timeout: 20_000 });
  return { code: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** Every path under dir with its type, size, mode and link target, sorted: equal snapshots mean nothing changed. */
export function snapshotTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const abs = join(dir, rel);
    let info;
    try {
      info = lstatSync(abs);
    } catch {
      return;
    }
    if (info.isSymbolicLink()) out.push(`${rel} -> ${readlinkSync(abs)}`);
    else if (info.isDirectory()) {
      out.push(`${rel}/ ${(info.mode & 0o777).toString(8)}`);
      for (const name of readdirSync(abs).sort()) walk(rel === '' ? name : `${rel}/${name}`);
    } else out.push(`${rel} ${info.size} ${(info.mode & 0o777).toString(8)} ${info.mtimeMs}`);
  };
  walk('');
  return out;
}

/** Names in a directory (empty if it does not exist). */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}
