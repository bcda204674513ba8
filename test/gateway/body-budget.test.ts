import { describe, expect, it } from 'vitest';
import { BodyBudget } from '../../src/gateway/body-budget.ts';

describe('BodyBudget', () => {
  it('reserves at once while there is room; a body that does not fit waits first come, first served', async () => {
    const idle: number[] = [];
    const budget = new BodyBudget(100, { onIdle: (bytes) => idle.push(bytes) });
    const a = budget.tryReserve(60)!;
    expect(budget.tryReserve(50)).toBeNull();
    const order: string[] = [];
    const big = budget.reserve(50, 5000).then((r) => (order.push('big'), r));
    // Fits now, but waits behind the earlier one.
    expect(budget.tryReserve(10)).toBeNull();
    const small = budget.reserve(10, 5000).then((r) => (order.push('small'), r));
    expect(budget.waiting).toBe(2);
    a.release();
    const [b, s] = await Promise.all([big, small]);
    expect(order).toEqual(['big', 'small']);
    expect(budget.used).toBe(60);
    b!.shrink(20);
    expect(budget.used).toBe(30);
    b!.release();
    b!.release();
    s!.release();
    expect(budget.used).toBe(0);
    // Emptied once (the waiters took a's room at once): the bytes released meanwhile, as held at release.
    expect(idle).toEqual([60 + 20 + 10]);
  });

  it('gives up at the deadline or when the client goes away; those behind move up', async () => {
    const budget = new BodyBudget(100);
    const held = budget.tryReserve(100)!;
    expect(await budget.reserve(1, 20)).toBeNull();
    const controller = new AbortController();
    const gone = budget.reserve(80, 5000, controller.signal);
    const next = budget.reserve(10, 5000);
    controller.abort();
    expect(await gone).toBeNull();
    held.release();
    expect((await next)?.bytes).toBe(10);
    expect(budget.waiting).toBe(0);
  });

  it('a body larger than the whole budget goes alone rather than never; a new capacity applies to waiters', async () => {
    const budget = new BodyBudget(100);
    const huge = budget.tryReserve(150)!;
    expect(huge.bytes).toBe(150);
    const waiting = budget.reserve(100, 5000);
    huge.release();
    const r = (await waiting)!;
    const more = budget.reserve(100, 5000);
    budget.setCapacity(200);
    expect((await more)?.bytes).toBe(100);
    r.release();
  });
});
