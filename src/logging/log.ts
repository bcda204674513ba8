// The one logger interface every part of the daemon writes to. It is pino's
// calling convention (fields, then the message), so the daemon's pino logger is
// one as it is; tests pass small ones that collect entries. No imports: the
// boot path can use it without loading pino.

/** Where a part of the daemon logs: a fields object for the JSON line, then the line for people. */
export interface Log {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  /** Whether a level is on (pino's), so a hot path can skip building a debug line. */
  isLevelEnabled?(level: string): boolean;
}

const ignore = (): void => {};

/** Drops everything (the default when no logger is given). */
export const silentLog: Log = { debug: ignore, info: ignore, warn: ignore, error: ignore };
