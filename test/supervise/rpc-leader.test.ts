// A leader llama-server with RPC workers, on the fake clock: its start waits
// (bounded, naming each worker that does not accept TCP), and it restarts
// once a lost worker is back, whether the loss was told by the supervisor (a
// local worker left ready) or seen by its own probe.
import { describe, expect, it } from 'vitest';
import { Instance } from '../../src/supervise/instance.ts';
import { FakeWorld, OK, makePlan, recordTransitions, selfTransitions, type PlanOverrides } from '../support/fake-instance-deps.ts';

const W1 = 50_060;
const W2 = 50_061;
const TCP_OK = { status: 200, body: 'tcp connect ok' };

function setup(overrides: PlanOverrides = {}) {
  const world = new FakeWorld();
  const plan = makePlan({ rpcWorkers: [`127.0.0.1:${W1}`, `127.0.0.1:${W2}`], policy: { healthIntervalS: 1 }, ...overrides });
  const inst = new Instance(plan, world.deps);
  const rec = recordTransitions(inst, world.clock);
  return { world, inst, rec, plan };
}

describe('a leader with RPC workers', () => {
  it('waits until every worker accepts TCP, naming the missing ones as that changes, then starts', async () => {
    const { world, inst, rec } = setup();
    world.prober.answer(W1, { error: 'ECONNREFUSED' });
    world.prober.answer(W2, { error: 'ETIMEDOUT' });
    void inst.start();
    await world.advance(0);
    expect(inst.status()).toMatchObject({ state: 'waiting', pid: null, state_reason: `waiting for RPC workers to accept TCP: 127.0.0.1:${W1} (ECONNREFUSED), 127.0.0.1:${W2} (ETIMEDOUT)` });
    world.prober.answer(W1, TCP_OK);
    await world.advance(250);
    expect(inst.status()).toMatchObject({ state: 'waiting', state_reason: `waiting for RPC workers to accept TCP: 127.0.0.1:${W2} (ETIMEDOUT)` });
    expect(world.spawner.live).toEqual([]);
    world.prober.answer(W2, TCP_OK);
    await world.advance(250);
    expect(inst.state).toBe('starting');
    const probes = world.prober.calls.filter((c) => c.port === W1 || c.port === W2);
    expect(probes.every((c) => c.path === null)).toBe(true);
    expect(rec.list).toEqual(['stopped->waiting', 'waiting->starting']);
    expect(selfTransitions(rec.events)).toEqual([]);
  });

  it('gives up after startup_stall_s, naming the workers (fatal, as any failed check before a spawn); a worker ready again starts it', async () => {
    const { world, inst } = setup({ policy: { healthIntervalS: 1, startupStallS: 2 } });
    world.prober.answer(W2, TCP_OK);
    void inst.start();
    await world.advance(0);
    for (let i = 0; i < 12; i++) await world.advance(200);
    expect(inst.status()).toMatchObject({ state: 'fatal', state_reason: `RPC workers not accepting TCP after 2 s (startup_stall_s): 127.0.0.1:${W1} (ECONNREFUSED)` });
    expect(world.spawner.live).toEqual([]);
    world.prober.answer(W1, TCP_OK);
    inst.rpcWorkerReady();
    await world.advance(0);
    expect(inst.state).toBe('starting');
  });

  async function ready() {
    const s = setup();
    world(s).prober.answer(W1, TCP_OK);
    s.world.prober.answer(W2, TCP_OK);
    void s.inst.start();
    await s.world.advance(0);
    const child = s.world.spawner.last(s.inst.name);
    child.health = OK;
    await s.world.advance(200);
    expect(s.inst.state).toBe('ready');
    return { ...s, child };
  }
  const world = (s: { world: FakeWorld }) => s.world;

  it('a worker the supervisor saw leave ready restarts the leader once it is ready again, even between probes', async () => {
    const s = await ready();
    s.inst.noteRpcWorkerLost(`127.0.0.1:${W1}`, 'w1 backoff: killed by SIGKILL');
    expect(s.world.log.entries.some((e) => e.obj.event === 'rpc-worker-lost')).toBe(true);
    s.inst.rpcWorkerReady();
    await s.world.advance(0);
    expect(s.rec.events.find((e) => e.to === 'restarting')?.reason).toBe(`RPC worker 127.0.0.1:${W1} is back after it was lost: the leader reloads onto it`);
    expect(s.inst.state).toBe('starting');
    expect(s.world.spawner.last(s.inst.name).pid).not.toBe(s.child.pid);
  });

  it("a worker its probe finds down is lost; when it accepts again, the leader restarts (once)", async () => {
    const s = await ready();
    s.world.prober.answer(W2, { error: 'ECONNREFUSED' });
    await s.world.advance(1000);
    expect(s.inst.state).toBe('ready');
    s.world.prober.answer(W2, TCP_OK);
    await s.world.advance(1000);
    expect(s.world.spawner.last(s.inst.name).pid).not.toBe(s.child.pid);
    expect(s.rec.events.map((e) => e.reason)).toContain(`RPC worker 127.0.0.1:${W2} is back after it was lost: the leader reloads onto it`);
    expect(s.world.log.entries.filter((e) => e.obj.event === 'rpc-worker-lost')).toHaveLength(1);
  });

  it('a worker whose connect times out is busy serving its client (rpc-server accepts one at a time), not lost', async () => {
    const s = await ready();
    s.world.prober.answer(W1, { error: 'ETIMEDOUT (no answer within 1000 ms)' });
    await s.world.advance(5000);
    expect(s.inst.state).toBe('ready');
    expect(s.world.log.entries.filter((e) => e.obj.event === 'rpc-worker-lost')).toEqual([]);
  });

  it('a ready rpc-worker whose connect times out stays ready; one that refuses fails its liveness', async () => {
    const world = new FakeWorld();
    const plan = makePlan({ engine: 'rpc-worker', probe: 'tcp', model: null, policy: { healthIntervalS: 1 } });
    const inst = new Instance(plan, world.deps);
    await inst.start();
    world.spawner.last(inst.name).health = TCP_OK;
    await world.advance(200);
    expect(inst.state).toBe('ready');
    world.prober.answer(plan.port, { error: 'ETIMEDOUT (no answer within 1000 ms)' });
    await world.advance(6000);
    expect(inst.state).toBe('ready');
    world.prober.answer(plan.port, { error: 'ECONNREFUSED' });
    await world.advance(4000);
    expect(inst.state).not.toBe('ready');
  });

  it('a worker it does not list is no concern of it', async () => {
    const s = await ready();
    s.inst.noteRpcWorkerLost('127.0.0.1:1', 'other');
    s.inst.rpcWorkerReady();
    await s.world.advance(1000);
    expect(s.inst.state).toBe('ready');
  });
});
