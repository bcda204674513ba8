// Every error a user can see is a SupervisorError: a message meant for people,
// an exit code from EXIT below, and the original error kept as `cause`.
// The CLI prints `message` only; stack traces stay in the debug log.

/** CLI exit codes, the same for every command (documented in README.md). */
export const EXIT = Object.freeze({
  /** Success. */
  OK: 0,
  /** The operation failed (an instance did not start, a request was refused). */
  FAILED: 1,
  /** Bad usage or an invalid config file: nothing was changed. */
  USAGE: 2,
  /** No daemon answers on the control socket. */
  NOT_RUNNING: 3,
} as const);

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const brand = Symbol.for('infer-dev.SupervisorError');

/** Base of every user-facing error. */
export class SupervisorError extends Error {
  readonly exitCode: ExitCode;
  readonly [brand] = true;

  constructor(message: string, { exitCode = EXIT.FAILED, cause }: { exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.exitCode = exitCode;
  }
}
Object.defineProperty(SupervisorError.prototype, 'name', { value: 'SupervisorError', enumerable: false });

/** True for errors made here, also across module copies. */
export function isSupervisorError(value: unknown): value is SupervisorError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}

/** Where in which file a config problem is. */
export interface ConfigLocation {
  file: string | null;
  line?: number;
  column?: number;
}

/** One problem in a config document: where, which key, what was expected. */
export interface ConfigIssue extends ConfigLocation {
  severity: 'error' | 'warning';
  /** Dotted key path, e.g. `instance.glm.server.port`; empty for the whole file. */
  path: string;
  message: string;
}

/** Formats one config issue as `file:line:col: error: path: message`. */
export function formatConfigIssue(issue: ConfigIssue): string {
  let where = issue.file ?? '<config>';
  if (issue.line !== undefined) where += `:${issue.line}`;
  if (issue.line !== undefined && issue.column !== undefined) where += `:${issue.column}`;
  const key = issue.path ? `${issue.path}: ` : '';
  return `${where}: ${issue.severity}: ${key}${issue.message}`;
}

/** A config file with at least one error; carries every issue found, not just the first. */
export class ConfigError extends SupervisorError {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    const errors = issues.filter((i) => i.severity === 'error');
    super(errors.map(formatConfigIssue).join('\n'), { exitCode: EXIT.USAGE });
    this.issues = issues;
  }
}
Object.defineProperty(ConfigError.prototype, 'name', { value: 'ConfigError', enumerable: false });

/** Bad command-line usage. */
export class UsageError extends SupervisorError {
  constructor(message: string) {
    super(message, { exitCode: EXIT.USAGE });
  }
}
Object.defineProperty(UsageError.prototype, 'name', { value: 'UsageError', enumerable: false });

/** The control socket has no daemon behind it. */
export class NotRunningError extends SupervisorError {
  constructor(socketPath: string, cause?: unknown) {
    super(`supervisor daemon is not running (no answer on ${socketPath})`, { exitCode: EXIT.NOT_RUNNING, cause });
  }
}
Object.defineProperty(NotRunningError.prototype, 'name', { value: 'NotRunningError', enumerable: false });

/** A program could not be started at all (missing, not executable, unknown user): a config problem, not a crash. */
export class SpawnError extends SupervisorError {
  /** The errno of the failed spawn (`ENOENT`, `EACCES`...), when there was one. */
  readonly errno: string | undefined;

  constructor(message: string, { errno, cause }: { errno?: string; cause?: unknown } = {}) {
    super(message, { exitCode: EXIT.FAILED, cause });
    this.errno = errno;
  }
}
Object.defineProperty(SpawnError.prototype, 'name', { value: 'SpawnError', enumerable: false });

/**
 * An offline vLLM/SGLang bundle that was not installed; nothing was changed. Exit 1 (as upstream's installers)
 * for a failed step, a sha mismatch or a missing tool; 2 for a bundle or project layout that cannot be used.
 */
export class EngineBundleError extends SupervisorError {
  constructor(message: string, { exitCode = EXIT.FAILED, cause }: { exitCode?: ExitCode; cause?: unknown } = {}) {
    super(message, { exitCode, cause });
  }
}
Object.defineProperty(EngineBundleError.prototype, 'name', { value: 'EngineBundleError', enumerable: false });
