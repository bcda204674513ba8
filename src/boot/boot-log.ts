// The one logging function every boot step writes through, so steps stay
// independent of pino and tests can collect lines in an array.
import type { Logger } from 'pino';

/** The levels boot uses (pino's names). */
export type BootLogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Where boot steps log: a level, a line for people, and structured fields for the JSON log. */
export type BootLog = (level: BootLogLevel, message: string, fields?: Record<string, unknown>) => void;

/** Adapts the daemon's pino logger to BootLog. */
export function makeBootLog(logger: Logger): BootLog {
  return (level, message, fields = {}) => logger[level](fields, message);
}

/** A BootLog that drops everything (for callers that do not care). */
export const silentBootLog: BootLog = () => {};
