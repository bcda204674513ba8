// Why did the child exit? A configuration failure (unknown flag, a model that
// does not load, a port in use) would fail the same way again, so it is fatal
// at once with the offending log line as the reason; anything else is a crash
// that the restart policy handles.
import { constants } from 'node:os';
import type { ExitStatus } from '../process/spawn-group.ts';

/**
 * Log lines that mean "this will fail again the same way", as llama-server
 * prints them (measured on llama.cpp 80fb11a, the source node-llama-cpp@3.21.1 ships).
 */
const CONFIG_FAILURES: readonly RegExp[] = [
  // `error: invalid argument: --no-such-flag` (the only line printed)
  /\b(invalid|unknown|unrecognized) (argument|option)\b/i,
  /\berror while handling argument\b/i,
  // `gguf_init_from_file: failed to open GGUF file '/x.gguf' (No such file or directory)`
  /\bgguf_init_from_\w+: (failed|invalid)\b/i,
  /\bfailed to open gguf\b/i,
  /\bmodel is corrupted\b/i,
  /\berror loading model\b/i,
  /\bfailed to load model\b/i,
  /\bexiting due to model loading error\b/i,
  // `start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8080`
  /\bcouldn'?t bind\b/i,
  /\baddress already in use\b/i,
  /\bexiting due to HTTP server error\b/i,
];

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
export function classifyExit(status: ExitStatus, tail: readonly string[]): ExitVerdict {
  let start = tail.length;
  while (start > 0 && !tail[start - 1].startsWith('[supervisor]')) start--;
  const lines = tail.slice(start).slice(-SEARCH_LINES);
  if (status.code !== 0 && status.signal === null) {
    // The first matching line is the cause; later ones are its consequences.
    const cause = lines.find((line) => CONFIG_FAILURES.some((re) => re.test(line)));
    if (cause !== undefined) return { configFailure: true, reason: `${describeExit(status)}: ${cause.trim()}` };
  }
  const last = [...lines].reverse().find((line) => line.trim() !== '');
  return { configFailure: false, reason: last ? `${describeExit(status)}; last output: ${last.trim().slice(0, 200)}` : describeExit(status) };
}
