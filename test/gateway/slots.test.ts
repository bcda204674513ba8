// max_concurrent / max_queue: the limit holds, waiters go in order, a full
// queue is refused, an aborted waiter leaves the queue, no limit costs nothing.
import { describe, expect, it } from 'vitest';
import { RequestSlots, type SlotRelease } from '../../src/gateway/slots.ts';

const neverSignal = new AbortController().signal;
const never = () => neverSignal;

describe('RequestSlots', () => {
  it('lets `limit` through, queues the next in order, and refuses beyond max_queue', async () => {
    const slots = new RequestSlots();
    const first = slots.acquire('a', 2, 2, never) as SlotRelease;
    const second = slots.acquire('a', 2, 2, never) as SlotRelease;
    expect(typeof first).toBe('function');
    const order: string[] = [];
    const third = (slots.acquire('a', 2, 2, never) as Promise<SlotRelease>).then((r) => (order.push('third'), r));
    const fourth = (slots.acquire('a', 2, 2, never) as Promise<SlotRelease>).then((r) => (order.push('fourth'), r));
    expect(slots.waiting('a')).toBe(2);
    expect(await slots.acquire('a', 2, 2, never)).toBe('full');
    first();
    first(); // twice is once
    await third;
    expect(order).toEqual(['third']);
    second();
    await fourth;
    expect(order).toEqual(['third', 'fourth']);
    expect(slots.waiting('a')).toBe(0);
  });

  it('an aborted waiter leaves the queue and takes no slot', async () => {
    const slots = new RequestSlots();
    const held = slots.acquire('a', 1, 5, never) as SlotRelease;
    const controller = new AbortController();
    const waiting = slots.acquire('a', 1, 5, () => controller.signal) as Promise<unknown>;
    controller.abort();
    expect(await waiting).toBe('aborted');
    expect(slots.waiting('a')).toBe(0);
    held();
    expect(typeof slots.acquire('a', 1, 5, never)).toBe('function');
  });

  it('without a limit every request passes at once, and instances do not share slots', () => {
    const slots = new RequestSlots();
    for (let i = 0; i < 1000; i++) expect(typeof slots.acquire('a', null, 0, never)).toBe('function');
    expect(typeof slots.acquire('b', 1, 0, never)).toBe('function');
    expect(typeof slots.acquire('c', 1, 0, never)).toBe('function');
  });

  it('a request that gets a slot at once never asks for an abort signal (the fast path costs none)', () => {
    const slots = new RequestSlots();
    let asked = 0;
    const counted = () => (asked++, neverSignal);
    const release = slots.acquire('a', 2, 2, counted) as SlotRelease;
    (slots.acquire('a', 2, 2, counted) as SlotRelease)();
    expect(asked).toBe(0);
    slots.acquire('a', 1, 2, counted); // now it must wait
    expect(asked).toBe(1);
    release();
  });
});
