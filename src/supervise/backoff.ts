// When may a crashed instance be restarted, and after how long: pure arithmetic
// over the policy's backoff and restart-budget keys, so it can be table-tested.

/** Restart delay: initialMs doubled per attempt (attempt 0 → initialMs), capped at maxMs. */
export function nextBackoffMs({ attempt, initialMs, maxMs }: { attempt: number; initialMs: number; maxMs: number }): number {
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw new RangeError(`backoff attempt must be an integer >= 0, received ${attempt}`);
  }
  if (!(initialMs >= 0) || !(maxMs >= 0)) {
    throw new RangeError(`backoff delays must be >= 0, received initialMs=${initialMs} maxMs=${maxMs}`);
  }
  // 2 ** attempt overflows to Infinity for huge attempts; Math.min still caps it.
  return Math.min(initialMs * 2 ** attempt, maxMs);
}

export interface RestartBudgetCheck {
  /** true when one more restart stays within maxRestarts per window. */
  allowed: boolean;
  /** The restart timestamps still inside the window (the input, pruned); keep these. */
  recent: number[];
}

/**
 * Decides whether one more restart fits the budget: more than maxRestarts restarts
 * within the last windowS seconds make the instance fatal. A restart exactly
 * windowS old has left the window.
 */
export function checkRestartBudget({
  restartsAt,
  now,
  maxRestarts,
  windowS,
}: {
  restartsAt: readonly number[];
  now: number;
  maxRestarts: number;
  windowS: number;
}): RestartBudgetCheck {
  const windowStart = now - windowS * 1000;
  const recent = restartsAt.filter((t) => t > windowStart);
  return { allowed: recent.length < maxRestarts, recent };
}
