import { describe, expect, it } from 'vitest';
import { realClock } from '../../src/supervise/clock.ts';
import { FakeClock } from '../support/fake-clock.ts';

describe('realClock', () => {
  it('tells the time and fires and cancels timers', async () => {
    const before = Date.now();
    expect(realClock.now()).toBeGreaterThanOrEqual(before);
    const fired = await new Promise<string>((resolve) => {
      const cancelled = realClock.setTimeout(() => resolve('cancelled one fired'), 5);
      realClock.clearTimeout(cancelled);
      realClock.setTimeout(() => resolve('fired'), 20);
    });
    expect(fired).toBe('fired');
  });
});

describe('FakeClock', () => {
  it('starts where told and moves only on advance', () => {
    const clock = new FakeClock(1000);
    expect(clock.now()).toBe(1000);
    clock.advance(250);
    expect(clock.now()).toBe(1250);
  });

  it('runs due timers in due order, each at its own time', () => {
    const clock = new FakeClock();
    const seen: Array<[string, number]> = [];
    clock.setTimeout(() => seen.push(['c', clock.now()]), 30);
    clock.setTimeout(() => seen.push(['a', clock.now()]), 10);
    clock.setTimeout(() => seen.push(['b', clock.now()]), 20);
    clock.advance(25);
    expect(seen).toEqual([
      ['a', 10],
      ['b', 20],
    ]);
    expect(clock.pending).toBe(1);
    clock.advance(5);
    expect(seen.at(-1)).toEqual(['c', 30]);
    expect(clock.pending).toBe(0);
  });

  it('runs equal due times in scheduling order', () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) clock.setTimeout(() => seen.push(i), 10);
    clock.advance(10);
    expect(seen).toEqual([0, 1, 2, 3, 4]);
  });

  it('runs timers scheduled by timers when they fall within the advance', () => {
    const clock = new FakeClock();
    const seen: Array<[string, number]> = [];
    clock.setTimeout(() => {
      seen.push(['outer', clock.now()]);
      clock.setTimeout(() => seen.push(['inner', clock.now()]), 10);
      clock.setTimeout(() => seen.push(['late', clock.now()]), 100);
      clock.setTimeout(() => seen.push(['zero', clock.now()]), 0);
    }, 5);
    clock.advance(20);
    expect(seen).toEqual([
      ['outer', 5],
      ['zero', 5],
      ['inner', 15],
    ]);
    expect(clock.now()).toBe(20);
    expect(clock.pending).toBe(1);
  });

  it('does not run cleared timers, also when cleared by an earlier timer', () => {
    const clock = new FakeClock();
    const seen: string[] = [];
    const victim = clock.setTimeout(() => seen.push('victim'), 20);
    clock.setTimeout(() => clock.clearTimeout(victim), 10);
    const cancelled = clock.setTimeout(() => seen.push('cancelled'), 5);
    clock.clearTimeout(cancelled);
    clock.advance(100);
    expect(seen).toEqual([]);
  });

  it('treats a negative delay as zero', () => {
    const clock = new FakeClock(50);
    let at = -1;
    clock.setTimeout(() => (at = clock.now()), -10);
    clock.advance(0);
    expect(at).toBe(50);
  });

  it('advanceAsync lets promise callbacks between timers schedule more timers', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    clock.setTimeout(() => {
      void Promise.resolve().then(() => clock.setTimeout(() => seen.push(clock.now()), 5));
    }, 10);
    await clock.advanceAsync(20);
    expect(seen).toEqual([15]);
  });
});
