// The per-instance state machine, driven through fakes on a fake clock: every
// test asserts the exact sequence of transitions, and that none is from === to.
import { describe, expect, it } from 'vitest';
import { Instance, type InstanceStatus } from '../../src/supervise/instance.ts';
import {
  FakeWorld,
  LOADING,
  OK,
  makePlan,
  recordTransitions,
  selfTransitions,
  type FakeChild,
  type PlanOverrides,
  type TransitionRecord,
} from '../support/fake-instance-deps.ts';

const STATUS_KEYS = ['context', 'engine', 'fit', 'gpu', 'gpu_ids', 'last_exit', 'load', 'log_file', 'name', 'next_restart_at', 'pid', 'port', 'restarts', 'state', 'state_reason', 'state_since', 'uptime_s'];

interface Setup {
  world: FakeWorld;
  inst: Instance;
  rec: TransitionRecord;
  plan: Instance['plan'];
  t0: number;
}

function setup(overrides: PlanOverrides = {}): Setup {
  const world = new FakeWorld();
  const plan = makePlan(overrides);
  const inst = new Instance(plan, world.deps);
  const rec = recordTransitions(inst, world.clock);
  return { world, inst, rec, plan, t0: world.clock.now() };
}

// Starts the instance and lets its first readiness probe answer 200.
async function startReady({ world, inst }: Setup): Promise<FakeChild> {
  await inst.start();
  const child = world.spawner.last(inst.name);
  child.health = OK;
  await world.advance(200);
  expect(inst.state).toBe('ready');
  return child;
}

// Lets the child die and the exit event run.
async function crash(world: FakeWorld, child: FakeChild, code: number | null, signal: NodeJS.Signals | null = null): Promise<void> {
  child.exit(code, signal);
  await world.flush();
}

// The invariants every test ends with: each event moves the state, the event log
// holds exactly the emitted events, and no handler failed.
function expectConsistent({ world, inst, rec }: Setup): void {
  expect(selfTransitions(rec.events)).toEqual([]);
  expect(world.log.transitions(inst.name)).toEqual(rec.list);
  expect(world.log.errors).toEqual([]);
  for (const event of rec.events) expect(Object.keys(event).sort()).toEqual(['from', 'instance', 'pid', 'reason', 'to']);
}

function delayOf(s: Setup): number {
  const next = s.inst.status().next_restart_at;
  expect(next).not.toBeNull();
  return Date.parse(next as string) - s.world.clock.now();
}

describe('start and readiness', () => {
  it('goes stopped → starting (with the pid) → ready when the probe answers 200', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    await inst.start();
    const child = world.spawner.last('llm');
    expect(rec.list).toEqual(['stopped->starting']);
    expect(rec.events[0].pid).toBe(child.pid);
    expect(inst.status()).toMatchObject({ state: 'starting', pid: child.pid });
    // The model file is checked, the port looked up, and the start is recorded in the instance log.
    expect(world.fileChecks).toEqual([plan.model]);
    expect(world.ports.lookups).toEqual([plan.port]);
    expect(world.logOf(plan).records).toEqual([`[supervisor] started pid ${child.pid}: ${plan.executable} ${plan.args.join(' ')}`]);

    child.health = OK;
    await world.advance(200);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready']);
    expect(rec.events[1]).toMatchObject({ pid: child.pid, reason: 'health check /health answered 200' });
    expect(world.prober.calls[0]).toMatchObject({ host: '127.0.0.1', port: plan.port, path: '/health', timeoutMs: 2000 });
    expectConsistent(s);
  });

  it('probes every 200 ms while starting and sees readiness within 250 ms of the answer turning 200', async () => {
    const s = setup();
    const { world, inst, rec, plan, t0 } = s;
    await inst.start();
    const child = world.spawner.last('llm');
    await world.advance(1050);
    expect(world.prober.timesFor(plan.port)).toEqual([200, 400, 600, 800, 1000].map((d) => t0 + d));
    expect(inst.state).toBe('starting');
    child.health = OK;
    const answerAt = world.clock.now();
    await world.advance(250);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready']);
    expect(rec.times[1] - answerAt).toBeLessThanOrEqual(250);
    // Once ready, the probe slows to health_interval_s.
    await world.advance(30_000);
    const after = world.prober.timesFor(plan.port).filter((t) => t > rec.times[1]);
    expect(after).toEqual([10_000, 20_000, 30_000].map((d) => rec.times[1] + d));
    expectConsistent(s);
  });

  it('treats start() while starting or ready as a no-op (one child, no events)', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    await inst.start();
    await inst.start();
    expect(world.spawner.children).toHaveLength(1);
    world.spawner.last('llm').health = OK;
    await world.advance(200);
    await inst.start();
    expect(world.spawner.children).toHaveLength(1);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready']);
    expectConsistent(s);
  });

  it('copies child output into the instance log and pauses the pipes while the log is full', async () => {
    const s = setup();
    const { world, inst, plan } = s;
    await inst.start();
    const child = world.spawner.last('llm');
    const log = world.logOf(plan);
    child.print('main: loading model');
    await world.flush();
    expect(log.text).toContain('main: loading model\n');
    expect(log.lastWriteAt).toBe(world.clock.now());

    log.full = true;
    child.print('first line while full');
    await world.flush();
    child.stdout.write('held back\n');
    await world.flush();
    expect(log.text).toContain('first line while full');
    expect(log.text).not.toContain('held back');
    log.drain();
    await world.flush();
    expect(log.text).toContain('held back');
    expectConsistent(s);
  });
});

describe('crash and backoff', () => {
  it.each([
    { code: 1, signal: null, described: 'exited with code 1' },
    { code: null, signal: 'SIGKILL' as const, described: 'killed by SIGKILL (137)' },
  ])('a crash while ready ($described) backs off for backoff_initial_ms, then spawns again', async ({ code, signal, described }) => {
    const s = setup();
    const { world, inst, rec } = s;
    const first = await startReady(s);
    world.clock.advance(5_000);
    await crash(world, first, code, signal);
    const crashedAt = world.clock.now();
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->backoff']);
    expect(inst.status()).toMatchObject({
      state: 'backoff',
      pid: null,
      restarts: 0,
      next_restart_at: new Date(crashedAt + 1000).toISOString(),
      last_exit: { code, signal },
    });
    expect(inst.status().last_exit?.reason).toContain(described);
    expect(world.sweeps).toEqual([{ instance: 'llm', at: crashedAt }]);

    await world.advance(999);
    expect(world.spawner.children).toHaveLength(1);
    expect(inst.state).toBe('backoff');
    await world.advance(1);
    expect(world.spawner.children).toHaveLength(2);
    const second = world.spawner.last('llm');
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->backoff', 'backoff->starting']);
    expect(rec.events[3].pid).toBe(second.pid);
    expect(rec.times[3]).toBe(crashedAt + 1000);
    expect(inst.status()).toMatchObject({ state: 'starting', pid: second.pid, restarts: 1, next_restart_at: null });
    expectConsistent(s);
  });

  it('doubles the delay per consecutive crash, up to backoff_max_ms', async () => {
    const s = setup({ policy: { backoffInitialMs: 1000, backoffMaxMs: 8000, maxRestarts: 100 } });
    const { world, inst } = s;
    await inst.start();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      await crash(world, world.spawner.last('llm'), 1);
      const delay = delayOf(s);
      delays.push(delay);
      await world.advance(delay);
      expect(inst.state).toBe('starting');
    }
    expect(delays).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
    expect(inst.status().restarts).toBe(6);
    expectConsistent(s);
  });

  it('starts again from backoff_initial_ms once the instance was ready for 60 s', async () => {
    const s = setup({ policy: { maxRestarts: 100 } });
    const { world, inst } = s;
    await inst.start();
    for (const expected of [1000, 2000]) {
      await crash(world, world.spawner.last('llm'), 1);
      expect(delayOf(s)).toBe(expected);
      await world.advance(expected);
    }
    // Ready for 59.999 s is not long enough: the delay keeps doubling.
    world.spawner.last('llm').health = OK;
    await world.advance(200);
    expect(inst.state).toBe('ready');
    await world.advance(59_999);
    await crash(world, world.spawner.last('llm'), 1);
    expect(delayOf(s)).toBe(4000);
    await world.advance(4000);
    // Ready for 60 s resets it.
    world.spawner.last('llm').health = OK;
    await world.advance(200);
    await world.advance(60_000);
    await crash(world, world.spawner.last('llm'), 1);
    expect(delayOf(s)).toBe(1000);
    expectConsistent(s);
  });
});

describe('restart budget', () => {
  it('gives up (fatal) on more than max_restarts within restart_window_s, and start() resets the budget', async () => {
    const s = setup({ policy: { maxRestarts: 3, restartWindowS: 300 } });
    const { world, inst, rec } = s;
    await inst.start();
    for (let i = 0; i < 3; i++) {
      await crash(world, world.spawner.last('llm'), 1);
      await world.advance(delayOf(s));
    }
    expect(inst.status().restarts).toBe(3);
    await crash(world, world.spawner.last('llm'), 1);
    expect(inst.state).toBe('fatal');
    expect(inst.status().last_exit).toMatchObject({ code: 1, signal: null });
    expect(inst.status().last_exit?.reason).toMatch(/^gave up after 3 restarts within 300 s; last: exited with code 1/);
    expect(rec.list).toEqual([
      'stopped->starting',
      'starting->backoff',
      'backoff->starting',
      'starting->backoff',
      'backoff->starting',
      'starting->backoff',
      'backoff->starting',
      'starting->fatal',
    ]);
    await world.advance(3_600_000);
    expect(world.spawner.children).toHaveLength(4);

    // A manual start clears the budget and the backoff: three more restarts are allowed, from 1 s.
    await inst.start('start command');
    expect(rec.list.at(-1)).toBe('fatal->starting');
    for (let i = 0; i < 3; i++) {
      await crash(world, world.spawner.last('llm'), 1);
      expect(inst.state).toBe('backoff');
      if (i === 0) expect(delayOf(s)).toBe(1000);
      await world.advance(delayOf(s));
    }
    await crash(world, world.spawner.last('llm'), 1);
    expect(inst.state).toBe('fatal');
    expectConsistent(s);
  });

  it('forgets restarts that left the window', async () => {
    const s = setup({ policy: { maxRestarts: 2, restartWindowS: 10, backoffInitialMs: 100, backoffMaxMs: 100 } });
    const { world, inst } = s;
    await inst.start();
    for (let i = 0; i < 6; i++) {
      await crash(world, world.spawner.last('llm'), 1);
      expect(inst.state).toBe('backoff');
      await world.advance(100);
      await world.advance(6_000);
    }
    expect(inst.status().restarts).toBe(6);
    expectConsistent(s);
  });
});

describe('configuration failures in the log tail', () => {
  it.each([
    'error: invalid argument: --no-such-flag',
    "llama_model_load_from_file_impl: failed to load model '/models/llm.gguf'",
    "llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' data is not within the file bounds",
    'gguf_init_from_file_impl: failed to read magic',
    'common_init_from_params: failed to load model',
    'start: couldn\'t bind HTTP server socket, hostname: 127.0.0.1, port: 8080',
    'bind: Address already in use',
  ])('%s → fatal at once with that line, never respawned', async (line) => {
    const s = setup({ policy: { restart: 'always' } });
    const { world, inst, rec } = s;
    await inst.start();
    const child = world.spawner.last('llm');
    child.print('build: 4521 (abcdef0) with cc for x86_64-linux-gnu');
    child.print(line);
    child.print('main: exiting due to error');
    await world.flush();
    await crash(world, child, 1);
    expect(rec.list).toEqual(['stopped->starting', 'starting->fatal']);
    expect(inst.status().last_exit).toMatchObject({ code: 1, signal: null });
    expect(inst.status().last_exit?.reason).toContain(line.trim());
    await world.advance(24 * 3_600_000);
    expect(world.spawner.children).toHaveLength(1);
    expect(inst.state).toBe('fatal');
    expectConsistent(s);
  });

  it('does not treat a crash with ordinary output as a configuration failure', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    await inst.start();
    const child = world.spawner.last('llm');
    child.print('CUDA error: an illegal memory access was encountered');
    await world.flush();
    await crash(world, child, 1);
    expect(rec.list).toEqual(['stopped->starting', 'starting->backoff']);
    expect(inst.status().last_exit?.reason).toBe(
      'exited with code 1; last output: CUDA error: an illegal memory access was encountered',
    );
    expectConsistent(s);
  });

  it('blames only the output of the child that exited, not an earlier run in the same log', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    await inst.start();
    world.spawner.last('llm').print('error: invalid argument: --no-such-flag');
    await world.flush();
    await crash(world, world.spawner.last('llm'), 1);
    expect(inst.state).toBe('fatal');

    // The flag is fixed; the next run crashes for an unrelated reason and must be restarted.
    inst.setPlan({ ...plan, args: plan.args.filter((a) => a !== '--no-such-flag') });
    await inst.start('fixed');
    const child = world.spawner.last('llm');
    child.print('ggml_cuda_init: found 1 CUDA devices');
    child.print('CUDA error: out of memory');
    await world.flush();
    await crash(world, child, 1);
    expect(rec.list).toEqual(['stopped->starting', 'starting->fatal', 'fatal->starting', 'starting->backoff']);
    expect(inst.status().last_exit?.reason).toBe('exited with code 1; last output: CUDA error: out of memory');
    expectConsistent(s);
  });
});

describe('restart policy', () => {
  it.each([
    { restart: 'on-failure' as const, code: 0, expected: ['ready->stopped'] },
    { restart: 'on-failure' as const, code: 1, expected: ['ready->backoff', 'backoff->starting'] },
    { restart: 'never' as const, code: 1, expected: ['ready->fatal'] },
    { restart: 'never' as const, code: 0, expected: ['ready->stopped'] },
    { restart: 'always' as const, code: 0, expected: ['ready->backoff', 'backoff->starting'] },
    { restart: 'always' as const, code: 1, expected: ['ready->backoff', 'backoff->starting'] },
  ])('$restart + exit $code → $expected', async ({ restart, code, expected }) => {
    const s = setup({ policy: { restart } });
    const { world, inst, rec } = s;
    const child = await startReady(s);
    await crash(world, child, code);
    await world.advance(60_000);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', ...expected]);
    if (restart === 'never' && code !== 0) expect(inst.status().last_exit?.reason).toContain('(restart = "never")');
    expectConsistent(s);
  });
});

describe('stop', () => {
  it('sends SIGTERM, resolves only after the exit, then sweeps leftovers', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    const child = await startReady(s);
    child.onSigterm = 'ignore';
    let resolved = false;
    const stopping = inst.stop().then(() => (resolved = true));
    await world.flush();
    expect(child.signals).toEqual(['SIGTERM']);
    expect(inst.state).toBe('stopping');
    await world.advance(3_000);
    expect(resolved).toBe(false);
    world.sweepResults.push([31337]);
    await crash(world, child, 0);
    await stopping;
    expect(inst.status()).toMatchObject({ state: 'stopped', pid: null, last_exit: { code: 0, signal: null, reason: 'exited with code 0' } });
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->stopping', 'stopping->stopped']);
    expect(world.sweeps).toHaveLength(1);
    expect(world.log.events('sweep')).toHaveLength(1);
    expect(world.log.events('sweep')[0].obj.pids).toEqual([31337]);
    // The kill timer died with the child.
    await world.advance(60_000);
    expect(child.signals).toEqual(['SIGTERM']);
    expectConsistent(s);
  });

  it('sends SIGKILL after stop_timeout_s to a child that ignores SIGTERM, not before', async () => {
    const s = setup({ policy: { stopTimeoutS: 8 } });
    const { world, inst, rec } = s;
    const child = await startReady(s);
    child.onSigterm = 'ignore';
    let resolved = false;
    const stopping = inst.stop().then(() => (resolved = true));
    await world.flush();
    const termAt = world.clock.now();
    await world.advance(7_999);
    expect(child.signals).toEqual(['SIGTERM']);
    expect(resolved).toBe(false);
    await world.advance(1);
    expect(child.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(child.signalledAt).toEqual([termAt, termAt + 8_000]);
    await stopping;
    expect(inst.status()).toMatchObject({ state: 'stopped', last_exit: { code: null, signal: 'SIGKILL' } });
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->stopping', 'stopping->stopped']);
    expect(world.log.events('kill')).toHaveLength(1);
    expect(world.sweeps).toHaveLength(1);
    expectConsistent(s);
  });

  it('a shutdown budget shortens the grace, also for an instance already stopping', async () => {
    const s = setup({ policy: { stopTimeoutS: 8 } });
    const { world, inst } = s;
    const child = await startReady(s);
    child.onSigterm = 'ignore';
    const first = inst.stop('stop command');
    await world.flush();
    const termAt = world.clock.now();
    await world.advance(1_000);
    const second = inst.stop('shutdown', { graceMs: 2_000 });
    await world.flush();
    await world.advance(1_999);
    expect(child.signals).toEqual(['SIGTERM']);
    await world.advance(1);
    expect(child.signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(child.signalledAt).toEqual([termAt, termAt + 3_000]);
    await Promise.all([first, second]);
    expect(inst.state).toBe('stopped');
    expectConsistent(s);
  });

  it('a tcp-probed instance (sshd) is probed without a path', async () => {
    const s = setup({ probe: 'tcp' });
    await startReady(s);
    expect(s.world.prober.calls.every((c) => c.path === null)).toBe(true);
    expectConsistent(s);
  });

  it('stops a starting instance the same way', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    await inst.start();
    const child = world.spawner.last('llm');
    await inst.stop();
    expect(child.signals).toEqual(['SIGTERM']);
    expect(rec.list).toEqual(['stopped->starting', 'starting->stopping', 'stopping->stopped']);
    // No probe or timer survives the stop.
    const probes = world.prober.calls.length;
    await world.advance(3_600_000);
    expect(world.prober.calls.length).toBe(probes);
    expect(world.spawner.children).toHaveLength(1);
    expectConsistent(s);
  });

  it('from backoff cancels the restart timer: no spawn later', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    const child = await startReady(s);
    await crash(world, child, 1);
    expect(inst.state).toBe('backoff');
    await inst.stop();
    expect(inst.status()).toMatchObject({ state: 'stopped', next_restart_at: null });
    await world.advance(3_600_000);
    expect(world.spawner.children).toHaveLength(1);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->backoff', 'backoff->stopped']);
    expectConsistent(s);
  });

  it('from fatal → stopped', async () => {
    const s = setup({ policy: { restart: 'never' } });
    const { world, inst, rec } = s;
    await inst.start();
    await crash(world, world.spawner.last('llm'), 2);
    expect(inst.state).toBe('fatal');
    await inst.stop();
    expect(rec.list).toEqual(['stopped->starting', 'starting->fatal', 'fatal->stopped']);
    expectConsistent(s);
  });

  it('while already stopped is a no-op without events or log entries', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    await inst.stop();
    await inst.stop();
    expect(rec.list).toEqual([]);
    expect(world.log.entries).toEqual([]);
    expect(world.sweeps).toEqual([]);
    expectConsistent(s);
  });

  it('wins over a restart already under way (stall → failing → stopping → stopped, not backoff)', async () => {
    const s = setup({ policy: { startupStallS: 10 } });
    const { world, inst, rec } = s;
    await inst.start();
    const child = world.spawner.last('llm');
    child.onSigterm = 'ignore';
    await world.advance(10_200);
    expect(inst.state).toBe('failing');
    const stopped = inst.stop();
    await world.flush();
    await crash(world, child, 0);
    await stopped;
    await world.advance(3_600_000);
    expect(rec.list).toEqual(['stopped->starting', 'starting->failing', 'failing->stopping', 'stopping->stopped']);
    expect(world.spawner.children).toHaveLength(1);
    expectConsistent(s);
  });

  it('sweeps leftovers after every exit, crashes included', async () => {
    const s = setup();
    const { world, inst } = s;
    await inst.start();
    await crash(world, world.spawner.last('llm'), 1);
    await world.advance(1000);
    await crash(world, world.spawner.last('llm'), null, 'SIGSEGV');
    await world.advance(2000);
    await inst.stop();
    expect(world.sweeps.map((x) => x.instance)).toEqual(['llm', 'llm', 'llm']);
    expectConsistent(s);
  });

  it('still handles the exit when the leftover sweep fails', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    const child = await startReady(s);
    world.deps.sweepLeftovers = async () => {
      throw Object.assign(new Error('EACCES: permission denied, open /proc/1/environ'), { code: 'EACCES' });
    };
    await crash(world, child, 1);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->backoff']);
    expect(world.log.events('sweep-failed')).toHaveLength(1);
    expectConsistent(s);
  });
});

describe('startup stall', () => {
  it('terminates and restarts a server with an unchanging 503 and no output for startup_stall_s', async () => {
    const s = setup({ policy: { startupStallS: 180 } });
    const { world, inst, rec, t0 } = s;
    await inst.start();
    const first = world.spawner.last('llm');
    await world.advance(180_000);
    expect(inst.state).toBe('starting');
    await world.advance(200);
    expect(first.signals).toEqual(['SIGTERM']);
    expect(rec.list).toEqual(['stopped->starting', 'starting->failing', 'failing->backoff']);
    expect(rec.times[1]).toBe(t0 + 180_200);
    expect(rec.events[1].reason).toMatch(/^stalled while starting: no log output and no change in the health answer for 180 s/);
    expect(inst.status().last_exit?.reason).toMatch(/^stalled while starting/);
    await world.advance(1000);
    expect(rec.list).toEqual(['stopped->starting', 'starting->failing', 'failing->backoff', 'backoff->starting']);
    expect(inst.status().restarts).toBe(1);
    expectConsistent(s);
  });

  it('never stalls a server whose log keeps growing, even after 20 minutes', async () => {
    const s = setup({ policy: { startupStallS: 180 } });
    const { world, inst, rec } = s;
    await inst.start();
    const child = world.spawner.last('llm');
    for (let i = 0; i < 40; i++) {
      child.print(`llama_model_load: loading tensors ${i}`);
      await world.advance(30_000);
    }
    expect(rec.list).toEqual(['stopped->starting']);
    expect(child.signals).toEqual([]);
    // Negative control: once the output stops, the stall is seen after startup_stall_s.
    const lastOutputAt = world.clock.now() - 30_000;
    await world.advance(149_800);
    expect(rec.list).toEqual(['stopped->starting']);
    await world.advance(200);
    expect(rec.list).toEqual(['stopped->starting', 'starting->failing', 'failing->backoff']);
    expect(rec.times[1] - lastOutputAt).toBeGreaterThanOrEqual(180_000);
    expect(rec.times[1] - lastOutputAt).toBeLessThanOrEqual(180_200);
    expectConsistent(s);
  });

  it('never stalls a server whose health answer changes, even after 20 minutes', async () => {
    const s = setup({ policy: { startupStallS: 180 } });
    const { world, inst, rec, plan, t0 } = s;
    world.prober.answer(plan.port, ({ at }) => ({ status: 503, body: `loading ${Math.floor((at - t0) / 60_000)}` }));
    await inst.start();
    await world.advance(20 * 60_000);
    expect(rec.list).toEqual(['stopped->starting']);
    expect(world.spawner.last('llm').signals).toEqual([]);
    expectConsistent(s);
  });

  it('counts probe errors that never change as no progress', async () => {
    const s = setup({ policy: { startupStallS: 30 } });
    const { world, inst, rec, plan } = s;
    world.prober.answer(plan.port, { error: 'ECONNREFUSED' });
    await inst.start();
    await world.advance(30_200);
    expect(rec.list).toEqual(['stopped->starting', 'starting->failing', 'failing->backoff']);
    expectConsistent(s);
  });

  it('with restart = "never" a stall is fatal', async () => {
    const s = setup({ policy: { startupStallS: 30, restart: 'never' } });
    const { world, inst, rec } = s;
    await inst.start();
    await world.advance(30_200);
    expect(rec.list).toEqual(['stopped->starting', 'starting->failing', 'failing->fatal']);
    expect(inst.status().last_exit?.reason).toMatch(/^stalled while starting.*\(restart = "never"\)$/);
    await world.advance(3_600_000);
    expect(world.spawner.children).toHaveLength(1);
    expectConsistent(s);
  });
});

describe('liveness', () => {
  it('restarts a ready instance after 3 failed probes in a row at health_interval_s', async () => {
    const s = setup({ policy: { healthIntervalS: 10 } });
    const { world, inst, rec } = s;
    const child = await startReady(s);
    const readyAt = rec.times[1];
    child.health = { status: 500, body: 'internal error' };
    await world.advance(29_999);
    expect(inst.state).toBe('ready');
    await world.advance(1);
    expect(child.signals).toEqual(['SIGTERM']);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->failing', 'failing->backoff']);
    expect(rec.times[2]).toBe(readyAt + 30_000);
    expect(rec.events[2].reason).toBe('liveness: 3 failed health checks in a row (last: 500 internal error)');
    await world.advance(1000);
    expect(rec.list.at(-1)).toBe('backoff->starting');
    expectConsistent(s);
  });

  it('stays ready after 2 failures and a success (the count starts over)', async () => {
    const s = setup({ policy: { healthIntervalS: 10 } });
    const { world, inst, rec, plan } = s;
    await startReady(s);
    for (let round = 0; round < 3; round++) {
      world.prober.queue(plan.port, { error: 'ETIMEDOUT' }, { status: 503, body: 'busy' });
      await world.advance(30_000);
    }
    expect(inst.state).toBe('ready');
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready']);
    expectConsistent(s);
  });
});

describe('preflight and spawn failures', () => {
  it('a missing model file is fatal without spawning', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.missingFiles.add(plan.model as string);
    await inst.start();
    expect(rec.list).toEqual(['stopped->fatal']);
    expect(inst.status().last_exit).toEqual({ code: null, signal: null, reason: `model file not found: ${plan.model}` });
    expect(world.spawner.children).toEqual([]);
    expectConsistent(s);
  });

  it('a start() from fatal whose cause is still there stays fatal, without a fatal → fatal event', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.missingFiles.add(plan.model as string);
    await inst.start();
    await inst.start('start command');
    expect(inst.state).toBe('fatal');
    expect(rec.list).toEqual(['stopped->fatal']);
    expect(inst.status().last_exit?.reason).toBe(`model file not found: ${plan.model}`);
    // Once the file is there, the next start works.
    world.missingFiles.clear();
    await inst.start('start command');
    expect(rec.list).toEqual(['stopped->fatal', 'fatal->starting']);
    expectConsistent(s);
  });

  it('a port held by a foreign process is fatal, naming its pid and command', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.ports.hold(plan.port, { pid: 999, command: `python3 -m http.server ${plan.port}` });
    await inst.start();
    expect(rec.list).toEqual(['stopped->fatal']);
    expect(inst.status().last_exit?.reason).toBe(`port ${plan.port} is already in use by pid 999 (python3 -m http.server ${plan.port})`);
    expect(world.spawner.children).toEqual([]);
    expectConsistent(s);
  });

  it("waits while the instance's own previous process holds the port, then spawns once it is free", async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.ports.hold(plan.port, { pid: 77, command: 'llama-server', owner: 'llm' });
    await inst.start();
    await world.advance(5_000);
    expect(world.spawner.children).toEqual([]);
    // The wait is a state of its own, and status says what it waits for.
    expect(rec.list).toEqual(['stopped->waiting']);
    expect(inst.status()).toMatchObject({ state: 'waiting', pid: null, state_reason: `port ${plan.port} is still held by our previous process, pid 77 (llama-server)` });
    expect(world.ports.ownChecks.at(-1)).toEqual({ pid: 77, instance: 'llm' });
    world.ports.release(plan.port);
    await world.advance(200);
    expect(world.spawner.children).toHaveLength(1);
    expect(rec.list).toEqual(['stopped->waiting', 'waiting->starting']);
    expectConsistent(s);
  });

  it('gives up on its own previous process after 10 s', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.ports.hold(plan.port, { pid: 77, command: 'llama-server', owner: 'llm' });
    await inst.start();
    await world.advance(10_400);
    expect(rec.list).toEqual(['stopped->waiting', 'waiting->fatal']);
    expect(inst.status().last_exit?.reason).toBe(`port ${plan.port} is already in use by pid 77 (llama-server)`);
    expect(world.spawner.children).toEqual([]);
    expectConsistent(s);
  });

  it('a stop() while waiting for the port cancels the wait', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.ports.hold(plan.port, { pid: 77, command: 'llama-server', owner: 'llm' });
    await inst.start();
    await world.advance(1_000);
    await inst.stop();
    world.ports.release(plan.port);
    await world.advance(60_000);
    expect(world.spawner.children).toEqual([]);
    expect(rec.list).toEqual(['stopped->waiting', 'waiting->stopped']);
    expect(inst.state).toBe('stopped');
    expectConsistent(s);
  });

  it('a second start() while waiting for the port does not spawn twice', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.ports.hold(plan.port, { pid: 77, command: 'llama-server', owner: 'llm' });
    await inst.start();
    await world.advance(300);
    await inst.start();
    await world.advance(300);
    world.ports.release(plan.port);
    await world.advance(1_000);
    expect(world.spawner.children).toHaveLength(1);
    // No second wait goes on polling the port (which the new child now holds) until it gives up.
    const lookups = world.ports.lookups.length;
    await world.advance(30_000);
    expect(world.ports.lookups.length).toBe(lookups);
    expect(rec.list).toEqual(['stopped->waiting', 'waiting->starting']);
    expectConsistent(s);
  });

  it('a spawn failure (ENOENT) is fatal with its message', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.spawner.failNextWithEnoent(plan.executable);
    await inst.start();
    const message = `cannot run ${plan.executable}: no such file (or not found on PATH)`;
    expect(rec.list).toEqual(['stopped->fatal']);
    expect(inst.status().last_exit).toEqual({ code: null, signal: null, reason: message });
    expect(world.logOf(plan).records).toEqual([`[supervisor] ${message}`]);
    await world.advance(3_600_000);
    expect(world.spawner.children).toEqual([]);
    expectConsistent(s);
  });

  it('a log file that cannot be opened is fatal, not a stuck instance', async () => {
    const s = setup();
    const { world, inst, rec, plan } = s;
    world.openLogError = Object.assign(new Error(`EACCES: permission denied, open '${plan.logFile}'`), { code: 'EACCES' });
    await inst.start();
    expect(rec.list).toEqual(['stopped->fatal']);
    expect(inst.status().last_exit?.reason).toContain(`cannot open log file ${plan.logFile}`);
    expect(world.spawner.children).toEqual([]);
    expectConsistent(s);
  });

  it('opens the new log file when the plan moved it', async () => {
    const s = setup();
    const { world, inst, plan } = s;
    await startReady(s);
    await inst.stop();
    const moved = { ...plan, logFile: '/logs/elsewhere.log' };
    inst.setPlan(moved);
    await inst.start();
    expect(world.openedLogs).toEqual([plan.logFile, moved.logFile]);
    expect(world.logOf(plan).closed).toBe(true);
    expect(world.logOf(moved).records.at(-1)).toMatch(/^\[supervisor\] started pid/);
    expectConsistent(s);
  });
});

describe('status()', () => {
  it('has exactly the documented keys, in every state', async () => {
    const s = setup({ gpuIds: '0,1' });
    const { world, inst, plan } = s;
    const seen: InstanceStatus[] = [inst.status()];
    const child = await startReady(s);
    await world.advance(5_000);
    seen.push(inst.status());
    await crash(world, child, 1);
    seen.push(inst.status());
    for (const status of seen) expect(Object.keys(status).sort()).toEqual(STATUS_KEYS);

    expect(seen[0]).toEqual({
      name: 'llm',
      engine: 'llama-server',
      state: 'stopped',
      state_since: null,
      state_reason: null,
      pid: null,
      uptime_s: null,
      restarts: 0,
      last_exit: null,
      port: plan.port,
      gpu_ids: '0,1',
      log_file: plan.logFile,
      next_restart_at: null,
      load: null,
      context: null,
      fit: null,
      gpu: null,
    });
    expect(seen[1]).toMatchObject({ state: 'ready', pid: child.pid, uptime_s: 5, state_reason: 'health check /health answered 200' });
    expect(Date.parse(seen[1].state_since!)).toBe(s.t0 + 200);
    expect(seen[2]).toMatchObject({ state: 'backoff', pid: null, uptime_s: null, next_restart_at: expect.stringMatching(/Z$/) });
    expectConsistent(s);
  });
});

describe('commands', () => {
  it('offer no way to set the state from outside', () => {
    const own = Object.getOwnPropertyNames(Instance.prototype).sort();
    expect(own).toEqual(['close', 'constructor', 'hostBuffersMiB', 'lastTail', 'name', 'noteRpcWorkerLost', 'park', 'plan', 'restart', 'rpcWorkerReady', 'setPlan', 'start', 'state', 'status', 'stop', 'summary', 'unload', 'waitFor']);
    const { inst } = setup();
    expect(() => {
      (inst as unknown as { state: string }).state = 'ready';
    }).toThrow(TypeError);
    expect(inst.state).toBe('stopped');
  });

  it('serialises start(); stop(); start() issued without awaiting: the last command wins', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    const calls = [inst.start('a'), inst.stop('b'), inst.start('c')];
    await Promise.all(calls);
    await world.flush();
    // The stop cancelled the first start before its spawn: one child, never signalled.
    expect(rec.list).toEqual(['stopped->starting']);
    expect(rec.events[0].reason).toBe('c');
    expect(inst.state).toBe('starting');
    expect(world.spawner.children).toHaveLength(1);
    expect(inst.status().pid).toBe(world.spawner.live[0].pid);
    expect(world.spawner.children[0].signals).toEqual([]);
    expectConsistent(s);
  });

  it('serialises stop(); start(); stop() on a ready instance: it ends stopped with no child', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    await startReady(s);
    await Promise.all([inst.stop('a'), inst.start('b'), inst.stop('c')]);
    await world.advance(60_000);
    expect(inst.state).toBe('stopped');
    expect(world.spawner.live).toEqual([]);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->stopping', 'stopping->restarting', 'restarting->stopping', 'stopping->stopped']);
    expectConsistent(s);
  });

  it('many interleaved commands always leave at most one child and a matching state', async () => {
    const s = setup();
    const { world, inst } = s;
    const ops = ['start', 'stop', 'restart', 'start', 'start', 'stop', 'restart', 'stop', 'start', 'restart'] as const;
    for (let round = 0; round < 5; round++) {
      const pending = ops.slice(round).map((op) => inst[op](`${op} ${round}`));
      await Promise.all(pending);
      await world.flush();
      expect(world.spawner.live.length).toBeLessThanOrEqual(1);
      expect(inst.status().pid).toBe(world.spawner.live[0]?.pid ?? null);
      expect(['starting', 'stopped']).toContain(inst.state);
    }
    expectConsistent(s);
  });

  it('restart() stops the child and starts a new one', async () => {
    const s = setup();
    const { world, inst, rec } = s;
    const first = await startReady(s);
    await inst.restart();
    expect(first.alive).toBe(false);
    expect(world.spawner.live).toHaveLength(1);
    expect(rec.list).toEqual(['stopped->starting', 'starting->ready', 'ready->restarting', 'restarting->starting']);
    expect(rec.events.at(-1)?.pid).toBe(world.spawner.live[0].pid);
    expectConsistent(s);
  });

  it('waitFor() resolves at once for the current state and later on a matching transition', async () => {
    const s = setup();
    const { world, inst } = s;
    await expect(inst.waitFor(['stopped'])).resolves.toBe('stopped');
    const ready = inst.waitFor(['ready', 'fatal']);
    await inst.start();
    world.spawner.last('llm').health = LOADING;
    await world.advance(1_000);
    world.spawner.last('llm').health = OK;
    await world.advance(200);
    await expect(ready).resolves.toBe('ready');
    expectConsistent(s);
  });
});
