// Time as a dependency: the engine asks a Clock for the time and for timers, so
// tests can drive backoff, stall and stop deadlines with a fake one instead of waiting.

declare const timerBrand: unique symbol;

/** An opaque timer, only good for handing back to the same clock's clearTimeout. */
export type TimerHandle = { readonly [timerBrand]: true };

export interface Clock {
  /** Milliseconds, comparable only with other readings of the same clock. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** The clock production code runs on: Date.now and Node's timers. */
export const realClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms) as unknown as TimerHandle,
  clearTimeout: (handle: TimerHandle) => clearTimeout(handle as unknown as NodeJS.Timeout),
});
