// PID 1's signals. As PID 1 a signal without a handler does nothing at all, so
// each one we care about gets a listener: SIGTERM and SIGINT stop cleanly (a
// second one during the stop kills everything left and exits), SIGHUP reloads,
// and SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH also reach
// the main process's group (`docker kill -s USR1` meant for the CMD). Ctrl-C on
// a terminal does not pass through here: the kernel sends it to the foreground
// group, which is the main process's.
import { constants } from 'node:os';
import { isatty } from 'node:tty';
import { EXIT_SIGNAL_BASE, signalNumber } from './exit-code.ts';
import { loadLibc } from './libc.ts';
import { silentLog, type Log } from '../logging/log.ts';
import { listDescendants } from '../process/proc.ts';

/** The signals that reach the main process group. */
export const FORWARDED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const;
export type ForwardedSignal = (typeof FORWARDED_SIGNALS)[number];
export type StopSignal = 'SIGTERM' | 'SIGINT';

export interface SignalHandlers {
  /** First SIGTERM/SIGINT: start the clean stop (within the stop budget). */
  onStop(signal: StopSignal): void;
  /** SIGHUP: reload the config (ignored once stopping). */
  onReload(): void;
  /** The main process group to forward to; null when there is no CMD or it is gone. */
  forwardTo(): number | null;
  /** Second SIGTERM/SIGINT during the stop; default: SIGKILL everything left, exit 128 + signal. */
  onEscalate?(signal: StopSignal): void;
  log?: Log;
}

export interface SignalControls {
  readonly stopping: boolean;
  /** Removes the listeners (tests; `boot` keeps them until it exits). */
  dispose(): void;
}

/** Installs the PID-1 signal listeners. */
export function configureSignals({ onStop, onReload, forwardTo, onEscalate, log = silentLog }: SignalHandlers): SignalControls {
  // SIGTTOU/SIGTTIN only stop a process that uses a terminal (a hook may take its foreground).
  // Without one, koffi (about 20 ms to load) stays off the boot's path; spawnMain ignores them anyway.
  if (usesTerminal()) ignoreTerminalStopSignals();
  const escalate = onEscalate ?? ((signal: StopSignal) => killEverythingLeftAndExit({ signal, log }));
  let stopping = false;

  const handle = (signal: ForwardedSignal) => {
    if ((signal === 'SIGTERM' || signal === 'SIGINT') && stopping) {
      log.warn({ event: 'stop-escalated', signal }, `${signal} again while stopping: killing everything left`);
      escalate(signal);
      return;
    }
    const pgid = forwardTo();
    if (pgid !== null) forwardSignal({ pgid, signal, log });
    if (signal === 'SIGTERM' || signal === 'SIGINT') {
      stopping = true;
      log.info({ event: 'stop-requested', signal }, `${signal}: stopping`);
      onStop(signal);
    } else if (signal === 'SIGHUP') {
      if (stopping) log.info({ event: 'reload-ignored' }, 'SIGHUP while stopping: no reload');
      else onReload();
    }
  };

  const listeners = FORWARDED_SIGNALS.map((signal) => {
    const listener = () => handle(signal);
    process.on(signal, listener);
    return [signal, listener] as const;
  });
  return {
    get stopping() {
      return stopping;
    },
    dispose() {
      for (const [signal, listener] of listeners) process.off(signal, listener);
    },
  };
}

/** Sends a signal to a process group; ESRCH (the group is gone) is a warning, not an error. */
export function forwardSignal({ pgid, signal, log = silentLog }: { pgid: number; signal: NodeJS.Signals | number; log?: Log }): boolean {
  // kill(-1) would hit every process we may signal, and -0 our own group.
  if (!Number.isInteger(pgid) || pgid < 2) throw new RangeError(`forwardSignal: pgid must be an integer >= 2, received ${pgid}`);
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    log.warn({ event: 'forward-gone', pgid, signal }, `main process group ${pgid} was gone when forwarding ${signal}`);
    return false;
  }
}

/** Is stdin, stdout or stderr a terminal? */
function usesTerminal(): boolean {
  return [0, 1, 2].some((fd) => isatty(fd));
}

/** SIG_IGN for SIGTTOU and SIGTTIN, as tini does: taking the terminal back from the background must not stop us. */
export function ignoreTerminalStopSignals(): void {
  const libc = loadLibc();
  // A process.on() listener would not do: tcsetpgrp would raise SIGTTOU, run the listener and retry forever.
  libc.ignoreSignal(constants.signals.SIGTTOU);
  libc.ignoreSignal(constants.signals.SIGTTIN);
}

/** SIGKILLs every process left: the whole namespace when PID 1, else all our descendants. Returns how many. */
export function killEverythingLeft({ log = silentLog, procRoot = '/proc' }: { log?: Log; procRoot?: string } = {}): number {
  // kill(-1) reaches every process but us, so only inside our own PID namespace.
  const targets = process.pid === 1 ? [-1] : listDescendants({ procRoot, pid: process.pid });
  let killed = 0;
  for (const target of targets) {
    try {
      process.kill(target, 'SIGKILL');
      killed += 1;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  log.warn({ event: 'killed-everything-left', killed }, `SIGKILL sent to ${process.pid === 1 ? 'every process' : `${killed} descendant(s)`}`);
  return killed;
}

function killEverythingLeftAndExit({ signal, log }: { signal: StopSignal; log: Log }): void {
  killEverythingLeft({ log });
  process.exit(EXIT_SIGNAL_BASE + signalNumber(signal));
}
