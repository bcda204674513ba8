// Builds src/pid1 into one ESM file for the fixtures, which run outside vitest
// (as PID 1 of a fresh namespace, or under `script`), and runs them. The bundle
// lives under node_modules/.cache so that node resolves koffi from the repo's
// node_modules.
import { build } from 'esbuild';
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURES = join(REPO_ROOT, 'test/fixtures/pid1');
const CACHE_DIR = join(REPO_ROOT, 'node_modules/.cache/pid1-test');
const MODULES = ['exit-code', 'libc', 'child-tracker', 'reaper', 'main-process', 'signals', 'stop-budget'];
/** Every fixture run is bounded; a hung one fails the test instead of the suite. */
const RUN_LIMIT_MS = 20_000;
/** The namespace commands: the fixture is PID 1; --kill-child takes the namespace down if we kill unshare. */
export const UNSHARE = ['unshare', '--pid', '--mount', '--fork', '--mount-proc', '--kill-child'];

/** Bundles every src/pid1 module; returns the file and a cleanup. */
export async function buildPid1Bundle(): Promise<{ file: string; remove: () => void }> {
  mkdirSync(CACHE_DIR, { recursive: true });
  const file = join(CACHE_DIR, `pid1-${process.pid}-${Date.now()}.mjs`);
  await build({
    stdin: {
      contents: MODULES.map((m) => `export * from './src/pid1/${m}.ts';`).join('\n'),
      resolveDir: REPO_ROOT,
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: file,
    external: ['koffi'],
    logLevel: 'warning',
  });
  return { file, remove: () => rmSync(file, { force: true }) };
}

/** Whether `unshare --pid --mount --fork --mount-proc` works here (root, namespaces allowed). */
export function canUnshare(): boolean {
  const probe = spawnSync(UNSHARE[0]!, [...UNSHARE.slice(1), 'true'], { stdio: 'ignore', timeout: 10_000 });
  return probe.status === 0;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Pids of runs not yet exited. */
const running = new Set<number>();

/** SIGKILLs each run still going and everything below it (a failed test must not leave its fixture running). */
export function killLeftovers(): void {
  for (const pid of running) {
    for (const target of [...listDescendants(pid), pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
  }
}

function listDescendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  const below = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parentOf) {
      if (!below.has(pid) && below.has(ppid)) {
        below.add(pid);
        grew = true;
      }
    }
  }
  below.delete(root);
  return [...below];
}

/** Starts a command and collects its output; SIGKILL after the limit. */
export function startRun(argv: readonly string[], options: SpawnOptions & { input?: string } = {}): { pid: number; result: Promise<RunResult> } {
  const started = Date.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => (stdout += chunk));
  child.stderr?.on('data', (chunk) => (stderr += chunk));
  child.stdin?.end(options.input ?? '');
  const limit = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
  if (child.pid !== undefined) running.add(child.pid);
  const result = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', () => running.delete(child.pid!));
    child.on('close', (code, signal) => {
      clearTimeout(limit);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
  return { pid: child.pid ?? -1, result };
}

/** Runs a command to completion (SIGKILL after the limit) and collects its output. */
export function runToEnd(argv: readonly string[], options: SpawnOptions & { input?: string } = {}): Promise<RunResult> {
  return startRun(argv, options).result;
}

/** The last stdout line of a fixture, parsed. */
export function lastJsonLine(result: RunResult): Record<string, any> {
  const lines = result.stdout.trim().split('\n');
  try {
    return JSON.parse(lines[lines.length - 1] ?? '');
  } catch (err) {
    throw new Error(`fixture printed no JSON (exit ${result.code ?? result.signal}):\n${result.stdout}\n${result.stderr}`, { cause: err });
  }
}
