import { describe, expect, it } from 'vitest';
import { InFlightTracker } from '../../src/gateway/in-flight.ts';

describe('InFlightTracker', () => {
  it('counts in-flight and total requests per instance; end() is idempotent', () => {
    const t = new InFlightTracker();
    const a1 = t.begin('a');
    const a2 = t.begin('a');
    t.begin('b');
    expect(t.stats('a')).toEqual({ inflight: 2, requests: 2, held: 0 });
    a1();
    a1();
    expect(t.stats('a')).toEqual({ inflight: 1, requests: 2, held: 0 });
    a2();
    expect(t.stats('a')).toEqual({ inflight: 0, requests: 2, held: 0 });
    expect(t.stats('b')).toEqual({ inflight: 1, requests: 1, held: 0 });
    expect(t.stats('never')).toEqual({ inflight: 0, requests: 0, held: 0 });
  });

  it('drain closes the gate, waits for in-flight requests, and release opens it for the held ones', async () => {
    const t = new InFlightTracker();
    const end = t.begin('a');
    let drained = false;
    const draining = t.drain('a', 5_000).then((h) => {
      drained = true;
      return h;
    });
    expect(t.isOpen('a')).toBe(false);
    expect(t.isOpen('b')).toBe(true);
    let admitted = false;
    const held = t.whenOpen('a').then((ok) => (admitted = ok));
    expect(t.stats('a').held).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(drained).toBe(false);
    end();
    const handle = await draining;
    expect(handle).toMatchObject({ drained: true, inflight: 0 });
    await new Promise((r) => setTimeout(r, 5));
    expect(admitted).toBe(false);
    handle.release();
    expect(t.stats('a').held).toBe(0);
    await held;
    expect(admitted).toBe(true);
    expect(t.isOpen('a')).toBe(true);
    handle.release(); // idempotent: does not reopen twice or go negative
    expect(t.isOpen('a')).toBe(true);
  });

  it('a drain with nothing in flight resolves at once', async () => {
    const t = new InFlightTracker();
    const handle = await t.drain('a', 10_000);
    expect(handle).toMatchObject({ drained: true, inflight: 0 });
    handle.release();
  });

  it('the deadline passes: drained false, still in flight', async () => {
    const t = new InFlightTracker();
    t.begin('a');
    const handle = await t.drain('a', 30);
    expect(handle).toMatchObject({ drained: false, inflight: 1 });
    handle.release();
    expect(t.isOpen('a')).toBe(true);
  });

  it('overlapping drains: the gate opens when the last one is released', async () => {
    const t = new InFlightTracker();
    const h1 = await t.drain('a', 10);
    const h2 = await t.drain('a', 10);
    h1.release();
    expect(t.isOpen('a')).toBe(false);
    h2.release();
    expect(t.isOpen('a')).toBe(true);
  });

  it('a held request whose client goes away stops waiting', async () => {
    const t = new InFlightTracker();
    const h = await t.drain('a', 10);
    const controller = new AbortController();
    const waiting = t.whenOpen('a', controller.signal);
    controller.abort();
    expect(await waiting).toBe(false);
    h.release();
  });
});
