// Podman for the image tests: the private configuration and the local Debian 12
// base of docker/podman-local.sh, the two images built by docker/build.sh, and
// small helpers whose failures say which command failed and what it printed.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { llamaServerBinDir } from '../../support/llama-server.ts';
import { requireTools } from '../../support/system-tools.ts';

export const ROOT = join(import.meta.dirname, '../../..');
/** The images docker/build.sh makes with its default TAG. */
export const STAGE1 = 'infer-dev:stage-1';
export const STAGE2 = 'infer-dev:stage-2';

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

let podmanEnv: NodeJS.ProcessEnv | undefined;

/** The environment that points podman at our configuration (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF). */
export function getPodmanEnv(): NodeJS.ProcessEnv {
  if (podmanEnv) return podmanEnv;
  requireTools(['podman', 'runc', 'mmdebstrap', 'tar'], 'the image tests');
  if (process.getuid?.() !== 0) throw new Error('the image tests run rootful podman: run them as root');
  const out = run('bash', ['docker/podman-local.sh', 'env'], { env: process.env });
  if (out.code !== 0) throw new Error(`docker/podman-local.sh env failed: ${out.stderr.trim()}`);
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [, name, value] of out.stdout.matchAll(/(CONTAINERS_(?:STORAGE_)?CONF)=(\S+)/g)) env[name] = value;
  if (!env.CONTAINERS_CONF || !env.CONTAINERS_STORAGE_CONF) throw new Error(`docker/podman-local.sh env printed no configuration: ${out.stdout}`);
  podmanEnv = env;
  return env;
}

/** Runs a command to its end (bounded); never throws. */
export function run(file: string, args: readonly string[], { env = getPodmanEnv(), timeoutMs = 120_000, input }: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Run {
  const started = performance.now();
  const r = spawnSync(file, args, { cwd: ROOT, env, encoding: 'utf8', timeout: timeoutMs, input, maxBuffer: 64 * 1024 * 1024 });
  const timedOut = r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT';
  return { code: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${timedOut ? `\n[killed after ${timeoutMs} ms]` : ''}`, ms: performance.now() - started };
}

/** podman ARGS; a failure throws with the command and the tail of what it printed. */
export function podman(args: readonly string[], options: { timeoutMs?: number } = {}): string {
  const r = run('podman', args, options);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}: ${tail(r.stderr || r.stdout)}`);
  return r.stdout;
}

/** Removes a container if it exists (one name per call: podman 4.3's `rm -f A B` removes nothing when A is absent). */
export function removeContainer(name: string): void {
  run('podman', ['rm', '-f', '-t', '0', name]);
}

/** The local Debian 12 base (made once, then cached), then both images; returns how long each part took. */
export function buildImages(): { base: string; baseMs: number; buildMs: number; log: string } {
  const env = getPodmanEnv();
  const base = run('bash', ['docker/podman-local.sh', 'base'], { env, timeoutMs: 600_000 });
  if (base.code !== 0) throw new Error(`the Debian 12 base image could not be made: ${tail(base.stderr)}`);
  const image = base.stdout.trim().split('\n').pop()!;
  const build = run('bash', ['docker/build.sh'], { env: { ...env, ENGINE: 'podman', BASE_IMAGE: image, WITH_DEV_TOOLS: '0' }, timeoutMs: 900_000 });
  const log = `${build.stdout}${build.stderr}`;
  if (build.code !== 0) {
    const step = [...log.matchAll(/^\[\d\/\d\] STEP \d+\/\d+: .*$|^STEP \d+\/\d+: .*$/gm)].pop()?.[0] ?? 'before the first step';
    throw new Error(`ENGINE=podman BASE_IMAGE=${image} WITH_DEV_TOOLS=0 docker/build.sh exited ${build.code}; last step: ${step}\n${tail(log, 40)}`);
  }
  const printed = build.stdout.trim().split('\n').pop();
  if (printed !== STAGE2) throw new Error(`docker/build.sh printed ${JSON.stringify(printed)} last, not ${STAGE2}`);
  // Old build leftovers (untagged, a day old) go; the newer ones are the warm layer cache.
  run('podman', ['image', 'prune', '-f', '--filter', 'until=24h']);
  return { base: image, baseMs: base.ms, buildMs: build.ms, log };
}

/** A llama.cpp bundle (.tar.gz with llama-cpp/bin/llama-server and its .so chains) from the cached CPU build. */
export function makeBundle(dir: string): string {
  const root = join(dir, 'bundle', 'llama-cpp');
  mkdirSync(root, { recursive: true });
  cpSync(llamaServerBinDir(), join(root, 'bin'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(root, 'README.md'), 'llama.cpp CPU build for the image tests\n');
  const archive = join(dir, 'llama-cpp-cpu.tar.gz');
  const r = run('tar', ['-czf', archive, '-C', join(dir, 'bundle'), 'llama-cpp'], { env: process.env });
  if (r.code !== 0) throw new Error(`tar of the bundle failed: ${r.stderr}`);
  return archive;
}

/** Polls `probe` until it returns a value (not undefined), every 200 ms, for at most timeoutMs; the error names what was awaited and the last thing seen. */
export async function waitFor<T>(what: string, probe: () => T | undefined, { timeoutMs = 60_000, last = () => '' }: { timeoutMs?: number; last?: () => string } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last() ? `; last seen: ${last()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** `supervisor status --json` inside a container, or null while it does not answer. */
export function containerStatus(container: string): Array<{ name: string; state: string; pid: number | null; restarts: number }> | null {
  const r = run('podman', ['exec', container, 'supervisor', 'status', '--json'], { timeoutMs: 20_000 });
  if (r.code !== 0) return null;
  return JSON.parse(r.stdout);
}

export function tail(text: string, lines = 12): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}
