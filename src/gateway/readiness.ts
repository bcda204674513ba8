// Whether a request may go to its instance now, must wait, or is refused,
// from the instance's state alone: the whole hold-while-loading rulebook in
// one pure function.
import type { TargetView } from './targets.ts';

/** Seconds a client is told to wait before retrying an instance that is still loading. */
export const RETRY_AFTER_S = 5;
/** A reload that changes an instance stops it, then starts it, passing through `stopped`: a request that saw it stopping waits this long before calling it stopped. */
export const STOPPED_GRACE_MS = 1000;

/** A reply the gateway makes itself. */
export interface Refusal {
  status: 400 | 401 | 404 | 405 | 413 | 429 | 500 | 502 | 503;
  message: string;
  headers?: Record<string, string>;
}

export type Readiness =
  | { act: 'forward' }
  | { act: 'refuse'; refusal: Refusal }
  /** `grace`: waiting out a `stopped` seen after a transition (a restart in passing). */
  | { act: 'wait'; ms: number; grace: boolean };

/** What this request has seen of the instance so far. */
export interface WaitHistory {
  /** It saw the instance starting, stopping or in backoff. */
  sawTransition: boolean;
  /** It already waited once for a `stopped` instance to move on. */
  usedStoppedGrace: boolean;
}

const NO_RETRY = { 'x-should-retry': 'false' };
const RETRY_LATER = { 'retry-after': String(RETRY_AFTER_S) };

/** The rule: ready → forward; fatal, disabled, gone or stopped for good → 503 no-retry; on the way → wait while time remains, then 503 retry-after. */
export function decideReadiness({ name, target, remainingMs, history }: { name: string; target: TargetView | undefined; remainingMs: number; history: WaitHistory }): Readiness {
  if (target === undefined) return { act: 'refuse', refusal: { status: 503, message: `instance "${name}" is no longer configured`, headers: NO_RETRY } };
  if (!target.enabled) return { act: 'refuse', refusal: { status: 503, message: `instance "${name}" is disabled`, headers: NO_RETRY } };
  const { state } = target;
  if (state === 'ready') return { act: 'forward' };
  const stoppedForGood = state === 'stopped' && !target.notStartedYet && (!history.sawTransition || history.usedStoppedGrace);
  // Fatal says why. On demand, a later request loads it again (the cause may be gone): worth a retry then.
  if (state === 'fatal' && target.onDemand) {
    return { act: 'refuse', refusal: { status: 503, message: `instance "${name}" failed${because(target)}; a request in a few seconds loads it again`, headers: RETRY_LATER } };
  }
  if (state === 'fatal' || stoppedForGood) {
    const why = state === 'fatal' ? because(target) : '';
    return { act: 'refuse', refusal: { status: 503, message: `instance "${name}" is ${state}${why}; start it with "supervisor start ${name}"`, headers: NO_RETRY } };
  }
  if (state === 'stopped' && !target.notStartedYet) return { act: 'wait', ms: Math.min(STOPPED_GRACE_MS, Math.max(remainingMs, 0)), grace: true };
  // starting, backoff, stopping, or not started yet: hold the request while the time allows.
  if (remainingMs <= 0) {
    const progress = target.load ? ` (${target.load.phase}, ${target.load.percent}%)` : '';
    const what = state === 'starting' ? `loading its model${progress}` : state === 'stopped' ? 'not started yet' : state;
    return { act: 'refuse', refusal: { status: 503, message: `instance "${name}" is ${what}; retry shortly`, headers: RETRY_LATER } };
  }
  return { act: 'wait', ms: remainingMs, grace: false };
}

const because = (target: TargetView): string => (target.reason === '' ? '' : `: ${target.reason}`);
