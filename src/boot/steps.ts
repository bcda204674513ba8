// The record of boot steps that `supervisor status` shows above the instances:
// one row per link, hook, sshd preparation, bundle and serve, with its result
// and how long it took. Rows are plain JSON (snake_case, like InstanceStatus).
import type { EnvValue } from './env-flags.ts';

/** A step's result; `running` until it finishes. */
export type StepState = 'ok' | 'warning' | 'failed' | 'skipped' | 'running';

/** A finished step's state. */
export type FinalStepState = Exclude<StepState, 'running'>;

/** One row of the boot record. */
export interface BootStep {
  name: string;
  state: StepState;
  /** ISO time the step began. */
  started_at: string;
  /** null while running. */
  duration_ms: number | null;
  message: string;
}

/** What a step reports when it is done; the recorder adds the times. */
export interface StepOutcome {
  name: string;
  state: FinalStepState;
  message: string;
  /** When the step began and how long it took, if measured by the step itself. */
  startedAt?: number;
  durationMs?: number;
}

/** Collects boot steps in order; `begin` shows a step as running until its finish function is called. */
export class BootRecorder {
  readonly #now: () => number;
  readonly #rows: BootStep[] = [];
  readonly #listeners: Array<(rows: BootStep[]) => void> = [];

  constructor({ now = Date.now }: { now?: () => number } = {}) {
    this.#now = now;
  }

  /** Starts a step; call the returned function once with its result. */
  begin(name: string, message = ''): (state: FinalStepState, message: string) => BootStep {
    const startedAt = this.#now();
    const row: BootStep = { name, state: 'running', started_at: new Date(startedAt).toISOString(), duration_ms: null, message };
    this.#rows.push(row);
    this.#changed();
    return (state, finalMessage) => {
      if (row.state !== 'running') throw new Error(`boot step "${name}" finished twice`);
      row.state = state;
      row.message = finalMessage;
      row.duration_ms = Math.max(0, this.#now() - startedAt);
      this.#changed();
      return { ...row };
    };
  }

  /** Records a step that already ran (hooks and links measure themselves). */
  add({ name, state, message, startedAt, durationMs }: StepOutcome): BootStep {
    const at = startedAt ?? this.#now();
    const row: BootStep = { name, state, started_at: new Date(at).toISOString(), duration_ms: durationMs ?? 0, message };
    this.#rows.push(row);
    this.#changed();
    return { ...row };
  }

  /** A copy of every row, in the order the steps began. */
  rows(): BootStep[] {
    return this.#rows.map((row) => ({ ...row }));
  }

  /** The rows whose state is `failed`. */
  failures(): BootStep[] {
    return this.rows().filter((row) => row.state === 'failed');
  }

  /** Calls `listener` with all rows after every change (e.g. to write a status file). */
  onChange(listener: (rows: BootStep[]) => void): void {
    this.#listeners.push(listener);
  }

  #changed(): void {
    if (this.#listeners.length === 0) return;
    const rows = this.rows();
    for (const listener of this.#listeners) listener(rows);
  }
}

/** 1234 → `1.2s`; null (still running) → `-`. */
export function formatStepDuration(ms: number | null): string {
  if (ms === null) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}

const HEADERS = ['BOOT STEP', 'RESULT', 'TOOK', 'DETAIL'];
const MAX_DETAIL = 100;

/** The boot section of `supervisor status`: aligned columns and a blank line, or nothing when there are no rows. */
export function formatBootSteps(rows: readonly BootStep[]): string {
  if (rows.length === 0) return '';
  const cells = rows.map((row) => {
    const detail = row.message.replace(/\s*\n\s*/g, ' | ');
    return [row.name, row.state, formatStepDuration(row.duration_ms), detail.length > MAX_DETAIL ? `${detail.slice(0, MAX_DETAIL - 3)}...` : detail];
  });
  const widths = HEADERS.map((h, col) => Math.max(h.length, ...cells.map((row) => row[col].length)));
  const line = (row: string[]) => row.map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col]))).join('  ').trimEnd();
  return `${[line(HEADERS), ...cells.map(line)].join('\n')}\n\n`;
}

/** Reads SUPERVISOR_ON_BOOT_ERROR: `exit` ends the container on a failed step; unset, empty or `continue` go on. */
export function readOnBootError(env: NodeJS.ProcessEnv): EnvValue<'exit' | 'continue'> {
  const raw = env.SUPERVISOR_ON_BOOT_ERROR;
  const word = raw?.trim().toLowerCase() ?? '';
  if (word === 'exit') return { value: 'exit' };
  if (word === '' || word === 'continue') return { value: 'continue' };
  return { value: 'continue', warning: `SUPERVISOR_ON_BOOT_ERROR=${JSON.stringify(raw)} is not understood (exit or continue); boot goes on after a failed step` };
}

/** True when SUPERVISOR_ON_BOOT_ERROR=exit: a failed boot step must end the container. */
export function shouldExitOnFailure(env: NodeJS.ProcessEnv): boolean {
  return readOnBootError(env).value === 'exit';
}
