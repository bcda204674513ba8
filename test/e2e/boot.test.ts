// `supervisor boot` for real: the built dist/cli.js as PID 1 of fresh PID, mount
// and network namespaces (unshare), started through test/fixtures/boot/launch.sh,
// which puts tmpfs or temp dirs over every path boot writes (/run, /soft, /hard,
// /etc/infer-dev, /var/lib/infer-dev, /etc/ssh, /root/.ssh, /var/log), so the
// host is untouched. The real OpenSSH server, real llama-server instances
// serving the tiny model, a real pseudo-terminal from `script`.
//
// From outside: /run is a temp dir, so the control socket is
// <dir>/run/infer-dev/supervisor.sock; PID 1's host pid is unshare's child;
// ssh runs in the namespace's network through `nsenter -n`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BootStep } from '../../src/boot/steps.ts';
import { sendRequest } from '../../src/control/client.ts';
import { findProcessesWithEnv } from '../../src/process/marked.ts';
import { isAlive } from '../../src/process/proc.ts';
import type { InstanceStatus } from '../../src/supervise/instance.ts';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { llamaServerPath } from '../support/llama-server.ts';
import { requireTools } from '../support/system-tools.ts';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(REPO_ROOT, 'dist/cli.js');
const LAUNCHER = join(REPO_ROOT, 'test/fixtures/boot/launch.sh');
const ORPHANS = join(REPO_ROOT, 'test/fixtures/boot/orphans.sh');
const FAKE_SERVER = join(REPO_ROOT, 'test/fixtures/fake-server.mjs');
const UNSHARE = ['unshare', '--pid', '--mount', '--net', '--fork', '--mount-proc', '--kill-child'];
/** Every wait is bounded; a hung boot fails its test, never the suite. */
const WAIT_MS = 15_000;
/** Unique per run: the INFER_DEV_INSTANCE markers of our instances cannot match another suite's. */
const TAG = `e2eboot${process.pid}`;

type Rec = Record<string, any>;

let root: string;
let model: string;
let hostKeys: string;
let hostKeysReady: Promise<void>;
const boots: Boot[] = [];
const ptys: ChildProcess[] = [];

beforeAll(async () => {
  requireTools(['unshare', 'nsenter', 'script', 'ssh', 'ssh-keygen', 'ip', 'sshd'], 'the boot e2e test');
  if (spawnSync(UNSHARE[0], [...UNSHARE.slice(1), 'true'], { stdio: 'ignore', timeout: 10_000 }).status !== 0) {
    throw new Error(`\`${UNSHARE.join(' ')}\` fails here: the boot e2e test needs root and namespaces`);
  }
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  root = mkdtempSync(join(tmpdir(), 'boot-e2e-'));
  model = join(root, 'tiny.gguf');
  await writeTinyModel(model);
  // Host keys made once, like a restarted container's (RSA takes seconds); the ssh test lets boot make its own.
  hostKeys = join(root, 'host-keys');
  mkdirSync(join(hostKeys, 'etc/ssh'), { recursive: true });
  hostKeysReady = runQuiet('ssh-keygen', ['-A', '-f', hostKeys]).then(() => undefined);
  hostKeysReady.catch(() => {});
  llamaServerPath();
});

afterEach(async () => {
  for (const pty of ptys.splice(0)) await killTree(pty);
  for (const boot of boots.splice(0)) await boot.kill();
});

afterAll(async () => {
  await hostKeysReady?.catch(() => {});
  if (root) rmSync(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// The harness.

interface BootOptions {
  /** The main process; none: boot runs until signalled. */
  cmd?: string[];
  env?: Record<string, string>;
  /** Host dirs bound over these paths (else a tmpfs). */
  etc?: string;
  state?: string;
  soft?: string;
  hard?: string;
  /** Copy in the pre-made host keys (default); false: boot runs ssh-keygen -A itself. */
  hostKeys?: boolean;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when unshare (hence PID 1) exited. */
  at: number;
}

interface Boot {
  dir: string;
  socket: string;
  unshare: ChildProcess;
  /** Parsed JSON lines of stdout (pino), plus { raw } for the others. */
  events: Rec[];
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
  /** PID 1's pid as the host sees it. */
  pid1(): Promise<number>;
  /** The pid namespace of PID 1 (`pid:[inode]`). */
  pidNs: string | null;
  request(cmd: string, args?: Rec): Promise<any>;
  status(): Promise<InstanceStatus[]>;
  bootSteps(): Promise<BootStep[]>;
  /** Waits until the last boot step (serve) is recorded. */
  waitBooted(ms?: number): Promise<BootStep[]>;
  waitFor<T>(what: string | (() => string), probe: () => Promise<T | null | undefined | false> | T | null | undefined | false, ms?: number): Promise<T>;
  waitState(name: string, state: string, ms?: number): Promise<InstanceStatus>;
  /** The host pid of a pid of the namespace. */
  hostPid(nsPid: number): number;
  kill(): Promise<void>;
}

let bootCount = 0;

function launcherEnv(dir: string, options: BootOptions): NodeJS.ProcessEnv {
  // Nothing of ours from the outer environment leaks in: each test says what boot sees.
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SUPERVISOR_|AUTO_INFER_|SSH_|BOOT_)/.test(k)));
  return {
    ...base,
    BOOT_RUN_DIR: join(dir, 'run'),
    BOOT_NODE: process.execPath,
    ...(options.etc ? { BOOT_ETC_DIR: options.etc } : {}),
    ...(options.state ? { BOOT_STATE_DIR: options.state } : {}),
    ...(options.soft ? { BOOT_SOFT_DIR: options.soft } : {}),
    ...(options.hard ? { BOOT_HARD_DIR: options.hard } : {}),
    ...(options.hostKeys === false ? {} : { BOOT_SSH_HOST_KEYS: join(hostKeys, 'etc/ssh') }),
    ...options.env,
  };
}

function makeBootDir(): string {
  const dir = join(root, `b${++bootCount}`);
  mkdirSync(join(dir, 'run'), { recursive: true });
  return dir;
}

async function startBoot(options: BootOptions = {}): Promise<Boot> {
  if (options.hostKeys !== false) await hostKeysReady;
  const dir = makeBootDir();
  const argv = [...UNSHARE, 'bash', LAUNCHER, ...(options.cmd ?? [])];
  const unshare = spawn(argv[0], argv.slice(1), { env: launcherEnv(dir, options), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const boot = wrap({ dir, unshare });
  boots.push(boot);
  boot.pidNs = readlinkSafe(`/proc/${await boot.pid1()}/ns/pid`);
  return boot;
}

function wrap({ dir, unshare }: { dir: string; unshare: ChildProcess }): Boot {
  const socket = join(dir, 'run/infer-dev/supervisor.sock');
  const events: Rec[] = [];
  let stdout = '';
  let stderr = '';
  let partial = '';
  unshare.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk;
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try {
        events.push(JSON.parse(line));
      } catch {
        events.push({ raw: line });
      }
    }
  });
  unshare.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
  // Timed at 'exit', resolved at 'close': tests read the last stdout lines once it resolves.
  let exitAt = 0;
  unshare.once('exit', () => (exitAt = Date.now()));
  const exited = new Promise<Exit>((resolve) => unshare.once('close', (code, signal) => resolve({ code, signal, at: exitAt || Date.now() })));
  let gone = false;
  void exited.then(() => (gone = true));
  let pid1: number | null = null;

  const describeBoot = () => `\n--- stdout ---\n${stdout.slice(-4000)}\n--- stderr ---\n${stderr.slice(-2000)}`;
  const waitFor: Boot['waitFor'] = async (what, probe, ms = WAIT_MS) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = await probe();
      if (value !== null && value !== undefined && value !== false) return value as any;
      // `what` may be a function so that the message shows the last value seen, not the first.
      const describe = () => (typeof what === 'function' ? what() : what);
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${describe()}${describeBoot()}`);
      if (gone) throw new Error(`boot exited while waiting for ${describe()}${describeBoot()}`);
      await sleep(20);
    }
  };
  const request = (cmd: string, args: Rec = {}): Promise<any> => sendRequest({ path: socket, cmd, args, timeoutMs: 5000 });
  const boot: Boot = {
    dir,
    socket,
    unshare,
    events,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    pidNs: null,
    async pid1() {
      pid1 ??= await waitFor('PID 1 (the child of unshare)', () => childrenOf(unshare.pid!)[0]);
      return pid1;
    },
    request,
    status: () => request('status', { names: [] }),
    bootSteps: () => request('boot-steps'),
    async waitBooted(ms = WAIT_MS) {
      return waitFor('the boot steps to finish', async () => {
        if (!existsSync(socket)) return null;
        const rows = (await request('boot-steps').catch(() => null)) as BootStep[] | null;
        // sshd's preparation runs beside bundle, shims and serve: both branches must be done.
        const done = (name: string) => rows?.some((r) => r.name === name && r.state !== 'running') === true;
        return done('serve') && done('sshd') ? rows : null;
      }, ms);
    },
    waitFor,
    async waitState(name, state, ms = WAIT_MS) {
      let last: InstanceStatus | undefined;
      return waitFor(
        () => `${name} to be ${state} (last: ${JSON.stringify(last)})`,
        async () => {
          last = ((await request('status', { names: [] }).catch(() => [])) as InstanceStatus[]).find((r) => r.name === name);
          return last?.state === state ? last : null;
        },
        ms,
      );
    },
    hostPid(nsPid) {
      for (const pid of listPids()) {
        if (boot.pidNs === null || readlinkSafe(`/proc/${pid}/ns/pid`) !== boot.pidNs) continue;
        const ns = /^NSpid:\s+(.*)$/m.exec(readSafe(`/proc/${pid}/status`) ?? '')?.[1].trim().split(/\s+/);
        if (ns && Number(ns[ns.length - 1]) === nsPid) return pid;
      }
      throw new Error(`no process ${nsPid} in ${boot.pidNs}`);
    },
    async kill() {
      if (!gone) {
        try {
          process.kill(-unshare.pid!, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      // --kill-child takes PID 1, hence the namespace, down; make sure nothing of it is left.
      for (const pid of processesInNs(boot.pidNs)) killQuietly(pid);
      await Promise.race([exited, sleep(5000)]);
    },
  };
  return boot;
}

/** The pids of a pid namespace, as the host sees them. */
function processesInNs(ns: string | null): number[] {
  if (ns === null) return [];
  return listPids().filter((pid) => readlinkSafe(`/proc/${pid}/ns/pid`) === ns);
}

function childrenOf(pid: number): number[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tids.flatMap((tid) => (readSafe(`/proc/${pid}/task/${tid}/children`) ?? '').split(' ').filter(Boolean).map(Number));
}

function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  for (const child of childrenOf(pid)) out.push(child, ...descendantsOf(child));
  return out;
}

async function killTree(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // script puts its child in a new session: its group is not ours to kill, so every descendant by pid.
  for (const pid of [...descendantsOf(child.pid!), child.pid!]) killQuietly(pid);
  await Promise.race([exited, sleep(5000)]);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

function listPids(): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

function readSafe(path: string): string | null {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return null;
  }
}

function readlinkSafe(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function runQuiet(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${file} ${args.join(' ')} exited ${code}: ${out}`))));
  });
}

/** `supervisor ARGS` from outside, on the boot's socket. */
function cli(boot: Boot, ...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, SUPERVISOR_SOCKET: boot.socket }, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A row by name; fails with every row when missing. */
function step(rows: BootStep[], name: string): BootStep {
  const row = rows.find((r) => r.name === name);
  if (!row) throw new Error(`no boot step "${name}" in:\n${rows.map((r) => `${r.name}: ${r.state} ${r.message}`).join('\n')}`);
  return row;
}

/** The config of two real llama-server instances on the tiny model. */
function llamaConfig(dir: string, names: string[]): string {
  const blocks = names.map((name, i) => `[instance.${name}.server]\nport = ${18080 + i}\nalias = "${name}"\n`);
  return `[master]
llama_cpp_path = ${JSON.stringify(llamaServerPath())}

[instance.control]
log_dir = ${JSON.stringify(dir)}
stop_timeout_s = 5

[instance.server]
host = "127.0.0.1"
model = ${JSON.stringify(model)}
threads = 1
ctx_size = 512

${blocks.join('\n')}`;
}

function writeConfig(dir: string, text: string): string {
  const file = join(dir, 'infer-dev.toml');
  writeFileSync(file, text);
  return file;
}

// ---------------------------------------------------------------------------

describe('sshd', () => {
  it('a login with a key from SSH_AUTHORIZED_KEYS (SSH_USER=root) succeeds; kill -9 of sshd -> ready again with a new pid within 2 s', async () => {
    const keys = join(root, 'client');
    mkdirSync(keys);
    await runQuiet('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${TAG}-client`, '-f', join(keys, 'id')]);
    const publicKey = readFileSync(join(keys, 'id.pub'), 'utf8').trim();
    // hostKeys false: boot makes this container's own host keys (ssh-keygen -A; RSA takes seconds).
    const boot = await startBoot({ hostKeys: false, env: { SSH_AUTHORIZED_KEYS: publicKey, SSH_USER: 'root' } });
    const rows = await boot.waitBooted(45_000);
    expect(step(rows, 'sshd host keys')).toMatchObject({ state: 'ok', message: expect.stringMatching(/^generated .*ed25519/) });
    expect(step(rows, 'sshd authorized_keys').state).toBe('ok');
    const sshd = await boot.waitState('sshd', 'ready');

    const ssh = spawnSync(
      'nsenter',
      [
        '-t', String(await boot.pid1()), '-n', '--',
        'ssh', '-F', '/dev/null', '-i', join(keys, 'id'), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes',
        '-o', 'StrictHostKeyChecking=no', '-o', `UserKnownHostsFile=${join(keys, 'known_hosts')}`, '-o', 'ConnectTimeout=5',
        'root@127.0.0.1', 'echo "login-$((6*7)) $(id -un)"; tr "\\0" " " </proc/1/cmdline',
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(ssh.stderr).not.toMatch(/Permission denied/);
    expect(ssh.status).toBe(0);
    expect(ssh.stdout).toContain('login-42 root');
    // The shell is inside the container: its PID 1 is the supervisor.
    expect(ssh.stdout).toMatch(/cli\.js boot/);

    const killedAt = Date.now();
    process.kill(boot.hostPid(sshd.pid!), 'SIGKILL');
    const back = await boot.waitFor('sshd ready with a new pid', async () => {
      const row = ((await boot.status()) as InstanceStatus[]).find((r) => r.name === 'sshd');
      return row?.state === 'ready' && row.pid !== sshd.pid ? { row, ms: Date.now() - killedAt } : null;
    }, 5000);
    expect(back.ms).toBeLessThanOrEqual(2000);
    expect(back.row.restarts).toBe(1);
    expect(back.row.last_exit).toMatchObject({ signal: 'SIGKILL' });
  }, 60_000);
});

describe('PID 1 duties', () => {
  it('a CMD that leaves 200 orphaned short-lived children: no zombie in the namespace 1 s after they exit', async () => {
    const boot = await startBoot({ cmd: ['bash', ORPHANS, '200', '/run/orphans.fifo'] });
    const exit = await boot.waitFor('the main process to end', () => Promise.race([boot.exited, sleep(50).then(() => null)]), 30_000);
    const line = boot.stdout().split('\n').find((l) => l.startsWith('orphans-report '));
    expect(line, boot.stdout()).toBeDefined();
    const report = JSON.parse(line!.slice('orphans-report '.length));
    expect(report).toEqual({ orphans: 200, zombies: 0, catsLeft: 0 });
    expect(exit.code).toBe(0);
  });

  it('SIGTERM with two real llama-server instances and sshd: PID 1 exits 0 within ~1 s and no process of the namespace is left', async () => {
    const dir = join(root, 'llama-stop');
    mkdirSync(dir);
    const names = [`${TAG}-a`, `${TAG}-b`];
    const config = writeConfig(dir, llamaConfig(dir, names));
    const boot = await startBoot({ env: { AUTO_INFER_LLAMA_CPP_ON_BOOT: '1', AUTO_INFER_LLAMA_CPP_CONFIG: config } });
    for (const name of [...names, 'sshd']) await boot.waitState(name, 'ready', 30_000);
    const pids = (await boot.status()).map((r) => boot.hostPid(r.pid!));
    expect(pids).toHaveLength(3);
    for (const name of names) expect(await findProcessesWithEnv({ INFER_DEV_INSTANCE: name })).toHaveLength(1);

    const sentAt = Date.now();
    process.kill(await boot.pid1(), 'SIGTERM');
    const exit = await boot.waitFor('PID 1 to exit', () => Promise.race([boot.exited, sleep(50).then(() => null)]));
    const ms = exit.at - sentAt;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(ms).toBeLessThanOrEqual(1500);
    expect(processesInNs(boot.pidNs)).toEqual([]);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    for (const name of names) expect(await findProcessesWithEnv({ INFER_DEV_INSTANCE: name })).toEqual([]);
    // Stopped by the supervisor (each reported stopped), not by the kernel tearing the namespace down.
    for (const name of [...names, 'sshd']) {
      expect(boot.events.some((e) => e.event === 'transition' && e.instance === name && e.to === 'stopped'), `${name} stopped`).toBe(true);
    }
    expect(boot.events.some((e) => e.event === 'shutdown-complete')).toBe(true);
    expect(boot.events.some((e) => e.event === 'stop-budget-exhausted')).toBe(false);
  }, 60_000);

  it('a child that ignores SIGTERM is killed, and PID 1 exits within the stop budget + 0.5 s', async () => {
    const dir = join(root, 'stubborn');
    mkdirSync(dir);
    const name = `${TAG}-stubborn`;
    const config = writeConfig(
      dir,
      `[master]
llama_cpp_path = ${JSON.stringify(process.execPath)}

[instance.control]
log_dir = ${JSON.stringify(dir)}
stop_timeout_s = 30

[instance.${name}.server]
host = "127.0.0.1"
port = 18090
extra_args = [${JSON.stringify(FAKE_SERVER)}, "--ignore-sigterm"]
`,
    );
    const boot = await startBoot({ env: { AUTO_INFER_LLAMA_CPP_ON_BOOT: 'on', AUTO_INFER_LLAMA_CPP_CONFIG: config, SUPERVISOR_STOP_BUDGET_S: '3' } });
    const row = await boot.waitState(name, 'ready');
    const stubborn = boot.hostPid(row.pid!);
    // The start-up warning: 30 s cannot fit a 3 s budget.
    expect(boot.events.some((e) => e.event === 'stop-budget' && String(e.msg).includes(`${name} 30 s`))).toBe(true);

    const sentAt = Date.now();
    process.kill(await boot.pid1(), 'SIGTERM');
    const exit = await boot.waitFor('PID 1 to exit', () => Promise.race([boot.exited, sleep(50).then(() => null)]));
    const ms = exit.at - sentAt;
    expect(exit.code).toBe(0);
    expect(ms).toBeLessThanOrEqual(3500);
    // It did get its grace first: SIGKILL only near the end of the budget.
    expect(ms).toBeGreaterThanOrEqual(2000);
    expect(isAlive(stubborn)).toBe(false);
    expect(await findProcessesWithEnv({ INFER_DEV_INSTANCE: name })).toEqual([]);
    expect(readFileSync(join(dir, `llama-server-${name}.log`), 'utf8')).toContain('ignoring SIGTERM');
  }, 30_000);

  // SIGTERM while a boot step runs (a slow hook): the stop must not wait for the step, and nothing may be
  // started after it (sshd, auto-served instances). Not as PID 1 (docker run --init, tini) such a late
  // llama-server would be left running, re-parented to init.
  it('SIGTERM during a boot step: PID 1 exits within the budget and starts nothing after the stop', async () => {
    const dir = join(root, 'term-during-boot');
    const etc = join(dir, 'etc');
    const hookDir = join(etc, 'hooks/stage-2/on-every-run.d');
    mkdirSync(hookDir, { recursive: true });
    writeFileSync(join(hookDir, '10-slow'), `#!/bin/sh\ntouch ${join(dir, 'hook-started')}\nsleep 5\n`);
    chmodSync(join(hookDir, '10-slow'), 0o755);
    const name = `${TAG}-late`;
    const config = writeConfig(
      dir,
      `[master]\nllama_cpp_path = ${JSON.stringify(process.execPath)}\n\n[instance.control]\nlog_dir = ${JSON.stringify(dir)}\n\n` +
        `[instance.${name}.server]\nhost = "127.0.0.1"\nport = 18093\nextra_args = [${JSON.stringify(FAKE_SERVER)}]\n`,
    );
    const boot = await startBoot({ etc, env: { AUTO_INFER_LLAMA_CPP_ON_BOOT: '1', AUTO_INFER_LLAMA_CPP_CONFIG: config, SUPERVISOR_STOP_BUDGET_S: '2' } });
    await boot.waitFor('the slow hook to run', () => existsSync(join(dir, 'hook-started')));
    const sentAt = Date.now();
    process.kill(await boot.pid1(), 'SIGTERM');
    const exit = await boot.waitFor('PID 1 to exit', () => Promise.race([boot.exited, sleep(50).then(() => null)]));
    const stopAt = boot.events.findIndex((e) => e.event === 'stop-requested');
    const startedAfterStop = boot.events.slice(stopAt).filter((e) => e.event === 'transition' && e.to === 'starting').map((e) => e.instance);
    expect(exit.code).toBe(0);
    expect(startedAfterStop).toEqual([]);
    expect(exit.at - sentAt).toBeLessThanOrEqual(2500);
  }, 30_000);

  it('CMD exiting with 7 -> boot exits 7', async () => {
    const boot = await startBoot({ cmd: ['sh', '-c', 'exit 7'] });
    const exit = await boot.waitFor('boot to exit', () => Promise.race([boot.exited, sleep(50).then(() => null)]));
    expect(exit).toMatchObject({ code: 7, signal: null });
    expect(boot.events.find((e) => e.event === 'main-exit')).toMatchObject({ exitCode: 7 });
  });

  it('CMD killed by SIGKILL -> boot exits 137', async () => {
    const boot = await startBoot({ cmd: ['sh', '-c', 'kill -9 $$'] });
    const exit = await boot.waitFor('boot to exit', () => Promise.race([boot.exited, sleep(50).then(() => null)]));
    expect(exit).toMatchObject({ code: 137, signal: null });
    expect(boot.events.find((e) => e.event === 'main-exit')).toMatchObject({ signal: 'SIGKILL', exitCode: 137 });
  });
});

/** An odd duration, so that the sleep is recognisable among other processes. */
const SLEEP_ARG = '30.0719';

/** The host pid of our `sleep` when it is its terminal's foreground job (stat: pgrp = tpgid). */
function findForegroundSleep(): number | null {
  for (const pid of listPids()) {
    if (readSafe(`/proc/${pid}/cmdline`) !== `sleep\0${SLEEP_ARG}\0`) continue;
    const stat = readSafe(`/proc/${pid}/stat`);
    if (stat === null) continue;
    // After comm: state ppid pgrp session tty_nr tpgid
    const [, , pgrp, , , tpgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (pgrp === tpgid) return pid;
  }
  return null;
}

/** `script` (a pty) running the launcher with `bash --norc -i` as CMD; output is collected as it comes. */
function startOnPty(extraEnv: Record<string, string>) {
  const dir = makeBootDir();
  const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
  const command = [...UNSHARE, 'bash', LAUNCHER, 'bash', '--norc', '-i'].map(quote).join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], { env: { ...launcherEnv(dir, {}), TERM: 'dumb', ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'] });
  ptys.push(child);
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  const boot = wrap({ dir, unshare: child });
  return {
    boot,
    get output() {
      return output;
    },
    type: (text: string) => child.stdin!.write(text),
    /** Resolves once the output matches, after `from` characters. */
    expect: (pattern: RegExp, from = 0) => boot.waitFor(`${pattern} in:\n${output}`, () => pattern.test(output.slice(from))),
    /** script's exit code (-e: its child's), or null when it has not ended within ms. */
    closedWithin: (ms: number) => Promise.race([closed, sleep(ms).then(() => 'still running' as const)]),
  };
}

/** bash's default prompt (a non-interactive bash, the launcher, drops PS1 from the environment). */
const PROMPT = /bash-[\d.]+[#$] /;

describe('an interactive bash as CMD on a terminal (docker run -it)', () => {
  it('runs commands; Ctrl-C interrupts its foreground sleep, not bash nor the supervisor; exit 3 ends the container with 3', async () => {
    await hostKeysReady;
    // As docker run -it starts it: PID 1 leads a new session whose controlling terminal is the pty.
    const pty = startOnPty({ BOOT_SESSION: '1' });
    // $((...)) so that the echoed input never matches the expected output.
    await pty.expect(PROMPT);
    pty.type('echo hi-$((40+2)) $(cut -d" " -f8 /proc/$$/stat) $(cut -d" " -f5 /proc/$$/stat)\n');
    await pty.expect(/hi-42 (\d+) (\d+)/);
    // bash leads the terminal's foreground group: job control works.
    const [, tpgid, pgrp] = /hi-42 (\d+) (\d+)/.exec(pty.output)!;
    expect(tpgid).toBe(pgrp);

    pty.type(`echo sleeping-$((2+2)); sleep ${SLEEP_ARG}; echo slept-$((1+1))\n`);
    await pty.boot.waitFor('sleep in the foreground', () => findForegroundSleep());
    const mark = pty.output.length;
    const sentAt = Date.now();
    pty.type('\x03');
    pty.type('echo after-$((3+3))\n');
    await pty.expect(/after-6/, mark);
    expect(Date.now() - sentAt).toBeLessThan(5000);
    expect(pty.output).not.toContain('slept-2');
    // The supervisor took no Ctrl-C: still answering as PID 1, no stop begun.
    expect(await pty.boot.request('ping')).toMatchObject({ pid: 1 });
    expect(pty.output).not.toMatch(/SIGINT: stopping|stop-requested/);

    pty.type('exit 3\n');
    expect(await pty.closedWithin(10_000)).toBe(3);
    expect(pty.output).not.toMatch(/no job control|cannot set terminal process group|internal error/);
  }, 30_000);

  // PID 1 started from a shell with plain `unshare --pid --fork` stays in unshare's process group,
  // which lies outside its PID namespace: getpgrp() and tcgetpgrp() both read 0 there. The main
  // process still gets the terminal, but giving it back (tcsetpgrp(0, 0)) fails with ESRCH, which
  // src/pid1/main-process.ts (takeBackTerminal) rethrows, and src/cli/commands/boot.ts never exits
  // on that error: the container outlives its CMD, with sshd still running.
  it('PID 1 whose process group lies outside its namespace: exit 3 still ends the container with 3', async () => {
    await hostKeysReady;
    const pty = startOnPty({});
    await pty.expect(PROMPT);
    pty.type('echo hi-$((40+2))\n');
    await pty.expect(/hi-42/);
    pty.type('exit 3\n');
    const code = await pty.closedWithin(5000);
    expect(pty.output).not.toMatch(/internal error/);
    expect(code).toBe(3);
  }, 30_000);
});

describe('hooks and first-run markers', () => {
  it('a failing first-run hook: marker not written, it runs again at the next boot; with the marker, first-run hooks are skipped; every-run hooks run each time', async () => {
    const dir = join(root, 'hooks');
    const etc = join(dir, 'etc');
    const state = join(dir, 'state');
    const log = join(dir, 'hooks.log');
    const failFlag = join(dir, 'fail');
    mkdirSync(state, { recursive: true });
    const hook = (path: string, body: string) => {
      mkdirSync(join(etc, 'hooks', path, '..'), { recursive: true });
      writeFileSync(join(etc, 'hooks', path), `#!/bin/sh\n${body}\n`);
      chmodSync(join(etc, 'hooks', path), 0o755);
    };
    hook('stage-1/on-first-run.d/10-setup', `echo s1-first >> ${log}; if [ -e ${failFlag} ]; then echo "setup failed on purpose" >&2; exit 4; fi`);
    hook('stage-1/on-every-run.d/10-every', `echo s1-every >> ${log}`);
    hook('stage-2/on-first-run.d/10-setup', `echo s2-first >> ${log}`);
    hook('stage-2/on-every-run.d/10-every', `echo s2-every >> ${log}`);
    writeFileSync(failFlag, '');
    const markers = () => ['stage-1', 'stage-2'].filter((s) => existsSync(join(state, `${s}.first-run.json`)));
    const lines = () => readFileSync(log, 'utf8').trim().split('\n');

    // Boot 1 (no CMD, so that `supervisor status` can be asked): the stage-1 first-run hook fails, boot goes on.
    const first = await startBoot({ etc, state });
    const rows = await first.waitBooted();
    expect(step(rows, 'hook stage-1/on-first-run.d/10-setup')).toMatchObject({ state: 'failed', message: expect.stringMatching(/4/) });
    expect(step(rows, 'stage-1 first-run')).toMatchObject({ state: 'warning', message: expect.stringMatching(/marker not written/) });
    expect(step(rows, 'stage-2 first-run').state).toBe('ok');
    expect(cli(first, 'status').stdout).toMatch(/hook stage-1\/on-first-run\.d\/10-setup\s+failed/);
    expect(await first.waitState('sshd', 'ready')).toBeTruthy();
    process.kill(await first.pid1(), 'SIGTERM');
    expect((await first.exited).code).toBe(0);
    expect(lines()).toEqual(['s1-first', 's1-every', 's2-first', 's2-every']);
    expect(markers()).toEqual(['stage-2']);

    // Boot 2: the failed stage-1 first run is tried again (and succeeds); stage-2's marker skips its first-run hook.
    rmSync(failFlag);
    const second = await startBoot({ etc, state, cmd: ['true'] });
    expect((await second.exited).code).toBe(0);
    expect(lines().slice(4)).toEqual(['s1-first', 's1-every', 's2-every']);
    expect(markers()).toEqual(['stage-1', 'stage-2']);
    expect(JSON.parse(readFileSync(join(state, 'stage-1.first-run.json'), 'utf8'))).toMatchObject({ stage: 'stage-1', hooks: ['stage-1/on-first-run.d/10-setup'] });

    // Boot 3: both markers: only every-run hooks.
    const third = await startBoot({ etc, state, cmd: ['true'] });
    expect((await third.exited).code).toBe(0);
    expect(lines().slice(7)).toEqual(['s1-every', 's2-every']);
    expect(third.events.filter((e) => e.event === 'boot-hooks-skipped').map((e) => e.stage)).toEqual(['stage-1', 'stage-2']);
  }, 60_000);
});

describe('the /soft links', () => {
  it('a dangling /soft/data link is repaired; a real directory at /soft/app is left alone with a warning in `supervisor status`', async () => {
    const dir = join(root, 'links');
    const soft = join(dir, 'soft');
    mkdirSync(join(soft, 'app'), { recursive: true });
    writeFileSync(join(soft, 'app', 'keep.txt'), 'mine\n');
    spawnSync('ln', ['-s', '/hard/image/gone', join(soft, 'data')]);
    const boot = await startBoot({ soft });
    const rows = await boot.waitBooted();
    expect(step(rows, 'link /soft/data')).toMatchObject({ state: 'ok', message: expect.stringMatching(/-> \/hard\/image\/data \(was \/hard\/image\/gone, dangling\)/) });
    expect(step(rows, 'link /soft/app')).toMatchObject({ state: 'warning', message: expect.stringMatching(/real directory/) });
    expect(step(rows, 'link /soft/workspace').state).toBe('ok');
    const status = cli(boot, 'status');
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^link \/soft\/app\s+warning\s+\S+\s+\/soft\/app is a real directory, not a link/m);
    expect(status.stdout).toMatch(/^link \/soft\/data\s+ok\s/m);
    expect(boot.events.some((e) => e.event === 'boot-link' && e.path === '/soft/app' && e.level === 40)).toBe(true);

    expect(readlinkSync(join(soft, 'data'))).toBe('/hard/image/data');
    expect(readlinkSync(join(soft, 'workspace'))).toBe('/hard/image/workspace');
    expect(lstatSync(join(soft, 'app')).isDirectory()).toBe(true);
    expect(readFileSync(join(soft, 'app', 'keep.txt'), 'utf8')).toBe('mine\n');
    process.kill(await boot.pid1(), 'SIGTERM');
    expect((await boot.exited).code).toBe(0);
  });
});

describe('environment toggles', () => {
  /** A package for the bundle step: bin/llama-server runs the fake server. */
  function makePackage(dir: string): string {
    const pkg = join(dir, 'pkg', 'llama-cpp-test');
    mkdirSync(join(pkg, 'bin'), { recursive: true });
    writeFileSync(join(pkg, 'README.md'), 'test package\n');
    writeFileSync(join(pkg, 'bin', 'libfake.so'), '');
    // The installer proves the binary runs (`llama-server --version`) before it activates the package.
    writeFileSync(
      join(pkg, 'bin', 'llama-server'),
      `#!/bin/sh\nif [ "$1" = --version ]; then echo "version: 1 (${TAG})"; exit 0; fi\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(FAKE_SERVER)} "$@"\n`,
    );
    chmodSync(join(pkg, 'bin', 'llama-server'), 0o755);
    const archive = join(dir, 'llama-cpp-test.tar.gz');
    const tar = spawnSync('tar', ['-czf', archive, '-C', join(dir, 'pkg'), 'llama-cpp-test']);
    if (tar.status !== 0) throw new Error(`tar failed: ${tar.stderr}`);
    return archive;
  }
  /** llama_cpp_path unset: the executable is the bundle's /soft/app/llama-cpp/bin/llama-server once installed. */
  function bundleConfig(dir: string, name: string): string {
    return writeConfig(dir, `[instance.control]\nlog_dir = ${JSON.stringify(dir)}\n\n[instance.${name}.server]\nhost = "127.0.0.1"\nport = 18091\n`);
  }

  it('off: no bundle install and no instance, though the archive and the config exist', async () => {
    const dir = join(root, 'toggles-off');
    mkdirSync(dir);
    const name = `${TAG}-off`;
    const boot = await startBoot({
      env: { AUTO_INFER_LLAMA_CPP_ON_BOOT: '0', AUTO_INFER_LLAMA_CPP_CONFIG: bundleConfig(dir, name), AUTO_INFER_LLAMA_CPP_PKG_PATH: makePackage(dir) },
    });
    const rows = await boot.waitBooted();
    expect(step(rows, 'bundle')).toMatchObject({ state: 'skipped', message: expect.stringMatching(/AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT is off/) });
    expect(step(rows, 'serve')).toMatchObject({ state: 'skipped', message: expect.stringMatching(/AUTO_INFER_LLAMA_CPP_ON_BOOT is off/) });
    expect(rows.some((r) => r.name === 'environment')).toBe(false);
    await sleep(300);
    expect((await boot.status()).map((r) => r.name)).toEqual(['sshd']);
    expect(await findProcessesWithEnv({ INFER_DEV_INSTANCE: name })).toEqual([]);
    process.kill(await boot.pid1(), 'SIGTERM');
    expect((await boot.exited).code).toBe(0);
  });

  it('on: the bundle is installed, then its llama-server serves the config', async () => {
    const dir = join(root, 'toggles-on');
    mkdirSync(dir);
    const name = `${TAG}-on`;
    const boot = await startBoot({
      env: {
        AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT: 'TRUE',
        AUTO_INFER_LLAMA_CPP_PKG_PATH: makePackage(dir),
        AUTO_INFER_LLAMA_CPP_ON_BOOT: 'yes',
        AUTO_INFER_LLAMA_CPP_CONFIG: bundleConfig(dir, name),
      },
    });
    const rows = await boot.waitBooted();
    expect(step(rows, 'bundle').state).toBe('ok');
    expect(step(rows, 'serve')).toMatchObject({ state: 'ok', message: `started: ${name}` });
    await boot.waitState(name, 'ready');
    const logs = (await boot.request('logs', { name, lines: 50 })) as { lines: string[] };
    expect(logs.lines.join('\n')).toContain('/soft/app/llama-cpp/bin/llama-server');
    expect(await findProcessesWithEnv({ INFER_DEV_INSTANCE: name })).toHaveLength(1);
    process.kill(await boot.pid1(), 'SIGTERM');
    expect((await boot.exited).code).toBe(0);
    expect(await findProcessesWithEnv({ INFER_DEV_INSTANCE: name })).toEqual([]);
  });

  it("vLLM as upstream's entry did it: the offline bundle installed at boot, then AUTO_INFER_VLLM_CONFIG served from it (the stand-in engine)", async () => {
    const dir = join(root, 'toggles-vllm');
    mkdirSync(join(dir, 'template'), { recursive: true });
    writeFileSync(join(dir, 'template', 'pixi.toml'), '[workspace]\nchannels = ["conda-forge"]\n');
    // The bundle's "packages" are the engine stand-in itself (test/fixtures/engines), so the installed environment serves it.
    mkdirSync(join(dir, 'bundle', 'channel'), { recursive: true });
    spawnSync('cp', ['-R', join(REPO_ROOT, 'test/fixtures/engines/vllm-project/standin'), join(dir, 'bundle', 'channel', 'standin')]);
    writeFileSync(join(dir, 'bundle', 'channel', 'vllm.py'), '');
    const bundle = join(dir, 'vllm-offline-bundle.tar');
    expect(spawnSync('tar', ['-cf', bundle, '-C', join(dir, 'bundle'), 'channel']).status).toBe(0);
    const name = `${TAG}-vllm`;
    const config = join(dir, 'vllm.toml');
    writeFileSync(config, `[master]\napi_server_module = "standin.api_server"\n[instance.control]\nlog_dir = ${JSON.stringify(dir)}\nenv = { STANDIN_LOAD_S = "0.3" }\n[instance.${name}.server]\nhost = "127.0.0.1"\nport = 18093\nmodel = "Qwen/Qwen2-VL-7B-Instruct"\n`);
    const boot = await startBoot({
      env: {
        PATH: `${join(REPO_ROOT, 'test/fixtures/engines/install-bin')}:${process.env.PATH}`,
        AUTO_INFER_VLLM_BUNDLE_ON_BOOT: '1',
        AUTO_INFER_VLLM_BUNDLE_PATH: bundle,
        AUTO_INFER_VLLM_PIXI_TEMPLATE_DIR: join(dir, 'template'),
        AUTO_INFER_VLLM_PIXI_PROJECT_DIR: join(dir, 'vllm-pixi-offline'),
        AUTO_INFER_VLLM_ON_BOOT: 'true',
        AUTO_INFER_VLLM_CONFIG: config,
      },
    });
    await boot.waitBooted();
    const rows = await boot.waitFor('the vLLM serve step', async () => {
      const seen = (await boot.request('boot-steps')) as BootStep[];
      return seen.some((r) => r.name === 'serve vllm' && r.state !== 'running') ? seen : null;
    }, 30_000);
    expect(step(rows, 'bundle vllm')).toMatchObject({ state: 'ok', message: expect.stringContaining('installed vllm-offline-bundle.tar') });
    expect(step(rows, 'serve vllm')).toMatchObject({ state: 'ok', message: `started: ${name}` });
    const ready = (await boot.waitState(name, 'ready')) as Rec;
    expect(ready.engine).toBe('vllm');
    const logs = (await boot.request('logs', { name, lines: 50 })) as { lines: string[] };
    expect(logs.lines.join('\n')).toContain(`pixi run --manifest-path ${join(dir, 'vllm-pixi-offline')} --environment default --frozen python -m standin.api_server`);
    expect(lstatSync(join(dir, 'vllm-pixi-offline')).isSymbolicLink()).toBe(true);
    process.kill(await boot.pid1(), 'SIGTERM');
    expect((await boot.exited).code).toBe(0);
    expect(await findProcessesWithEnv({ INFER_DEV_INSTANCE: name })).toEqual([]);
  });

  it('an unknown boolean value gives a warning naming the variable and counts as off', async () => {
    const dir = join(root, 'toggles-unknown');
    mkdirSync(dir);
    const name = `${TAG}-maybe`;
    const boot = await startBoot({
      env: {
        AUTO_INFER_LLAMA_CPP_ON_BOOT: 'maybe',
        AUTO_INFER_LLAMA_CPP_CONFIG: bundleConfig(dir, name),
        AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT: 'enabled',
        AUTO_INFER_LLAMA_CPP_PKG_PATH: makePackage(dir),
      },
    });
    const rows = await boot.waitBooted();
    const env = step(rows, 'environment');
    expect(env.state).toBe('warning');
    expect(env.message).toContain('AUTO_INFER_LLAMA_CPP_ON_BOOT="maybe"');
    expect(env.message).toContain('AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT="enabled"');
    const warnings = boot.events.filter((e) => e.event === 'boot-env-warning').map((e) => String(e.msg));
    expect(warnings.some((w) => w.includes('AUTO_INFER_LLAMA_CPP_ON_BOOT') && w.includes('maybe') && /off/.test(w))).toBe(true);
    expect(step(rows, 'serve').state).toBe('skipped');
    expect(step(rows, 'bundle').state).toBe('skipped');
    expect(cli(boot, 'status').stdout).toMatch(/^environment\s+warning\s+\S+\s+AUTO_INFER_LLAMA_CPP_\w+="\w+" is not a boolean/m);
    await sleep(300);
    expect((await boot.status()).map((r) => r.name)).toEqual(['sshd']);
    process.kill(await boot.pid1(), 'SIGTERM');
    expect((await boot.exited).code).toBe(0);
  });
});
