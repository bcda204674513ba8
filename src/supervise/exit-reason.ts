// Why did the child exit? A configuration failure (unknown flag, a model that
// does not load, a port in use) would fail the same way again, so it is fatal
// at once with the offending log line as the reason; anything else is a crash
// that the restart policy handles.
import { constants } from 'node:os';
import type { ExitStatus } from './spawn-instance.ts';

/** Log lines that mean "this will fail again the same way". Checked newest first. */
const CONFIG_FAILURES: readonly RegExp[] = [
  /\b(invalid|unknown|unrecognized) (argument|option)\b/i,
  /\berror while handling argument\b/i,
  /\bfailed to load model\b/i,
  /\berror loading model\b/i,
  /\bfailed to open (gguf|model)/i,
  /\bgguf_init_from_file\w*: failed\b/i,
  /\bmodel file not found\b/i,
  /\bno such file or directory\b/i,
  /\baddress already in use\b/i,
  /\bcouldn'?t bind\b/i,
];

/** How many of the last lines are searched for a configuration failure. */
const SEARCH_LINES = 60;

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

/** Classifies an exit from its status and the tail of the log. */
export function classifyExit(status: ExitStatus, tail: readonly string[]): ExitVerdict {
  const lines = tail.slice(-SEARCH_LINES).filter((line) => !line.startsWith('[supervisor]'));
  if (status.code !== 0 && status.signal === null) {
    for (let i = lines.length - 1; i >= 0; i--) {
      if (CONFIG_FAILURES.some((re) => re.test(lines[i]))) {
        return { configFailure: true, reason: `${describeExit(status)}: ${lines[i].trim()}` };
      }
    }
  }
  const last = [...lines].reverse().find((line) => line.trim() !== '');
  return { configFailure: false, reason: last ? `${describeExit(status)}; last output: ${last.trim().slice(0, 200)}` : describeExit(status) };
}
