// The container's CMD (`boot -- CMD ARGS`) as the main process: it inherits
// stdin/stdout/stderr, leads its own process group, and when stdin is our
// terminal that group becomes the terminal's foreground group, so Ctrl-C and
// job control reach the shell's foreground job and never the supervisor (tini's
// isolate_child). child_process cannot do this (its only option is setsid, which
// takes the terminal away), so the CMD is started with posix_spawn and reaped
// by our reaper, never by libuv.
import { isatty } from 'node:tty';
import { exitCodeFor } from './exit-code.ts';
import { loadLibc, SyscallError, type Libc, type WaitStatus } from './libc.ts';
import { silentLog, type Log } from '../logging/log.ts';
import type { Reaper } from './reaper.ts';
import { forwardSignal, ignoreTerminalStopSignals } from './signals.ts';

export interface MainOptions {
  command: string;
  args?: readonly string[];
  /** Its environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  /** Collects its exit status; must be running. */
  reaper: Pick<Reaper, 'expectExit'>;
  /** Hand it the terminal on fd 0 when that is our terminal and we are in the foreground (default true). */
  terminal?: boolean;
  log?: Log;
}

/** How the main process ended, and the code `boot` exits with. */
export interface MainExit {
  code: number | null;
  signal: string | null;
  /** Set when it never ran; exitCode is then 127 (ENOENT) or 126. */
  spawnError: { code: string; message: string } | null;
  exitCode: number;
}

export interface MainProcess {
  /** Its pid, which is also its process group id; null when exec failed. */
  pid: number | null;
  /** Resolves once it has exited and been reaped, after the terminal was given back. */
  exited: Promise<MainExit>;
  /** Signals its whole process group; false when the group is gone (warned, not thrown). */
  signal(signal: NodeJS.Signals | number): boolean;
}

/** Starts the main process in its own process group, in the terminal's foreground when there is one. */
export function spawnMain({ command, args = [], env = process.env, reaper, terminal = true, log = silentLog }: MainOptions): MainProcess {
  const libc = loadLibc();
  const tty = terminal ? findOwnTerminal({ libc, log }) : null;
  let spawned: { pid: number; terminalHandedOver: boolean };
  try {
    spawned = libc.spawnInNewGroup({ file: command, argv: [command, ...args], env: flattenEnv(env), terminalFd: tty?.fd ?? null });
  } catch (err) {
    if (!(err instanceof SyscallError) || err.syscall !== 'posix_spawnp') throw err;
    return failedMain({ command, err, log });
  }
  const { pid } = spawned;
  // Registered before any scan can run: the reaper only scans from the event loop.
  const status = reaper.expectExit(pid);
  if (tty && !spawned.terminalHandedOver) handOverTerminal({ libc, fd: tty.fd, pgid: pid, log });
  log.info({ event: 'main-started', pid, command, args, terminal: tty !== null }, `main process started: ${command} (pid ${pid})`);
  const exited = status.then((wait) => {
    if (tty) takeBackTerminal({ libc, fd: tty.fd, pgrp: tty.ownPgrp, log });
    const result = describeExit(wait);
    log.info({ event: 'main-exited', pid, ...result }, `main process exited (${result.signal ?? `code ${result.code}`}): exit code ${result.exitCode}`);
    return result;
  });
  return { pid, exited, signal: (signal) => forwardSignal({ pgid: pid, signal, log }) };
}

/** Our terminal on fd 0, when we hold its foreground: otherwise it is not ours to hand over. */
function findOwnTerminal({ libc, log }: { libc: Libc; log: Log }): { fd: number; ownPgrp: number } | null {
  const fd = 0;
  if (!isatty(fd)) return null;
  let foreground: number;
  try {
    foreground = libc.tcgetpgrp(fd);
  } catch (err) {
    // ENOTTY: a terminal, but not our controlling one (tini logs these at debug too).
    if (err instanceof SyscallError && (err.code === 'ENOTTY' || err.code === 'ENXIO')) {
      log.debug({ event: 'terminal-not-ours', code: err.code }, 'stdin is a terminal but not our controlling terminal');
      return null;
    }
    throw err;
  }
  const ownPgrp = libc.getpgrp();
  if (foreground !== ownPgrp) {
    log.debug({ event: 'terminal-background', foreground, ownPgrp }, 'not in the terminal foreground: leaving it alone');
    return null;
  }
  // Giving the terminal back later is a tcsetpgrp from the background, which raises SIGTTOU unless ignored.
  ignoreTerminalStopSignals();
  return { fd, ownPgrp };
}

/** Fallback for glibc < 2.35: the parent makes the group foreground, then wakes a child stopped by SIGTTIN/SIGTTOU. */
function handOverTerminal({ libc, fd, pgid, log }: { libc: Libc; fd: number; pgid: number; log: Log }): void {
  try {
    libc.tcsetpgrp(fd, pgid);
  } catch (err) {
    if (!(err instanceof SyscallError) || !['ENOTTY', 'ENXIO', 'EPERM', 'ESRCH'].includes(err.code)) throw err;
    log.warn({ event: 'terminal-handover-failed', code: err.code }, `could not give the terminal to the main process: ${err.code}`);
    return;
  }
  forwardSignal({ pgid, signal: 'SIGCONT', log });
}

/** Makes our group the foreground again once the main process is gone; a hung-up terminal is fine. */
function takeBackTerminal({ libc, fd, pgrp, log }: { libc: Libc; fd: number; pgrp: number; log: Log }): void {
  try {
    libc.tcsetpgrp(fd, pgrp);
  } catch (err) {
    // ESRCH: our own group is not in this PID namespace (a launcher above us led the session).
    if (!(err instanceof SyscallError) || !['ENOTTY', 'ENXIO', 'EIO', 'EPERM', 'ESRCH'].includes(err.code)) throw err;
    log.debug({ event: 'terminal-not-returned', code: err.code }, `terminal not taken back: ${err.code}`);
  }
}

function failedMain({ command, err, log }: { command: string; err: SyscallError; log: Log }): MainProcess {
  const message = describeSpawnError({ command, code: err.code });
  const spawnError = { code: err.code, message };
  const exitCode = exitCodeFor({ code: null, signal: null, spawnError });
  log.error({ event: 'main-spawn-failed', command, code: err.code, exitCode }, message);
  const exited = Promise.resolve<MainExit>({ code: null, signal: null, spawnError, exitCode });
  return { pid: null, exited, signal: () => false };
}

function describeExit(wait: WaitStatus): MainExit {
  return { code: wait.code, signal: wait.signal, spawnError: null, exitCode: exitCodeFor({ code: wait.code, signal: wait.signo }) };
}

function describeSpawnError({ command, code }: { command: string; code: string }): string {
  if (code === 'ENOENT') return `cannot run ${command}: no such file (or not found on PATH)`;
  if (code === 'EACCES') return `cannot run ${command}: permission denied (not executable?)`;
  return `cannot run ${command}: ${code}`;
}

function flattenEnv(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(env)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([name, value]) => `${name}=${value}`);
}
