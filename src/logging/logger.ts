// The supervisor's own log: pino JSON lines on stdout, so `docker logs` is
// useful, and pretty lines when stdout is a terminal.
import pino, { type Logger } from 'pino';

/** Creates the daemon logger; `SUPERVISOR_LOG_LEVEL` sets the level (default info). */
export async function createLogger({ env = process.env, pretty = process.stdout.isTTY === true } = {}): Promise<Logger> {
  const level = env.SUPERVISOR_LOG_LEVEL ?? 'info';
  // No base fields: `pid` in an event is always the instance's child, never ours.
  const options = { level, base: null, timestamp: pino.stdTimeFunctions.isoTime };
  if (pretty) {
    // Loaded on a TTY only: keeps the JSON path free of pino-pretty's start-up cost.
    const { default: pinoPretty } = await import('pino-pretty');
    return pino(options, pinoPretty({ colorize: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' }));
  }
  // Synchronous writes: a line is out before the next signal handler runs, and before exit.
  return pino(options, pino.destination({ dest: 1, sync: true }));
}
