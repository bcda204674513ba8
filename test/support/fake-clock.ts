// A Clock whose time moves only when a test says so: advance(ms) runs the timers
// that fall due, in due-time order, including timers those timers schedule.

import type { Clock, TimerHandle } from '../../src/supervise/clock.ts';

interface FakeTimer {
  id: number;
  due: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers = new Map<number, FakeTimer>();

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    // Like Node: negative or NaN delays run on the next turn, not in the past.
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    this.#timers.set(id, { id, due: this.#now + delay, fn });
    return { id } as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete((handle as unknown as { id: number }).id);
  }

  /** How many timers are waiting. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by ms, running each timer due by then at its own due time. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (let timer = this.#takeDue(target); timer; timer = this.#takeDue(target)) {
      this.#now = timer.due;
      timer.fn();
    }
    this.#now = target;
  }

  /** Like advance, but lets promise callbacks settle after each timer (for async handlers). */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (let timer = this.#takeDue(target); timer; timer = this.#takeDue(target)) {
      this.#now = timer.due;
      timer.fn();
      await settle();
    }
    this.#now = target;
  }

  #takeDue(target: number): FakeTimer | undefined {
    let first: FakeTimer | undefined;
    for (const timer of this.#timers.values()) {
      // Map keeps insertion order, so on equal due times the earlier-scheduled timer wins.
      if (timer.due <= target && (!first || timer.due < first.due)) first = timer;
    }
    if (first) this.#timers.delete(first.id);
    return first;
  }
}

function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
