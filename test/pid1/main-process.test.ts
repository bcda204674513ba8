// The main process through a miniature boot (test/fixtures/pid1/boot-host.mjs):
// exit codes, exec failures, signal forwarding, clean signal state and fds,
// and an interactive bash on a pseudo-terminal made by `script`.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildPid1Bundle, canUnshare, FIXTURES, killLeftovers, runToEnd, startRun, UNSHARE, type RunResult } from './pid1-bundle.ts';

const BOOT_HOST = join(FIXTURES, 'boot-host.mjs');
const WAIT_LIMIT_MS = 10_000;
let bundle: Awaited<ReturnType<typeof buildPid1Bundle>>;
let dir: string;

beforeAll(async () => {
  bundle = await buildPid1Bundle();
  dir = mkdtempSync(join(tmpdir(), 'pid1-main-'));
});
afterEach(killLeftovers);
afterAll(() => {
  bundle?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const env = (extra: NodeJS.ProcessEnv = {}) => ({ ...process.env, PID1_BUNDLE: bundle.file, ...extra });
const boot = (cmd: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}) =>
  runToEnd([process.execPath, BOOT_HOST, '--', ...cmd], { env: env(options.env), input: options.input });
/** Starts the boot-host and waits until its main process runs; `host` is the supervisor's pid. */
async function startBoot(cmd: string[]) {
  const pidFile = join(dir, `main-${Date.now()}-${Math.random()}.pid`);
  const { pid: host, result } = startRun([process.execPath, BOOT_HOST, '--', ...cmd], { env: env({ READY_FILE: pidFile }) });
  await waitFor('the main process', () => existsSync(pidFile));
  return { host, mainPid: Number(readFileSync(pidFile, 'utf8')), result };
}

/** The `pid1-log {json}` lines of the fixture's stderr. */
const events = (result: RunResult) =>
  result.stderr
    .split('\n')
    .filter((l) => l.startsWith('pid1-log '))
    .map((l) => JSON.parse(l.slice('pid1-log '.length)) as Record<string, unknown>);

async function waitFor(what: string, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('main process exit codes', () => {
  it('exit 7 -> 7', async () => {
    const result = await boot(['sh', '-c', 'exit 7']);
    expect(result.code).toBe(7);
    expect(events(result).find((e) => e.event === 'main-exited')).toMatchObject({ code: 7, exitCode: 7 });
  });

  it('killed by SIGKILL -> 137', async () => {
    const result = await boot(['sh', '-c', 'kill -9 $$']);
    expect(result.code).toBe(137);
    expect(events(result).find((e) => e.event === 'main-exited')).toMatchObject({ signal: 'SIGKILL', exitCode: 137 });
  });

  it('missing program -> 127, with a message naming it', async () => {
    const result = await boot(['/nonexistent/program', 'arg']);
    expect(result.code).toBe(127);
    expect(events(result).find((e) => e.event === 'main-spawn-failed')).toMatchObject({
      code: 'ENOENT',
      msg: 'cannot run /nonexistent/program: no such file (or not found on PATH)',
    });
  });

  it('not executable -> 126', async () => {
    const file = join(dir, 'not-executable');
    writeFileSync(file, '#!/bin/sh\nexit 0\n');
    chmodSync(file, 0o644);
    const result = await boot([file]);
    expect(result.code).toBe(126);
    expect(events(result).find((e) => e.event === 'main-spawn-failed')).toMatchObject({ code: 'EACCES' });
  });

  it('looks the program up on PATH and inherits stdin, stdout and stderr', async () => {
    const result = await boot(['sh', '-c', 'read line; echo "out:$line"; echo err >&2'], { input: 'hello\n' });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('out:hello\n');
    expect(result.stderr).toContain('err\n');
  });
});

describe('main process environment', () => {
  it('leads its own process group, with default signal dispositions and an empty mask (Node ignores SIGPIPE)', async () => {
    const result = await boot(['sh', '-c', 'cat /proc/self/status; echo "pgid=$(cut -d" " -f5 /proc/$$/stat) pid=$$"']);
    expect(result.code).toBe(0);
    // Bit n-1 is signal n. Signals 1..31 must be default. glibc's posix_spawn leaves its own internal
    // signals 32 and 33 ignored (seen with glibc 2.36); glibc programs set their own handlers for those.
    const ignored = BigInt(`0x${/^SigIgn:\s+([0-9a-f]+)$/m.exec(result.stdout)?.[1]}`);
    const GLIBC_INTERNAL = (1n << 31n) | (1n << 32n);
    expect(ignored & ~GLIBC_INTERNAL).toBe(0n);
    expect(result.stdout).toMatch(/^SigBlk:\s+0{16}$/m);
    const [, pgid, pid] = /pgid=(\d+) pid=(\d+)/.exec(result.stdout) ?? [];
    expect(pgid).toBe(pid);
  });

  it('inherits no fd above 2, even one the supervisor was given without close-on-exec', async () => {
    const child = spawn(process.execPath, [BOOT_HOST, '--', 'sh', '-c', 'ls /proc/$$/fd'], { env: env(), stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout!.on('data', (chunk) => (stdout += chunk));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(stdout.trim().split(/\s+/).sort()).toEqual(['0', '1', '2']);
  });
});

describe('signals reach the main process group', () => {
  it('SIGUSR1 to the supervisor reaches a child that traps it', async () => {
    const ready = join(dir, 'usr1.ready');
    const got = join(dir, 'usr1.got');
    const script = `trap 'echo usr1 > ${got}; exit 0' USR1; touch ${ready}; while :; do sleep 0.05; done`;
    const { host, result: running } = await startBoot(['sh', '-c', script]);
    await waitFor('the trap to be set', () => existsSync(ready));
    process.kill(host, 'SIGUSR1');
    const result = await running;
    expect(result.code).toBe(0);
    expect(readFileSync(got, 'utf8')).toBe('usr1\n');
    // Our listener replaces Node's own SIGUSR1 use (starting the inspector): PID 1 opens no debug port.
    expect(result.stderr).not.toContain('Debugger listening');
  });

  it('SIGTERM to the supervisor: the stop starts and the main process gets SIGTERM (exit 143)', async () => {
    const { host, result: running } = await startBoot(['sleep', '30']);
    process.kill(host, 'SIGTERM');
    const result = await running;
    expect(result.code).toBe(143);
    expect(events(result).map((e) => e.event)).toEqual(['main-started', 'stop-requested', 'on-stop', 'main-exited']);
    expect(result.ms).toBeLessThan(5000);
  });
});

describe('a second SIGTERM during the stop', () => {
  it('SIGKILLs everything left (the main process and what it started) and exits 143', async () => {
    const sleeperFile = join(dir, 'escalate.sleeper');
    // Both ignore SIGTERM: the forwarded one changes nothing.
    const script = `trap '' TERM; sleep 30 & echo $! > ${sleeperFile}.tmp; mv ${sleeperFile}.tmp ${sleeperFile}; wait`;
    const { host, mainPid, result: running } = await startBoot(['sh', '-c', script]);
    await waitFor('the sleeper', () => existsSync(sleeperFile));
    const sleeper = Number(readFileSync(sleeperFile, 'utf8'));
    process.kill(host, 'SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(isRunning(mainPid)).toBe(true);
    process.kill(host, 'SIGTERM');
    const result = await running;
    expect(result.code).toBe(143);
    expect(events(result).map((e) => e.event)).toEqual(['main-started', 'stop-requested', 'on-stop', 'stop-escalated', 'killed-everything-left']);
    await waitFor('the main process and its sleeper to die', () => !isRunning(mainPid) && !isRunning(sleeper));
  });
});

/** Alive and not a zombie. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Drives `script` (a pty) with the boot-host inside; output is collected as it comes. */
function startOnPty(command: string) {
  const argv = ['script', '-qec', command, '/dev/null'];
  const child = spawn(canUnshare() ? UNSHARE[0]! : argv[0]!, canUnshare() ? [...UNSHARE.slice(1), ...argv] : argv.slice(1), {
    env: env({ TERM: 'dumb' }),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
  return {
    get output() {
      return output;
    },
    type: (text: string) => child.stdin!.write(text),
    /** Resolves once the output matches, after `from` characters; rejects after the limit. */
    expect: (pattern: RegExp, from = 0) => waitFor(`${pattern} in:\n${output}`, () => pattern.test(output.slice(from))),
    kill: () => child.kill('SIGKILL'),
    closed,
  };
}

/** An odd duration, so that the sleep is recognisable in /proc among other tests' processes. */
const SLEEP_ARG = '30.0417';

/** The pid of our `sleep` when its group is its terminal's foreground group (stat: pgrp = tpgid). */
function findForegroundSleep(): number | null {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmdline: string;
    let stat: string;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'latin1');
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') continue;
      throw err;
    }
    if (cmdline !== `sleep\0${SLEEP_ARG}\0`) continue;
    // After comm: state ppid pgrp session tty_nr tpgid
    const [, , pgrp, , , tpgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (pgrp === tpgid) return Number(name);
  }
  return null;
}

describe('an interactive shell on a terminal (docker run -it)', () => {
  const host = `REPORT_TTY=1 ${process.execPath} ${BOOT_HOST} -- bash --norc -i`;

  it('runs commands; Ctrl-C interrupts its foreground job, not bash nor the supervisor; exit 3 -> 3', async () => {
    const pty = startOnPty(host);
    try {
      // $((...)) so that the echoed input never matches the expected output.
      await pty.expect(/# |\$ /);
      pty.type('echo hi-$((40+2))\n');
      await pty.expect(/hi-42/);
      pty.type(`echo sleeping-$((2+2)); sleep ${SLEEP_ARG}; echo slept-$((1+1))\n`);
      // Ctrl-C only once the sleep is the terminal's foreground job, or bash itself would take it.
      await waitFor('sleep in the foreground', () => findForegroundSleep() !== null);
      const started = Date.now();
      pty.type('\x03');
      pty.type('echo after-$((3+3))\n');
      await pty.expect(/after-6/);
      expect(Date.now() - started).toBeLessThan(5000);
      pty.type('exit 3\n');
      expect(await pty.closed).toBe(3);
    } finally {
      pty.kill();
    }
    expect(pty.output).not.toContain('slept-2');
    expect(pty.output).not.toMatch(/no job control|cannot set terminal process group/);
    expect(pty.output).not.toContain('"event":"stop-requested"');
    expect(pty.output).toContain('"event":"main-exited"');
    expect(pty.output).toContain('tty-back: true');
  });

  it('negative control: without the terminal hand-over bash stops itself (SIGTTIN) and never prompts', async () => {
    const pty = startOnPty(`NO_TERMINAL=1 ${host}`);
    try {
      await pty.expect(/"event":"main-started".*"terminal":false/);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(pty.output).not.toMatch(/# |\$ /);
    } finally {
      pty.kill();
    }
  });
});
