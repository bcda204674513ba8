// The stop budget: `docker stop` sends SIGTERM and SIGKILLs PID 1 ten seconds
// later (its default grace), so everything we stop (main process, instances,
// sshd, in parallel) must be done before then. Each stop gets its own
// stop_timeout_s but never more than what is left of the budget, minus a short
// reserve in which we SIGKILL what remains, reap it and exit. Pure: the clock
// is an argument.

/** SUPERVISOR_STOP_BUDGET_S when unset: one second inside docker's default 10 s grace. */
export const DEFAULT_STOP_BUDGET_S = 9;
const STOP_BUDGET_ENV = 'SUPERVISOR_STOP_BUDGET_S';
/** Kept at the end of the budget to SIGKILL whatever is left, reap it and exit. */
export const KILL_RESERVE_MS = 500;

/** A stop that began at startedAtMs (monotonic ms, e.g. performance.now()). */
export interface StopBudget {
  budgetMs: number;
  startedAtMs: number;
  /** Graceful stops end here; then SIGKILL. */
  graceDeadlineMs: number;
  /** Everything is gone and we exit by here. */
  deadlineMs: number;
}

/** The budget from the environment; a bad value falls back to the default with a warning naming it. */
export function readStopBudget(env: NodeJS.ProcessEnv = process.env): { budgetS: number; warning: string | null } {
  const raw = env[STOP_BUDGET_ENV];
  if (raw === undefined || raw.trim() === '') return { budgetS: DEFAULT_STOP_BUDGET_S, warning: null };
  const value = Number(raw.trim());
  // Shorter than the kill reserve would leave no time at all to stop gracefully.
  if (!Number.isFinite(value) || value * 1000 <= KILL_RESERVE_MS) {
    return {
      budgetS: DEFAULT_STOP_BUDGET_S,
      warning: `${STOP_BUDGET_ENV}=${JSON.stringify(raw)} is not a number of seconds above ${KILL_RESERVE_MS / 1000}: using ${DEFAULT_STOP_BUDGET_S}`,
    };
  }
  return { budgetS: value, warning: null };
}

/** Starts the clock of a stop. */
export function startStopBudget({ budgetS, nowMs }: { budgetS: number; nowMs: number }): StopBudget {
  const budgetMs = Math.round(budgetS * 1000);
  return {
    budgetMs,
    startedAtMs: nowMs,
    graceDeadlineMs: nowMs + Math.max(0, budgetMs - KILL_RESERVE_MS),
    deadlineMs: nowMs + budgetMs,
  };
}

/** How long one stop may still wait before SIGKILL: min(its stop_timeout_s, what is left before the grace deadline). */
export function stopAllowanceMs(budget: StopBudget, { stopTimeoutS, nowMs }: { stopTimeoutS: number; nowMs: number }): number {
  const left = budget.graceDeadlineMs - nowMs;
  return Math.max(0, Math.min(Math.round(stopTimeoutS * 1000), left));
}

/** Time left before we must have exited. */
export function remainingMs(budget: StopBudget, nowMs: number): number {
  return Math.max(0, budget.deadlineMs - nowMs);
}

/** One thing that is stopped, with its configured timeout. */
export interface StopTimeout {
  /** What it is, as the user knows it: `instance.glm`, `sshd`, `main process`. */
  name: string;
  stopTimeoutS: number;
}

/** The start-up check: a warning when some stop timeout cannot fit the budget (stops run in parallel), else null. */
export function checkStopTimeoutsFit({ budgetS, stops }: { budgetS: number; stops: readonly StopTimeout[] }): string | null {
  const graceMs = Math.max(0, Math.round(budgetS * 1000) - KILL_RESERVE_MS);
  const tooLong = stops.filter((s) => Math.round(s.stopTimeoutS * 1000) > graceMs);
  if (tooLong.length === 0) return null;
  const list = tooLong.map((s) => `${s.name} ${s.stopTimeoutS} s`).join(', ');
  return (
    `configured stop timeouts cannot fit the stop budget: ${list} > ${graceMs / 1000} s ` +
    `(${STOP_BUDGET_ENV}=${budgetS} minus ${KILL_RESERVE_MS / 1000} s to kill what is left); ` +
    `they will be SIGKILLed after ${graceMs / 1000} s. Lower stop_timeout_s, or raise ${STOP_BUDGET_ENV} together with docker's --stop-timeout.`
  );
}
