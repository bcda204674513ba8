import { describe, expect, it } from 'vitest';
import { decideReadiness, STOPPED_GRACE_MS, type WaitHistory } from '../../src/gateway/readiness.ts';
import type { TargetView } from '../../src/gateway/targets.ts';

const view = (patch: Partial<TargetView> = {}): TargetView => ({
  name: 'a',
  aliases: [],
  host: '127.0.0.1',
  port: 1,
  apiKey: null,
  enabled: true,
  state: 'ready',
  notStartedYet: false,
  restarts: 0,
  load: null,
  onDemand: false,
  maxConcurrent: null,
  maxQueue: 256,
  lastExitCode: null,
  reason: '',
  ...patch,
});
const fresh = (): WaitHistory => ({ sawTransition: false, usedStoppedGrace: false });
const decide = (patch: Partial<TargetView> | undefined, remainingMs = 1000, history = fresh()) =>
  decideReadiness({ name: 'a', target: patch === undefined ? undefined : view(patch), remainingMs, history });

describe('decideReadiness', () => {
  it('ready → forward', () => {
    expect(decide({})).toEqual({ act: 'forward' });
  });

  it('starting, backoff, stopping, not started yet → wait for the remaining time', () => {
    for (const state of ['starting', 'backoff', 'stopping'] as const) expect(decide({ state })).toEqual({ act: 'wait', ms: 1000, grace: false });
    expect(decide({ state: 'stopped', notStartedYet: true })).toEqual({ act: 'wait', ms: 1000, grace: false });
  });

  it('... and once the time is up → 503 with retry-after, never x-should-retry', () => {
    const loading = decide({ state: 'starting' }, 0);
    expect(loading).toEqual({ act: 'refuse', refusal: { status: 503, message: 'instance "a" is loading its model; retry shortly', headers: { 'retry-after': '5' } } });
    expect(decide({ state: 'backoff' }, -5)).toMatchObject({ refusal: { message: 'instance "a" is backoff; retry shortly' } });
    expect(decide({ state: 'stopped', notStartedYet: true }, 0)).toMatchObject({ refusal: { message: 'instance "a" is not started yet; retry shortly' } });
  });

  it('fatal, stopped (by hand), disabled or gone → 503 with x-should-retry: false', () => {
    for (const patch of [{ state: 'fatal' as const }, { state: 'stopped' as const }, { enabled: false }]) {
      expect(decide(patch)).toMatchObject({ act: 'refuse', refusal: { status: 503, headers: { 'x-should-retry': 'false' } } });
    }
    expect(decide(undefined)).toMatchObject({ refusal: { message: 'instance "a" is no longer configured' } });
  });

  it('fatal says why; an on-demand one says a later request loads it again, with retry-after', () => {
    const reason = 'exited with code 1: error: invalid argument: --bogus';
    expect(decide({ state: 'fatal', reason })).toMatchObject({ refusal: { message: `instance "a" is fatal: ${reason}; start it with "supervisor start a"`, headers: { 'x-should-retry': 'false' } } });
    expect(decide({ state: 'fatal', reason, onDemand: true })).toEqual({
      act: 'refuse',
      refusal: { status: 503, message: `instance "a" failed: ${reason}; a request in a few seconds loads it again`, headers: { 'retry-after': '5' } },
    });
    expect(decide({ state: 'stopped', reason: 'stopped by supervisor stop' })).toMatchObject({ refusal: { message: 'instance "a" is stopped; start it with "supervisor start a"' } });
  });

  it('stopped after a transition (a restart passing through) → one short grace, then refused', () => {
    const history = { sawTransition: true, usedStoppedGrace: false };
    expect(decide({ state: 'stopped' }, 60_000, history)).toEqual({ act: 'wait', ms: STOPPED_GRACE_MS, grace: true });
    expect(decide({ state: 'stopped' }, 60_000, { sawTransition: true, usedStoppedGrace: true })).toMatchObject({ act: 'refuse' });
  });
});

describe('a request held for a loading instance', () => {
  it('is told how far the load is when its time runs out', () => {
    const readiness = decideReadiness({ name: 'a', target: view({ state: 'starting', load: { phase: 'tensors', percent: 20 } }), remainingMs: 0, history: { sawTransition: true, usedStoppedGrace: false } });
    expect(readiness).toMatchObject({ act: 'refuse', refusal: { status: 503, message: 'instance "a" is loading its model (tensors, 20%); retry shortly' } });
  });
});
