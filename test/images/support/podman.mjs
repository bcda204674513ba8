// Podman for the image tests and the image benchmarks: the private
// configuration and the local Debian 12 base of docker/podman-local.sh, the two
// images built by docker/build.sh, a llama.cpp bundle from the cached CPU build,
// a container started with docker/run.sh, and small helpers whose failures say
// which command failed and what it printed. Plain JS, so bench/ uses it as is.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findMissing, describeMissing, searchPath } from '../../../scripts/system-tools.mjs';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** The images docker/build.sh makes with its default TAG. */
export const STAGE1 = 'infer-dev:stage-1';
export const STAGE2 = 'infer-dev:stage-2';
/** The in-container path of the tiny model under docker/run.sh's --model-dir (its folder is named tiny-model). */
export const TINY_MODEL_IN_CONTAINER = '/llm-models/tiny-model/tiny.gguf';

let podmanEnv;

/** The environment that points podman at our configuration (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF). */
export function getPodmanEnv() {
  if (podmanEnv) return podmanEnv;
  const missing = findMissing('test', searchPath()).filter((t) => ['podman', 'runc', 'mmdebstrap'].includes(t.command));
  if (missing.length > 0) throw new Error(describeMissing('test', missing));
  if (process.getuid?.() !== 0) throw new Error('the images run under rootful podman: run as root');
  const out = run('bash', ['docker/podman-local.sh', 'env'], { env: process.env });
  if (out.code !== 0) throw new Error(`docker/podman-local.sh env failed: ${out.stderr.trim()}`);
  const env = { ...process.env };
  for (const [, name, value] of out.stdout.matchAll(/(CONTAINERS_(?:STORAGE_)?CONF)=(\S+)/g)) env[name] = value;
  if (!env.CONTAINERS_CONF || !env.CONTAINERS_STORAGE_CONF) throw new Error(`docker/podman-local.sh env printed no configuration: ${out.stdout}`);
  podmanEnv = env;
  return env;
}

/** Runs a command to its end (bounded); never throws. */
export function run(file, args, { env = getPodmanEnv(), timeoutMs = 120_000 } = {}) {
  const started = performance.now();
  const r = spawnSync(file, args, { cwd: ROOT, env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  const timedOut = r.error?.code === 'ETIMEDOUT';
  return { code: r.status, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${timedOut ? `\n[killed after ${timeoutMs} ms]` : ''}`, ms: performance.now() - started };
}

/** podman ARGS; a failure throws with the command and the tail of what it printed. */
export function podman(args, options = {}) {
  const r = run('podman', args, options);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}: ${tail(r.stderr || r.stdout)}`);
  return r.stdout;
}

/** Removes a container if it exists (one name per call: podman 4.3's `rm -f A B` removes nothing when A is absent). */
export function removeContainer(name) {
  run('podman', ['rm', '-f', '-t', '0', name]);
}

/** The local Debian 12 base (made once, then cached), then both images with WITH_DEV_TOOLS=0. */
export function buildImages() {
  const env = getPodmanEnv();
  const base = run('bash', ['docker/podman-local.sh', 'base'], { env, timeoutMs: 600_000 });
  if (base.code !== 0) throw new Error(`the Debian 12 base image could not be made: ${tail(base.stderr)}`);
  const image = base.stdout.trim().split('\n').pop();
  const build = run('bash', ['docker/build.sh'], { env: { ...env, ENGINE: 'podman', BASE_IMAGE: image, WITH_DEV_TOOLS: '0' }, timeoutMs: 900_000 });
  const log = `${build.stdout}${build.stderr}`;
  if (build.code !== 0) {
    const step = [...log.matchAll(/^(?:\[\d\/\d\] )?STEP \d+\/\d+: .*$/gm)].pop()?.[0] ?? 'before the first step';
    throw new Error(`ENGINE=podman BASE_IMAGE=${image} WITH_DEV_TOOLS=0 docker/build.sh exited ${build.code}; last step: ${step}\n${tail(log, 40)}`);
  }
  const printed = build.stdout.trim().split('\n').pop();
  if (printed !== STAGE2) throw new Error(`docker/build.sh printed ${JSON.stringify(printed)} last, not ${STAGE2}`);
  // Old build leftovers (untagged, a day old) go; the newer ones are the warm layer cache.
  run('podman', ['image', 'prune', '-f', '--filter', 'until=24h']);
  return { base: image, baseMs: base.ms, buildMs: build.ms };
}

/** A llama.cpp bundle (.tar.gz with llama-cpp/bin/llama-server and its .so chains) of the llama-server build in binDir. */
export function makeBundle(binDir, dir) {
  const root = join(dir, 'bundle', 'llama-cpp');
  mkdirSync(root, { recursive: true });
  cpSync(binDir, join(root, 'bin'), { recursive: true, verbatimSymlinks: true });
  writeFileSync(join(root, 'README.md'), 'llama.cpp CPU build (infer-dev image tests)\n');
  const archive = join(dir, 'llama-cpp-cpu.tar.gz');
  const r = run('tar', ['-czf', archive, '-C', join(dir, 'bundle'), 'llama-cpp'], { env: process.env });
  if (r.code !== 0) throw new Error(`tar of the bundle failed: ${r.stderr}`);
  return archive;
}

/** The config the serving container gets: one instance `tiny` on 8080, all interfaces, the tiny model. */
export function writeServingConfig(file) {
  writeFileSync(file, ['[instance.server]', 'host = "0.0.0.0"', 'ctx_size = 2048', '', '[instance.tiny.server]', `model = "${TINY_MODEL_IN_CONTAINER}"`, 'port = 8080', 'alias = "tiny"', ''].join('\n'));
  return file;
}

/** An executable hook script that appends its name to `log` inside the container. */
export function writeHook(file, log) {
  writeFileSync(file, `#!/bin/sh\necho "$(basename "$0") $(date +%s%N)" >> ${log}\n`);
  chmodSync(file, 0o755);
  return file;
}

/**
 * Starts a serving container with docker/run.sh (ENGINE=podman, ports on 127.0.0.1, no GPU): the
 * bundle installed at boot, the config served, the model folder mounted, the key for `me`; `extra`
 * goes to `podman run`. Returns the milliseconds run.sh took.
 */
export function startServing({ name, ports, bundle, config, modelDir, publicKey, extra = [] }) {
  removeContainer(name);
  const started = run('bash', [
    'docker/run.sh', '--name', name, '--bind', '127.0.0.1', '--gpus', 'none',
    '--ssh-port', String(ports.ssh), '--port', String(ports.llama), '--gateway-port', String(ports.gateway),
    '--llama-pkg', bundle, '--llama-config', config, '--model-dir', modelDir, '--ssh-key', publicKey,
    '--image', STAGE2, '--', ...extra,
  ], { env: { ...getPodmanEnv(), ENGINE: 'podman' } });
  if (started.code !== 0) throw new Error(`docker/run.sh failed (${started.code}): ${tail(started.stderr)}`);
  return started.ms;
}

/** `supervisor status --json` inside a container, or null while it does not answer. */
export function containerStatus(container) {
  const r = run('podman', ['exec', container, 'supervisor', 'status', '--json'], { timeoutMs: 20_000 });
  if (r.code !== 0) return null;
  return JSON.parse(r.stdout);
}

export function tail(text, lines = 12) {
  return text.trim().split('\n').slice(-lines).join('\n');
}
