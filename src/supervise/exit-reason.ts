// Why did the child exit? A configuration failure (unknown flag, a model that
// does not load, a port in use, too little GPU memory) would fail the same way
// again, so it is fatal at once with the offending log line as the reason;
// anything else is a crash that the restart policy handles. Which lines mean
// that is each engine's own knowledge (src/engines/).
import { constants } from 'node:os';
import type { ExitStatus } from '../process/spawn-group.ts';

/** Lines of the exited run that are searched (its first error is usually the cause). */
const SEARCH_LINES = 200;

export interface ExitVerdict {
  configFailure: boolean;
  reason: string;
}

/** `exited with code 1`, `killed by SIGKILL (128+9)`. */
export function describeExit({ code, signal }: ExitStatus): string {
  if (signal) {
    const number = constants.signals[signal as keyof typeof constants.signals];
    return `killed by ${signal}${number ? ` (${128 + number})` : ''}`;
  }
  return `exited with code ${code}`;
}

/**
 * Classifies an exit from its status and the tail of the log. Only the lines after the
 * last `[supervisor]` record (the "started pid" line of the child that exited) are its
 * output; anything before belongs to an earlier run in the same file.
 */
export function classifyExit(status: ExitStatus, tail: readonly string[], configFailures: readonly RegExp[]): ExitVerdict {
  let start = tail.length;
  while (start > 0 && !tail[start - 1].startsWith('[supervisor]')) start--;
  const lines = tail.slice(start).slice(-SEARCH_LINES);
  if (status.code !== 0 && status.signal === null) {
    // The first matching line is the cause; later ones are its consequences.
    const cause = lines.find((line) => configFailures.some((re) => re.test(line)));
    if (cause !== undefined) return { configFailure: true, reason: `${describeExit(status)}: ${cause.trim()}` };
  }
  const last = [...lines].reverse().find((line) => line.trim() !== '');
  return { configFailure: false, reason: last ? `${describeExit(status)}; last output: ${last.trim().slice(0, 200)}` : describeExit(status) };
}
