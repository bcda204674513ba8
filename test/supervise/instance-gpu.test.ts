// An instance's load and GPU duties on fakes and a fake clock (issue 18): the
// load read from its output (the H200 recordings), the fit decision warned
// about or failing the start, the release barrier before the next start, and
// the start turn on a shared GPU.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Instance } from '../../src/supervise/instance.ts';
import { FakeGpu, FakeWorld, OK, makePlan, recordTransitions, type PlanOverrides } from '../support/fake-instance-deps.ts';

const lines = (name: string) => readFileSync(new URL(`../fixtures/llama-logs/${name}`, import.meta.url), 'utf8').split('\n');

function setup(overrides: PlanOverrides = {}) {
  const gpu = new FakeGpu();
  const world = new FakeWorld(undefined, { gpu });
  const inst = new Instance(makePlan(overrides), world.deps);
  const rec = recordTransitions(inst, world.clock);
  return { gpu, world, inst, rec };
}

describe('the load, read from the output', () => {
  it('shows the phase and percentage while starting, then the context and the buffers on the GPU', async () => {
    const { world, inst } = setup({ ctxSize: 131072 });
    await inst.start();
    const child = world.spawner.last('llm');
    const log = lines('h200-fitted.log');
    const tensors = log.findIndex((l) => l.includes('load_tensors: loading model tensors'));
    for (const line of log.slice(0, tensors + 1)) child.print(line);
    await world.flush();
    expect(inst.status().load).toEqual({ phase: 'tensors', percent: 20 });
    for (const line of log.slice(tensors + 1)) child.print(line);
    child.health = OK;
    await world.advance(200);
    const status = inst.status();
    expect(status).toMatchObject({ state: 'ready', load: null, context: { configured: 131072, trained: 131072, actual: 131072 }, fit: { decision: 'unchanged', reduced: false, message: null } });
    expect(status.gpu).toEqual({ devices: [0], memory: [{ gpu: 0, uuid: null, mib: expect.any(Number), source: 'buffers' }], release: null });
    expect(status.gpu!.memory[0].mib).toBeGreaterThan(87_000);
  });

  it('"listening" in the output makes the next probe come at once, not at the end of the probe period', async () => {
    const { world, inst } = setup();
    await inst.start();
    const child = world.spawner.last('llm');
    await world.advance(50);
    child.health = OK;
    child.print('0.00.085.282 I srv  llama_server: listening on http://127.0.0.1:8080');
    await world.flush();
    await world.advance(0);
    expect(inst.state).toBe('ready');
    expect(world.prober.calls.map((c) => c.at - world.prober.calls[0].at)).toEqual([0]);
  });

  it('a context cut by fit is a warning naming the GPU and what holds it, and status shows it', async () => {
    const { world, inst } = setup();
    await inst.start();
    const child = world.spawner.last('llm');
    for (const line of lines('h200-context-reduced.log')) child.print(line);
    child.health = OK;
    await world.advance(200);
    expect(inst.state).toBe('ready');
    expect(inst.status().fit).toEqual({ decision: 'context-reduced', reduced: true, message: 'ctx 71936/131072, fitted to 54641 MiB free on GPU 0' });
    expect(inst.status().context).toEqual({ configured: null, trained: 131072, actual: 71936 });
    const [warning] = world.log.events('fit');
    expect(warning.msg).toBe('llm: llama.cpp served less than configured: ctx 71936/131072, fitted to 54641 MiB free on GPU 0; memory held: GPU 0: other (1 MiB)');
    expect(world.log.events('fit-reduced')).toHaveLength(1);
  });

  it('with on_fit_reduced = "fail" the start is stopped and fatal with the reason, not restarted', async () => {
    const { world, inst, rec } = setup({ policy: { onFitReduced: 'fail' } });
    await inst.start();
    const child = world.spawner.last('llm');
    // The stop comes as soon as the fit line is read: a dead process prints nothing more.
    for (const line of lines('h200-layers-moved.log')) if (child.alive) child.print(line);
    await world.flush();
    await world.advance(60_000);
    expect(rec.list).toEqual(['stopped->starting', 'starting->failing', 'failing->fatal']);
    expect(inst.status().last_exit?.reason).toBe('0/33 layers on the GPU, the rest on the CPU, fitted to 493 MiB free on GPU 0 (on_fit_reduced = "fail")');
    expect(world.spawner.children).toHaveLength(1);
  });
});

describe('the release barrier', () => {
  it('after an exit, the next start waits (state waiting, the reason shown) until the memory is back, and says how long', async () => {
    const { gpu, world, inst, rec } = setup();
    await inst.start();
    const first = world.spawner.last('llm');
    first.health = OK;
    await world.advance(200);
    gpu.verdicts.push({ released: false, reason: 'pid 4242 holds 87982 MiB on GPU 0' }, { released: false, reason: 'pid 4242 holds 87982 MiB on GPU 0' });
    first.exit(null, 'SIGKILL');
    await world.flush();
    expect(gpu.snapshots).toEqual([[first.pid]]);
    await world.advance(1000); // the backoff
    expect(inst.status()).toMatchObject({ state: 'waiting', state_reason: 'GPU release: pid 4242 holds 87982 MiB on GPU 0' });
    await world.advance(400);
    expect(world.spawner.children).toHaveLength(2);
    expect(rec.list.slice(-3)).toEqual(['ready->backoff', 'backoff->waiting', 'waiting->starting']);
    expect(inst.status().gpu?.release).toEqual({ waited_ms: 400, warning: null });
    expect(world.log.events('gpu-released')[0].msg).toBe("llm: waited 400 ms for the last run's GPU memory");
  });

  it('gives up after gpu_release_timeout_s and starts anyway, with a warning in the log and in status', async () => {
    const { gpu, world, inst } = setup({ policy: { gpuReleaseTimeoutS: 1, backoffInitialMs: 0 } });
    await inst.start();
    world.spawner.last('llm').health = OK;
    await world.advance(200);
    for (let i = 0; i < 20; i++) gpu.verdicts.push({ released: false, reason: 'pid 9 of the last run still has the GPU open' });
    world.spawner.last('llm').exit(1);
    await world.flush();
    await world.advance(1400);
    expect(world.spawner.children).toHaveLength(2);
    expect(inst.status().gpu?.release?.warning).toBe('started anyway after 1 s: pid 9 of the last run still has the GPU open');
    expect(world.log.events('gpu-release-timeout')).toHaveLength(1);
  });

  it('costs nothing when the memory is back at once: the restart is not delayed', async () => {
    const { gpu, world, inst } = setup({ policy: { backoffInitialMs: 500 } });
    await inst.start();
    world.spawner.last('llm').health = OK;
    await world.advance(200);
    world.spawner.last('llm').exit(1);
    await world.flush();
    await world.advance(500);
    expect(world.spawner.children).toHaveLength(2);
    expect(gpu.releaseChecks).toBe(1);
    expect(inst.status().gpu?.release).toEqual({ waited_ms: 0, warning: null });
  });
});

describe('the start turn on a shared GPU', () => {
  it('the second instance on a GPU starts once the first has allocated its buffers', async () => {
    const gpu = new FakeGpu();
    const world = new FakeWorld(undefined, { gpu });
    const a = new Instance(makePlan({ name: 'a' }), world.deps);
    const b = new Instance(makePlan({ name: 'b' }), world.deps);
    await a.start();
    await b.start();
    expect(world.spawner.of('a')).toHaveLength(1);
    expect(world.spawner.of('b')).toHaveLength(0);
    expect(b.status()).toMatchObject({ state: 'waiting', state_reason: 'waiting for its turn: a is loading on GPU 0' });
    // a allocates its context, then warms up: its turn is over.
    const log = lines('h200-fitted.log');
    for (const line of log.slice(0, log.findIndex((l) => l.includes('warming up')) + 1)) world.spawner.last('a').print(line);
    await world.advance(200);
    expect(world.spawner.of('b')).toHaveLength(1);
    expect(a.state).toBe('starting');
  });

  it('instances on different GPUs start at once, and a failed start gives its turn back', async () => {
    const gpu = new FakeGpu();
    gpu.devices.set('b', [1]);
    const world = new FakeWorld(undefined, { gpu });
    const a = new Instance(makePlan({ name: 'a' }), world.deps);
    const b = new Instance(makePlan({ name: 'b' }), world.deps);
    const c = new Instance(makePlan({ name: 'c' }), world.deps);
    await Promise.all([a.start(), b.start()]);
    expect(world.spawner.children.map((ch) => ch.plan.name).sort()).toEqual(['a', 'b']);
    world.spawner.last('a').exit(1, null);
    await world.flush();
    await c.start();
    expect(world.spawner.of('c')).toHaveLength(1);
  });
});
