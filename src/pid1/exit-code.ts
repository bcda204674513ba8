// The container's exit code, tini's rule: the main process's own code; 128 +
// the signal number when a signal killed it; 127 or 126 when it never ran
// because exec failed (the shell's "not found" / "cannot execute").
import { constants } from 'node:os';

/** How the main process ended, as the reaper or child_process reports it. */
export interface ExitFacts {
  /** Exit code when it exited by itself, else null. */
  code: number | null;
  /** The signal that killed it (name or number), else null. */
  signal: NodeJS.Signals | number | null;
  /** Set when it never ran: the exec failed with this errno name (ENOENT, EACCES, ...). */
  spawnError?: { code: string } | null;
}

/** Exec failed: the program does not exist (sh, bash, docker and tini all say 127). */
const EXIT_NOT_FOUND = 127;
/** Exec failed otherwise: found but not runnable (EACCES, ENOEXEC, EISDIR...; sh and docker say 126). */
const EXIT_CANNOT_EXECUTE = 126;
/** 128 + signal number for a process killed by a signal. */
export const EXIT_SIGNAL_BASE = 128;

/** The exit code `boot` passes on for the main process. */
export function exitCodeFor({ code, signal, spawnError }: ExitFacts): number {
  if (spawnError) return spawnError.code === 'ENOENT' ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE;
  if (signal !== null) return (EXIT_SIGNAL_BASE + signalNumber(signal)) % 256;
  if (code === null) throw new RangeError('exitCodeFor: neither an exit code nor a signal was given');
  // Exit codes are 8 bits; a caller passing -1 or 256 gets what the kernel would report.
  return ((code % 256) + 256) % 256;
}

/** The number of a signal given by name or number. */
export function signalNumber(signal: NodeJS.Signals | number): number {
  if (typeof signal === 'number') return signal;
  const n = constants.signals[signal];
  if (n === undefined) throw new RangeError(`unknown signal ${signal}`);
  return n;
}

/** The name of a signal number (SIGTERM), or `SIG<n>` for ones Node has no name for (real-time signals). */
export function signalName(signo: number): string {
  return SIGNAL_NAMES.get(signo) ?? `SIG${signo}`;
}

const SIGNAL_NAMES = new Map<number, string>(
  // Aliases share a number (SIGIOT = SIGABRT, SIGPOLL = SIGIO): the first name listed wins.
  Object.entries(constants.signals)
    .reverse()
    .map(([name, n]) => [n, name]),
);
