// The load/unload controller on a fake clock: idle unload timing, the swap hold of an exclusive group,
// retrying a failed on-demand instance, one load per instance however many ask. (Real processes: test/e2e/on-demand.)
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIFECYCLE, type InstancePlan, type LifecyclePolicy } from '../../src/config/instance-plan.ts';
import { FAILED_RETRY_MS, LifecycleController, SWAP_HOLD_MS } from '../../src/lifecycle/controller.ts';
import { silentLog } from '../../src/logging/log.ts';
import type { Instance, InstanceState } from '../../src/supervise/instance.ts';
import { FakeClock } from '../support/fake-clock.ts';

interface Fake {
  name: string;
  state: InstanceState;
  plan: InstancePlan;
  calls: string[];
}

function rig(specs: Array<{ name: string; state?: InstanceState; lifecycle?: Partial<LifecyclePolicy>; engine?: string }>, { budgetMiB }: { budgetMiB?: number } = {}) {
  const clock = new FakeClock(1_000_000);
  const fakes = new Map<string, Fake>();
  for (const spec of specs) {
    const lifecycle = { ...DEFAULT_LIFECYCLE, onDemand: true, memoryMib: 100, ...spec.lifecycle };
    fakes.set(spec.name, { name: spec.name, state: spec.state ?? 'idle', plan: { name: spec.name, engine: spec.engine ?? 'llama-server', model: null, args: [], lifecycle } as unknown as InstancePlan, calls: [] });
  }
  const asInstance = (f: Fake): Instance =>
    ({
      name: f.name,
      get state() {
        return f.state;
      },
      plan: f.plan,
      hostBuffersMiB: null,
      status: () => ({ gpu: null }),
      start: async (why: string) => {
        f.calls.push(`start: ${why}`);
        f.state = 'starting';
      },
      unload: async (why: string) => {
        f.calls.push(`unload: ${why}`);
        f.state = 'idle';
      },
    }) as unknown as Instance;
  const instances = new Map([...fakes].map(([name, f]) => [name, asInstance(f)]));
  const waiting = new Map<string, number>();
  const controller = new LifecycleController({
    instances: () => [...instances.values()],
    instance: (name) => instances.get(name),
    withDrain: (_names, fn) => fn(),
    waiting: (name) => waiting.get(name) ?? 0,
    devicesOf: async () => ['host'],
    budgets: async () => new Map(budgetMiB === undefined ? [] : [['host', budgetMiB]]),
    clock,
    log: silentLog,
  });
  const reach = (name: string, state: InstanceState) => {
    fakes.get(name)!.state = state;
    controller.noteState(instances.get(name)!, state);
  };
  return { clock, controller, reach, waiting, instance: (name: string) => instances.get(name)!, calls: (name: string) => fakes.get(name)!.calls };
}

// Lets the controller's promise chains run (the fake clock does not move).
const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe('idle_unload_s', () => {
  it('unloads after N seconds with no request; a request in flight or arriving postpones it', async () => {
    const r = rig([{ name: 'a', state: 'ready', lifecycle: { idleUnloadS: 10 } }]);
    r.reach('a', 'ready');
    expect(r.controller.status(r.instance('a')).unload_at).toBe(new Date(1_010_000).toISOString());

    r.clock.advance(9_000);
    r.controller.begin('a');
    r.clock.advance(60_000); // a long request: never unloaded under it
    expect(r.calls('a')).toEqual([]);
    r.controller.end('a');
    r.clock.advance(9_999);
    expect(r.calls('a')).toEqual([]);
    r.clock.advance(1);
    await settle();
    expect(r.calls('a')).toEqual(['unload: idle for 10 s (idle_unload_s)']);
  });

  it('a request held at the gateway (waiting for a slot) also keeps it loaded', async () => {
    const r = rig([{ name: 'a', state: 'ready', lifecycle: { idleUnloadS: 5 } }]);
    r.reach('a', 'ready');
    r.waiting.set('a', 1);
    r.clock.advance(5_000);
    await settle();
    expect(r.calls('a')).toEqual([]);
  });

  it('0 (the default) never unloads', async () => {
    const r = rig([{ name: 'a', state: 'ready' }]);
    r.reach('a', 'ready');
    r.controller.begin('a');
    r.controller.end('a');
    expect(r.clock.pending).toBe(0);
  });
});

describe('exclusive group swap', () => {
  const pair = () =>
    rig([
      { name: 'a', state: 'ready', lifecycle: { exclusiveGroup: 'g' } },
      { name: 'b', lifecycle: { exclusiveGroup: 'g' } },
    ]);

  it('waits while the loaded member serves, at most SWAP_HOLD_MS, then unloads it and loads the other', async () => {
    const r = pair();
    r.controller.begin('a'); // a request that will not finish
    const load = r.controller.load('b', 'a request');
    await settle();
    r.clock.advance(SWAP_HOLD_MS - 50);
    await settle();
    expect(r.calls('a')).toEqual([]);
    expect(r.calls('b')).toEqual([]);
    r.clock.advance(50);
    await settle();
    expect(await load).toEqual({ ok: true });
    expect(r.calls('a')).toEqual(['unload: unloaded for b: exclusive group "g"']);
    expect(r.calls('b')).toEqual(['start: a request']);
  });

  it('swaps as soon as the loaded member goes quiet, without waiting for a poll', async () => {
    const r = pair();
    r.controller.begin('a');
    const load = r.controller.load('b', 'a request');
    await settle();
    r.controller.end('a');
    await settle();
    expect(await load).toEqual({ ok: true });
    expect(r.calls('b')).toEqual(['start: a request']);
  });

  it('many requests for an idle instance make one load', async () => {
    const r = pair();
    const loads = Array.from({ length: 5 }, () => r.controller.load('b', 'a request'));
    await settle();
    expect(await Promise.all(loads)).toEqual(Array(5).fill({ ok: true }));
    expect(r.calls('b')).toEqual(['start: a request']);
    expect(r.calls('a')).toHaveLength(1);
  });
});

describe('room for a load', () => {
  it('an RPC worker is never unloaded to make room (its leader would go down with it); an idle on-demand one is', async () => {
    const r = rig(
      [
        { name: 'w', state: 'ready', engine: 'rpc-worker', lifecycle: { onDemand: false } },
        { name: 'other', state: 'ready' },
        { name: 'b' },
      ],
      { budgetMiB: 250 },
    );
    const load = r.controller.load('b', 'a request');
    await settle();
    expect(await load).toEqual({ ok: true });
    expect(r.calls('w')).toEqual([]);
    expect(r.calls('other')).toEqual([expect.stringMatching(/^unload: /)]);
  });
});

describe('a failed on-demand instance', () => {
  it('answers with its failure at once, and is loaded again by a request FAILED_RETRY_MS later', () => {
    const r = rig([{ name: 'a', state: 'starting' }]);
    r.reach('a', 'fatal');
    expect(r.controller.wantsLoad('a')).toBe(false);
    r.clock.advance(FAILED_RETRY_MS - 1);
    expect(r.controller.wantsLoad('a')).toBe(false);
    r.clock.advance(1);
    expect(r.controller.wantsLoad('a')).toBe(true);
  });

  it('an always-on instance that failed is not loaded by requests (its restart policy decides)', () => {
    const r = rig([{ name: 'a', state: 'starting', lifecycle: { onDemand: false } }]);
    r.reach('a', 'fatal');
    r.clock.advance(FAILED_RETRY_MS * 10);
    expect(r.controller.wantsLoad('a')).toBe(false);
  });
});
