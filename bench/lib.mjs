// Shared helpers for the benchmarks: the built daemon on a temp socket, /proc
// readers, free ports, statistics and markdown tables. Plain Node ESM, no deps.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CLI = join(REPO_ROOT, 'dist/cli.js');
export const TINY_MODEL_CLI = join(REPO_ROOT, 'dist/tiny-model.js');
export const FAKE_SERVER = join(REPO_ROOT, 'test/fixtures/fake-server.mjs');

// ---- cleanup, even on failure or Ctrl-C ----

const cleanups = new Set();

/** Registers an async cleanup; returns a function that runs it once and unregisters it. */
export function onCleanup(fn) {
  let done = null;
  const run = () => {
    cleanups.delete(run);
    done ??= Promise.resolve().then(fn).catch((err) => process.stderr.write(`bench: cleanup failed: ${err?.message ?? err}\n`));
    return done;
  };
  cleanups.add(run);
  return run;
}

/** Runs every registered cleanup, newest first. */
export async function runAllCleanups() {
  for (const run of [...cleanups].reverse()) await run();
}

/** A temp dir (short name: it holds a Unix socket) removed by the returned cleanup. */
export function makeTempDir(prefix = 'svb') {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const remove = onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, remove };
}

// ---- small utilities ----

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const sleepArray = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread for ms (for tight synchronous poll loops). */
export const sleepSync = (ms) => Atomics.wait(sleepArray, 0, 0, ms);

export function median(values) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function percentile(values, p) {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export const fmt = (n, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : String(n));
export const MiB = 1024 * 1024;

/** A markdown table from a header row and rows of cells. */
export function table(header, rows) {
  const cells = [header, ...rows].map((r) => r.map((c) => String(c ?? '')));
  const widths = header.map((_, i) => Math.max(3, ...cells.map((r) => r[i].length)));
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(cells[0]), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.slice(1).map(line)].join('\n');
}

/** A port free right now on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Distinct free ports. */
export async function freePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export async function waitFor(check, timeoutMs, what, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// ---- /proc ----

export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** Fields of /proc/PID/stat after the comm field: [0] is state (field 3), [1] ppid, [11] utime, [12] stime. */
export function readStat(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** utime + stime in clock ticks. */
export function cpuTicks(pid) {
  const f = readStat(pid);
  if (!f) throw new Error(`process ${pid} is gone`);
  return Number(f[11]) + Number(f[12]);
}

/** cutime + cstime in clock ticks: CPU of the children the process has reaped. */
export function childCpuTicks(pid) {
  const f = readStat(pid);
  if (!f) throw new Error(`process ${pid} is gone`);
  return Number(f[13]) + Number(f[14]);
}

/** A field of /proc/PID/status in KiB (VmRSS, VmHWM). */
export function statusKiB(pid, field) {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

export function listPids() {
  return readdirSync('/proc').filter((n) => n.charCodeAt(0) >= 48 && n.charCodeAt(0) <= 57).map(Number);
}

/** Pids whose environment holds `entry` (e.g. SUPERVISOR_SOCKET=/tmp/x/sv.sock). */
function pidsWithEnv(entry) {
  const found = [];
  for (const pid of listPids()) {
    if (pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(entry)) found.push(pid);
    } catch {
      // gone or not ours
    }
  }
  return found;
}

// ---- the daemon ----

/** A child's stdout read as JSON event lines (others become `{ raw }`), each stamped `seenAt`, kept in order and told to `listeners`. */
export function collectEvents(stream) {
  const events = [];
  const listeners = new Set();
  let partial = '';
  stream.on('data', (chunk) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop();
    for (const line of lines) {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        event = { raw: line };
      }
      event.seenAt = Date.now();
      events.push(event);
      for (const listener of listeners) listener(event);
    }
  });
  return { events, listeners };
}

/** Starts `dist/cli.js run --config` through its shebang, as the image runs it, on a private socket; `@DIR@` in the config is its temp dir. */
export async function startDaemon(configText, { env = {}, readyTimeoutMs = 20_000 } = {}) {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const { dir, remove } = makeTempDir();
  const socket = join(dir, 'sv.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(config, configText.replaceAll('@DIR@', dir));
  const childEnv = { ...process.env, SUPERVISOR_SOCKET: socket, ...env };
  const proc = spawn(CLI, ['run', '--config', config], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const { events, listeners } = collectEvents(proc.stdout);
  let stderr = '';
  proc.stderr.on('data', (chunk) => (stderr += chunk.toString()));
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));

  const stop = onCleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    // Anything the daemon started still alive (it was killed, or failed to stop it): kill it.
    for (const pid of pidsWithEnv(`SUPERVISOR_SOCKET=${socket}`)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await remove();
  });

  const daemon = {
    dir,
    socket,
    config,
    env: childEnv,
    pid: proc.pid,
    process: proc,
    events,
    get stderr() {
      return stderr;
    },
    stop,
    /** `node dist/cli.js ARGS` synchronously. */
    cli(...args) {
      const r = spawnSync(process.execPath, [CLI, ...args], { env: childEnv, encoding: 'utf8', timeout: 120_000 });
      return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    /** `node dist/cli.js ARGS` without blocking the event loop. */
    cliAsync(...args) {
      return new Promise((resolve) => {
        const c = spawn(process.execPath, [CLI, ...args], { env: childEnv });
        let out = '';
        let err = '';
        c.stdout.on('data', (d) => (out += d));
        c.stderr.on('data', (d) => (err += d));
        c.on('close', (code) => resolve({ code: code ?? -1, stdout: out, stderr: err }));
      });
    },
    /** Resolves with the first event (already seen from index `from`, or later) that matches. */
    waitEvent(match, timeoutMs = 20_000, what = 'an event', from = 0) {
      return waitForEvent({ events, listeners, exited, stderr: () => stderr, label: 'daemon' }, { match, timeoutMs, what, from });
    },
    /** Waits for a transition of `instance` into `to`, seen at index >= from. */
    waitTransition(instance, to, timeoutMs = 20_000, from = 0) {
      return daemon.waitEvent(
        (e) => e.event === 'transition' && e.instance === instance && e.to === to,
        timeoutMs,
        `${instance} -> ${to}`,
        from,
      );
    },
  };
  await daemon.waitEvent((e) => e.event === 'listening', readyTimeoutMs, 'the control socket');
  return daemon;
}

/** A TOML instance running the fake server on a port, with extra flags and control lines. */
export function fakeInstance(name, port, flags = [], control = '') {
  const args = [FAKE_SERVER, ...flags.map(String)].map((a) => JSON.stringify(a)).join(', ');
  return `[instance.${name}.control]\n${control}\n[instance.${name}.server]\nextra_args = [${args}]\nport = ${port}\n`;
}

/** The [master] block that makes node (running the fake server) the "llama-server". */
export function fakeMaster() {
  return `[master]\nllama_cpp_path = ${JSON.stringify(process.execPath)}\n`;
}

// ---- real llama-server ----

/**
 * A config of real llama-server instances on one model (host 127.0.0.1, 1 thread): `instances` is
 * [{ name, port, alias }]; `control` and `server` are extra lines for the shared [instance.*] tables.
 */
export function llamaServerToml({ llamaServer, model, instances, logDir = '@DIR@', control = [], server = [] }) {
  const blocks = instances.map(({ name, port, alias }) => `[instance.${name}.server]\nport = ${port}\nalias = ${JSON.stringify(alias)}\n`);
  return [
    `[master]\nllama_cpp_path = ${JSON.stringify(llamaServer)}\n`,
    ['[instance.control]', `log_dir = ${JSON.stringify(logDir)}`, ...control, ''].join('\n'),
    ['[instance.server]', 'host = "127.0.0.1"', `model = ${JSON.stringify(model)}`, 'threads = 1', ...server, ''].join('\n'),
    ...blocks,
  ].join('\n');
}

/** The cached CPU llama-server, or null with the reason. Never starts a 9-minute build. */
export function findLlamaServer() {
  const candidates = [];
  if (process.env.LLAMA_SERVER_BIN_DIR) candidates.push(join(process.env.LLAMA_SERVER_BIN_DIR, 'llama-server'));
  const cache = process.env.INFER_DEV_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? '/root', '.cache'), 'infer-dev');
  let cached = [];
  try {
    cached = readdirSync(join(cache, 'llama-server')).filter((d) => !d.startsWith('.'));
  } catch {
    // no cache
  }
  if (!process.env.LLAMA_SERVER_BIN_DIR && cached.length > 0) {
    // The script picks the build that matches the pinned source and returns at once when it is cached.
    try {
      const bin = execFileSync('bash', ['scripts/build-llama-server.sh'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 }).trim();
      candidates.push(join(bin, 'llama-server'));
    } catch {
      for (const d of cached) candidates.push(join(cache, 'llama-server', d, 'bin', 'llama-server'));
    }
  }
  for (const path of candidates) if (existsSync(path)) return { path, reason: null };
  return { path: null, reason: 'no cached llama-server build (run `npm run llama-server`, or set LLAMA_SERVER_BIN_DIR)' };
}

/** Writes the tiny model with the built dist/tiny-model.js. */
export function writeTinyModel(out) {
  execFileSync(process.execPath, [TINY_MODEL_CLI, out], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * The first parsed log event (already seen from index `from`, or later) that matches; rejects on
 * timeout or when the process exits first. `source` is a process's event list, listener set,
 * exit promise and stderr, as startDaemon and the boot harness keep them.
 */
export function waitForEvent({ events, listeners, exited, stderr, label }, { match, timeoutMs, what, from = 0 }) {
  for (let i = from; i < events.length; i++) if (match(events[i])) return Promise.resolve(events[i]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      listeners.delete(listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${label} stderr: ${stderr().slice(-500)}`));
    }, timeoutMs);
    const listener = (event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      listeners.delete(listener);
      resolve(event);
    };
    listeners.add(listener);
    exited.then(({ code, signal }) => {
      if (!listeners.has(listener)) return;
      clearTimeout(timer);
      listeners.delete(listener);
      reject(new Error(`${label} exited (${code ?? signal}) while waiting for ${what}; stderr: ${stderr().slice(-500)}`));
    });
  });
}
