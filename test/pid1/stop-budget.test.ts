import { describe, expect, it } from 'vitest';
import {
  DEFAULT_STOP_BUDGET_S,
  KILL_RESERVE_MS,
  checkStopTimeoutsFit,
  readStopBudget,
  remainingMs,
  startStopBudget,
  stopAllowanceMs,
} from '../../src/pid1/stop-budget.ts';

describe('stop budget', () => {
  it('defaults to 9 s, one second inside docker stop’s 10 s grace', () => {
    expect(DEFAULT_STOP_BUDGET_S).toBe(9);
    expect(readStopBudget({})).toEqual({ budgetS: 9, warning: null });
    expect(readStopBudget({ SUPERVISOR_STOP_BUDGET_S: '' })).toEqual({ budgetS: 9, warning: null });
  });

  it.each([
    ['4', 4],
    [' 2.5 ', 2.5],
    ['30', 30],
  ])('reads SUPERVISOR_STOP_BUDGET_S=%j as %d s', (raw, budgetS) => {
    expect(readStopBudget({ SUPERVISOR_STOP_BUDGET_S: raw })).toEqual({ budgetS, warning: null });
  });

  it.each(['abc', '-1', '0', '0.5', 'Infinity', '5s'])('falls back to 9 s with a warning naming the variable for %j', (raw) => {
    const { budgetS, warning } = readStopBudget({ SUPERVISOR_STOP_BUDGET_S: raw });
    expect(budgetS).toBe(9);
    expect(warning).toContain(`SUPERVISOR_STOP_BUDGET_S=${JSON.stringify(raw)}`);
  });

  // Budget 9 s from t=1000: grace ends at 1000 + 9000 - 500 = 9500, exit by 10000.
  const budget = startStopBudget({ budgetS: 9, nowMs: 1000 });

  it('starts with a grace deadline one kill reserve before the end', () => {
    expect(budget).toEqual({ budgetMs: 9000, startedAtMs: 1000, graceDeadlineMs: 9500, deadlineMs: 10_000 });
    expect(KILL_RESERVE_MS).toBe(500);
  });

  it.each([
    // [stop_timeout_s, now, allowance ms]
    [5, 1000, 5000], // plenty of budget left: its own timeout
    [10, 1000, 8500], // longer than the budget: cut to what is left
    [5, 6000, 3500], // started late: what is left
    [0, 1000, 0], // no grace at all: SIGKILL at once
    [5, 9500, 0], // at the grace deadline
    [5, 12_000, 0], // past it: never negative
    [0.25, 1000, 250],
  ])('stop_timeout_s %d at t=%d may wait %d ms', (stopTimeoutS, nowMs, expected) => {
    expect(stopAllowanceMs(budget, { stopTimeoutS, nowMs })).toBe(expected);
  });

  it.each([
    [1000, 9000],
    [9999, 1],
    [10_000, 0],
    [20_000, 0],
  ])('at t=%d, %d ms remain before exit', (nowMs, expected) => {
    expect(remainingMs(budget, nowMs)).toBe(expected);
  });

  it.each([
    // [budget, stops, warning?]
    [9, [{ name: 'sshd', stopTimeoutS: 5 }, { name: 'instance.glm', stopTimeoutS: 8.5 }], null],
    [9, [], null],
    [9, [{ name: 'instance.glm', stopTimeoutS: 10 }], /instance\.glm 10 s > 8\.5 s/],
    [9, [{ name: 'sshd', stopTimeoutS: 9 }, { name: 'main process', stopTimeoutS: 2 }], /sshd 9 s > 8\.5 s/],
    [3, [{ name: 'a', stopTimeoutS: 3 }, { name: 'b', stopTimeoutS: 4 }], /a 3 s, b 4 s > 2\.5 s/],
  ] as const)('budget %d s, stops %j: warning %s', (budgetS, stops, expected) => {
    const warning = checkStopTimeoutsFit({ budgetS, stops });
    if (expected === null) expect(warning).toBeNull();
    else {
      expect(warning).toMatch(expected);
      expect(warning).toMatch(/cannot fit the stop budget/);
      expect(warning).toContain(`SUPERVISOR_STOP_BUDGET_S=${budgetS}`);
    }
  });

  it('only names the stops that do not fit', () => {
    const warning = checkStopTimeoutsFit({ budgetS: 9, stops: [{ name: 'fits', stopTimeoutS: 1 }, { name: 'slow', stopTimeoutS: 30 }] });
    expect(warning).toContain('slow 30 s');
    expect(warning).not.toContain('fits');
  });
});
