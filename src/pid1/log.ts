// The logger the PID-1 duties write to: the daemon's pino logger fits it, and
// tests and fixtures pass a small one of their own.

/** The pino methods PID 1 uses: a fields object, then the message. */
export interface Pid1Log {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

const ignore = (): void => {};

/** Drops everything (the default when no logger is given). */
export const silentLog: Pid1Log = { debug: ignore, info: ignore, warn: ignore, error: ignore };
