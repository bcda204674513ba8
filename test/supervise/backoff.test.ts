import { describe, expect, it } from 'vitest';
import { checkRestartBudget, nextBackoffMs } from '../../src/supervise/backoff.ts';

describe('nextBackoffMs', () => {
  it.each([
    // attempt, initialMs, maxMs, expected
    [0, 1000, 60_000, 1000],
    [1, 1000, 60_000, 2000],
    [2, 1000, 60_000, 4000],
    [3, 1000, 60_000, 8000],
    [4, 1000, 60_000, 16_000],
    [5, 1000, 60_000, 32_000],
    [6, 1000, 60_000, 60_000],
    [7, 1000, 60_000, 60_000],
    [100, 1000, 60_000, 60_000],
    [2000, 1000, 60_000, 60_000],
    [0, 500, 500, 500],
    [3, 500, 500, 500],
    [0, 2000, 1000, 1000],
    [0, 0, 1000, 0],
    [10, 0, 1000, 0],
    [0, 1, 1, 1],
    [1, 1, 3, 2],
    [2, 1, 3, 3],
  ])('attempt %i, initial %i, max %i → %i', (attempt, initialMs, maxMs, expected) => {
    expect(nextBackoffMs({ attempt, initialMs, maxMs })).toBe(expected);
  });

  it.each([[-1], [1.5], [Number.NaN]])('rejects attempt %s', (attempt) => {
    expect(() => nextBackoffMs({ attempt, initialMs: 1000, maxMs: 60_000 })).toThrow(/attempt/);
  });

  it('rejects negative delays', () => {
    expect(() => nextBackoffMs({ attempt: 0, initialMs: -1, maxMs: 10 })).toThrow(/initialMs=-1/);
    expect(() => nextBackoffMs({ attempt: 0, initialMs: 1, maxMs: -10 })).toThrow(/maxMs=-10/);
  });
});

describe('checkRestartBudget', () => {
  const now = 1_000_000;
  const s = (seconds: number) => now - seconds * 1000;

  it.each([
    // name, restartsAt, maxRestarts, windowS, allowed, recent
    ['no restarts yet', [], 10, 300, true, []],
    ['one below the limit', [s(10), s(20)], 3, 300, true, [s(10), s(20)]],
    ['at the limit: one more would exceed it', [s(10), s(20), s(30)], 3, 300, false, [s(10), s(20), s(30)]],
    ['old restarts are pruned and free the budget', [s(400), s(350), s(10)], 2, 300, true, [s(10)]],
    ['a restart exactly windowS old has left the window', [s(300), s(10)], 2, 300, true, [s(10)]],
    ['a restart just inside the window still counts', [s(299.999), s(10)], 2, 300, false, [s(299.999), s(10)]],
    ['maxRestarts 0 never allows a restart', [], 0, 300, false, []],
    ['maxRestarts 1 allows exactly one', [], 1, 300, true, []],
    ['maxRestarts 1, one recent', [s(1)], 1, 300, false, [s(1)]],
    ['a restart at now counts', [now], 1, 300, false, [now]],
    ['windowS 0 keeps nothing', [now, s(1)], 1, 0, true, []],
    ['all pruned', [s(1000), s(900), s(301)], 1, 300, true, []],
  ] as const)('%s', (_name, restartsAt, maxRestarts, windowS, allowed, recent) => {
    const result = checkRestartBudget({ restartsAt, now, maxRestarts, windowS });
    expect(result).toEqual({ allowed, recent });
  });

  it('does not modify its input', () => {
    const restartsAt = [s(400), s(10)];
    checkRestartBudget({ restartsAt, now, maxRestarts: 5, windowS: 300 });
    expect(restartsAt).toEqual([s(400), s(10)]);
  });

  it('walks a crash loop: 10 restarts allowed in 300 s, the 11th is fatal', () => {
    let restartsAt: number[] = [];
    const verdicts: boolean[] = [];
    for (let i = 0; i < 11; i++) {
      const t = now + i * 1000;
      const { allowed, recent } = checkRestartBudget({ restartsAt, now: t, maxRestarts: 10, windowS: 300 });
      verdicts.push(allowed);
      restartsAt = allowed ? [...recent, t] : recent;
    }
    expect(verdicts).toEqual([...Array(10).fill(true), false]);
    // Once the first restart leaves the window, there is room again.
    expect(checkRestartBudget({ restartsAt, now: now + 300_000, maxRestarts: 10, windowS: 300 }).allowed).toBe(true);
  });
});
