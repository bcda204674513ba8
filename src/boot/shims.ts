// Helper shims that keep upstream's documented commands working:
// /soft/app/llama-cpp/{check-and-run-llama-cpp.sh,get-llama-cpp-pkg.sh,install-llama-cpp-pkg.sh}
// are small sh scripts that exec `supervisor serve` / `supervisor install-pkg`;
// /soft/app/vllm/{check-and-run-vllm.sh,install-vllm-offline.sh} and the SGLang
// pair exec `supervisor serve --engine …` / `supervisor install-engine …`.
// Like upstream's entry (mkdir -p, then the links), they are made even before any
// bundle is installed: get-llama-cpp-pkg.sh is how one installs the first bundle.
// A file we did not write is never replaced; ours carry SHIM_MARKER.
import { lstat, mkdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, errnoOf, isDirectory, pathResolves, writeFileAtomic } from './atomic-fs.ts';
import { silentLog, type Log } from '../logging/log.ts';
import type { StepOutcome } from './steps.ts';

/** The line that marks a file as ours (and so safe to rewrite). */
export const SHIM_MARKER = '# infer-dev-supervisor-shim v1';

/** Shim name → the supervisor subcommand it runs, and what upstream's script did. */
export const LLAMA_SHIMS: Readonly<Record<string, { subcommand: string; note: string }>> = Object.freeze({
  'check-and-run-llama-cpp.sh': { subcommand: 'serve', note: "upstream's llama-server runner: starts the instances of AUTO_INFER_LLAMA_CPP_CONFIG" },
  'get-llama-cpp-pkg.sh': { subcommand: 'install-pkg', note: "upstream's bundle installer alias: installs AUTO_INFER_LLAMA_CPP_PKG_PATH" },
  'install-llama-cpp-pkg.sh': { subcommand: 'install-pkg', note: "upstream's bundle installer: installs AUTO_INFER_LLAMA_CPP_PKG_PATH" },
});

/** Upstream's vLLM and SGLang helpers, per directory under /soft/app: their runner serves through the daemon, their installer installs the offline bundle. */
export const ENGINE_SHIMS: Readonly<Record<'vllm' | 'sglang', Readonly<Record<string, { subcommand: string; note: string }>>>> = Object.freeze({
  vllm: {
    'check-and-run-vllm.sh': { subcommand: 'serve --engine vllm', note: "upstream's vLLM runner: starts the instances of AUTO_INFER_VLLM_CONFIG" },
    'install-vllm-offline.sh': { subcommand: 'install-engine vllm', note: "upstream's vLLM offline installer: installs AUTO_INFER_VLLM_BUNDLE_PATH" },
  },
  sglang: {
    'check-and-run-sglang.sh': { subcommand: 'serve --engine sglang', note: "upstream's SGLang runner: starts the instances of AUTO_INFER_SGLANG_CONFIG" },
    'install-sglang-offline.sh': { subcommand: 'install-engine sglang', note: "upstream's SGLang offline installer: installs AUTO_INFER_SGLANG_BUNDLE_PATH" },
  },
});

/** Where the shims go and how they call the supervisor. */
export interface ShimOptions {
  /** Default `/soft`; the shims go to `<softRoot>/app/llama-cpp` unless `dir` is given. */
  softRoot?: string;
  /** Where to write them instead (the bundle installer passes its staging dir). */
  dir?: string;
  /** How a shim starts the supervisor; default `['supervisor']` (found on PATH). */
  command?: readonly string[];
  log?: Log;
}

/** The text of one shim. */
export function makeShimScript({ command = ['supervisor'], subcommand, note }: { command?: readonly string[]; subcommand: string; note: string }): string {
  const words = [...command, ...subcommand.split(' ')].map(quoteShell).join(' ');
  return `#!/bin/sh\n${SHIM_MARKER}: rewritten at every boot; put your own file here to stop that.\n# Replaces ${note}.\nexec ${words} "$@"\n`;
}

/** Writes (or refreshes) the three llama.cpp shims; one step outcome for all of them. */
export function writeLlamaShims(options: ShimOptions = {}): Promise<StepOutcome> {
  return writeShims({ ...options, dir: options.dir ?? join(options.softRoot ?? '/soft', 'app', 'llama-cpp'), inSoft: options.dir === undefined }, LLAMA_SHIMS);
}

/** Writes (or refreshes) /soft/app/vllm and /soft/app/sglang's shims; one step outcome per directory. */
export async function writeEngineShims(options: Omit<ShimOptions, 'dir'> = {}): Promise<StepOutcome[]> {
  const soft = options.softRoot ?? '/soft';
  return [
    await writeShims({ ...options, dir: join(soft, 'app', 'vllm'), inSoft: true }, ENGINE_SHIMS.vllm),
    await writeShims({ ...options, dir: join(soft, 'app', 'sglang'), inSoft: true }, ENGINE_SHIMS.sglang),
  ];
}

async function writeShims(
  { softRoot = '/soft', dir, inSoft, command = ['supervisor'], log = silentLog }: ShimOptions & { dir: string; inSoft: boolean },
  shims: Readonly<Record<string, { subcommand: string; note: string }>>,
): Promise<StepOutcome> {
  const startedAt = Date.now();
  const target = dir;
  const done = (state: StepOutcome['state'], message: string): StepOutcome => {
    log[state === 'failed' ? 'error' : state === 'warning' ? 'warn' : 'info']({ event: 'boot-shims', dir: target, state }, `shims ${target}: ${message}`);
    return { name: `shims ${target}`, state, message, startedAt, durationMs: Date.now() - startedAt };
  };
  try {
    const problem = await prepareShimDir({ dir: target, parent: inSoft ? join(softRoot, 'app') : null });
    if (problem !== null) return done('warning', `${problem}; shims not written`);
    const notes: string[] = [];
    let written = 0;
    for (const [name, spec] of Object.entries(shims)) {
      const path = join(target, name);
      const text = makeShimScript({ command, ...spec });
      const verdict = await checkShimPath({ path, text });
      if (verdict === 'current') continue;
      if (verdict !== 'write') {
        notes.push(`${name} left alone (${verdict})`);
        continue;
      }
      await writeFileAtomic(path, text, { mode: 0o755 });
      written += 1;
    }
    const summary = written > 0 ? `${written} shim(s) written` : 'shims up to date';
    return done(notes.length > 0 ? 'warning' : 'ok', notes.length > 0 ? `${summary}; ${notes.join('; ')}` : summary);
  } catch (err) {
    return done('failed', describeError(err));
  }
}

// Makes the shim dir when its parent is there; a problem text when it cannot be used.
async function prepareShimDir({ dir, parent }: { dir: string; parent: string | null }): Promise<string | null> {
  if (parent !== null && !(await isDirectory(parent))) return `${parent} is not a directory (is the /soft/app link broken?)`;
  try {
    await mkdir(dir, { mode: 0o755 });
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
    if (!(await isDirectory(dir))) return `${dir} exists and is not a directory`;
  }
  return null;
}

// 'write': missing, ours and outdated, or a dangling link (upstream's links into /pei-from-host); 'current': ours and up to date; else why it is not ours.
async function checkShimPath({ path, text }: { path: string; text: string }): Promise<string> {
  let info;
  try {
    info = await lstat(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 'write';
    throw err;
  }
  if (info.isSymbolicLink()) return (await pathResolves(path)) ? `a link to ${await readlink(path)}` : 'write';
  if (!info.isFile()) return 'not a regular file';
  const current = await readFile(path, 'utf8');
  if (current === text) return 'current';
  return current.includes(SHIM_MARKER) ? 'write' : 'not written by the supervisor';
}

function quoteShell(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}
