// The set of instances: start order (background = false), health codes, reload
// diffs and name selection, all on fakes and a fake clock.
import { describe, expect, it } from 'vitest';
import type { InstancePlan, LaunchPlan } from '../../src/config/instance-plan.ts';
import { EXIT, SupervisorError, isSupervisorError } from '../../src/errors.ts';
import { Supervisor, launchKey } from '../../src/supervise/supervisor.ts';
import { FakeWorld, OK, makePlan, type PlanOverrides } from '../support/fake-instance-deps.ts';

function setup(plans: PlanOverrides[], enabled = true): { world: FakeWorld; sup: Supervisor; plan: LaunchPlan } {
  const world = new FakeWorld();
  const plan: LaunchPlan = { enabled, instances: plans.map((p) => makePlan(p)) };
  const sup = new Supervisor({ plan, deps: world.deps });
  return { world, sup, plan };
}

// Lets every live child of these instances answer 200 and the next probe see it.
async function makeReady(world: FakeWorld, ...names: string[]): Promise<void> {
  for (const name of names) world.spawner.last(name).health = OK;
  await world.advance(200);
}

// The invariants every test ends with.
function expectConsistent(world: FakeWorld): void {
  const transitions = world.log.events('transition');
  expect(transitions.filter((e) => e.obj.from === e.obj.to)).toEqual([]);
  expect(world.log.errors).toEqual([]);
}

function pidOf(sup: Supervisor, name: string): number | null {
  return sup.instance(name)?.status().pid ?? null;
}

describe('startAll', () => {
  it('waits for a background = false instance to be ready before starting the next', async () => {
    const { world, sup } = setup([{ name: 'a', background: false }, { name: 'b' }, { name: 'c' }]);
    let done = false;
    const starting = sup.startAll().then(() => (done = true));
    await world.flush();
    expect(world.spawner.of('a')).toHaveLength(1);
    expect(world.spawner.of('b')).toHaveLength(0);
    await world.advance(60_000);
    expect(world.spawner.of('b')).toHaveLength(0);
    expect(done).toBe(false);

    await makeReady(world, 'a');
    await starting;
    expect(world.spawner.of('b')).toHaveLength(1);
    expect(world.spawner.of('c')).toHaveLength(1);
    expect(world.log.transitions('a')).toEqual(['stopped->starting', 'starting->ready']);
    // b started only after a was ready.
    const order = world.log.events('transition').map((e) => `${String(e.obj.instance)}:${String(e.obj.to)}`);
    expect(order).toEqual(['a:starting', 'a:ready', 'b:starting', 'c:starting']);
    expectConsistent(world);
  });

  it('goes on once a background = false instance is fatal', async () => {
    const { world, sup, plan } = setup([{ name: 'a', background: false }, { name: 'b' }]);
    world.missingFiles.add(plan.instances[0].model as string);
    await sup.startAll();
    expect(sup.instance('a')?.state).toBe('fatal');
    expect(world.spawner.of('b')).toHaveLength(1);
    expect(world.log.transitions('b')).toEqual(['stopped->starting']);
    expectConsistent(world);
  });

  it('does not start disabled instances', async () => {
    const { world, sup } = setup([{ name: 'a' }, { name: 'off', enabled: false }, { name: 'b' }]);
    await sup.startAll();
    expect(world.spawner.children.map((c) => c.plan.name)).toEqual(['a', 'b']);
    expect(sup.instance('off')?.state).toBe('stopped');
    expectConsistent(world);
  });

  it('with master.enable = false starts nothing', async () => {
    const { world, sup } = setup([{ name: 'a' }, { name: 'b' }], false);
    await sup.startAll();
    await world.advance(60_000);
    expect(world.spawner.children).toEqual([]);
    expect(world.log.events('transition')).toEqual([]);
    expect(world.log.events('master-disabled')).toHaveLength(1);
    expect(sup.health()).toMatchObject({ code: 0, line: 'healthy: 0/0 ready' });
    expectConsistent(world);
  });

  it('starts nothing more once a shutdown came while it waited', async () => {
    const { world, sup } = setup([{ name: 'a', background: false }, { name: 'b' }]);
    const starting = sup.startAll();
    await world.flush();
    await sup.shutdown('received SIGTERM');
    await starting;
    await world.advance(60_000);
    expect(world.spawner.of('b')).toEqual([]);
    expect(world.spawner.live).toEqual([]);
    expect(sup.instances.map((i) => i.state)).toEqual(['stopped', 'stopped']);
    expectConsistent(world);
  });

  it('does not start an instance that a reload removed while it waited', async () => {
    const { world, sup, plan } = setup([{ name: 'a', background: false }, { name: 'b' }]);
    const starting = sup.startAll();
    await world.flush();
    await sup.reload({ enabled: true, instances: [plan.instances[0]] });
    await makeReady(world, 'a');
    await starting;
    expect(world.spawner.of('b')).toEqual([]);
    expect(sup.instances.map((i) => i.name)).toEqual(['a']);
    expectConsistent(world);
  });
});

describe('readiness() (health --ready, the Kubernetes readinessProbe)', () => {
  it('ready only while the gateway listens and an enabled instance is ready or idle on demand', async () => {
    const { world, sup } = setup([{ name: 'a' }, { name: 'b' }, { name: 'off', enabled: false }]);
    expect(sup.readiness(true)).toEqual({ code: 1, line: 'not ready: 0/2 can serve; a stopped, b stopped' });
    await sup.startAll();
    expect(sup.readiness(true)).toEqual({ code: 1, line: 'not ready: 0/2 can serve; a starting, b starting' });
    await makeReady(world, 'a');
    // One instance is enough: the gateway holds requests for the other while it loads.
    expect(sup.readiness(true)).toEqual({ code: 0, line: 'ready: 1/2 can serve (a)' });
    expect(sup.readiness(false)).toEqual({ code: 1, line: 'not ready: the gateway is not listening; 1/2 can serve' });
    // Unloaded to idle: the next request loads it again, so the pod may take traffic.
    await sup.instance('a')?.unload('test');
    expect(sup.instance('a')?.state).toBe('idle');
    expect(sup.readiness(true)).toEqual({ code: 0, line: 'ready: 1/2 can serve (a)' });
    expectConsistent(world);
  });

  it('names the lack of instances when none is enabled', () => {
    const { sup } = setup([{ name: 'off', enabled: false }]);
    expect(sup.readiness(true)).toEqual({ code: 1, line: 'not ready: 0/0 can serve; no enabled instance' });
  });
});

describe('health()', () => {
  // Each step: the Docker verdict (code, line) and the strict one beside it.
  const verdicts = (sup: Supervisor) => {
    const h = sup.health();
    return { docker: [h.code, h.line], strict: [h.strict.code, h.strict.line] };
  };

  it('for Docker: healthy while starting and when ready, unhealthy in backoff or fatal; strict answers 2 while starting', async () => {
    const { world, sup, plan } = setup([{ name: 'a' }, { name: 'b' }, { name: 'off', enabled: false }]);
    // Enabled but never started: not running on purpose, as after `supervisor stop`.
    expect(verdicts(sup)).toEqual({ docker: [0, 'healthy: 0/2 ready; stopped: a, b'], strict: [1, 'unhealthy: 0/2 ready; a stopped, b stopped'] });
    await sup.startAll();
    expect(verdicts(sup)).toEqual({ docker: [0, 'healthy: 0/2 ready; starting: a, b'], strict: [2, 'starting: 0/2 ready; waiting for a, b'] });
    // A load that goes on for a long time stays healthy (the stall detector, not Docker, judges a load).
    await world.advance(60_000);
    world.spawner.last('a').health = OK;
    await world.advance(200);
    expect(verdicts(sup)).toEqual({ docker: [0, 'healthy: 1/2 ready; starting: b'], strict: [2, 'starting: 1/2 ready; waiting for b'] });
    await makeReady(world, 'b');
    expect(verdicts(sup)).toEqual({ docker: [0, 'healthy: 2/2 ready'], strict: [0, 'healthy: 2/2 ready'] });

    world.spawner.last('b').exit(1);
    await world.flush();
    expect(verdicts(sup)).toEqual({ docker: [1, 'unhealthy: 1/2 ready; b backoff'], strict: [1, 'unhealthy: 1/2 ready; b backoff'] });
    await world.advance(1000);
    expect(sup.instance('b')?.state).toBe('starting');
    expect(sup.health().code).toBe(0);
    await makeReady(world, 'b');
    expect(sup.health().code).toBe(0);

    sup.instance('b')?.setPlan({ ...plan.instances[1], policy: { ...plan.instances[1].policy, restart: 'never' } });
    world.spawner.last('b').exit(1);
    await world.flush();
    expect(verdicts(sup)).toEqual({ docker: [1, 'unhealthy: 1/2 ready; b fatal'], strict: [1, 'unhealthy: 1/2 ready; b fatal'] });
    expectConsistent(world);
  });

  it('an instance stopped by hand is not unhealthy for Docker (autoheal must not undo the stop); strict counts it', async () => {
    const { world, sup } = setup([{ name: 'a' }, { name: 'b' }]);
    await sup.startAll();
    await makeReady(world, 'a', 'b');
    await sup.instance('b')?.stop('stopped by hand');
    expect(sup.instance('b')?.state).toBe('stopped');
    expect(verdicts(sup)).toEqual({ docker: [0, 'healthy: 1/2 ready; stopped: b'], strict: [1, 'unhealthy: 1/2 ready; b stopped'] });
    // A failed instance beside a stopped one: unhealthy, naming only the failure.
    world.spawner.last('a').exit(1);
    await world.flush();
    expect(verdicts(sup).docker).toEqual([1, 'unhealthy: 0/2 ready; a backoff']);
    expectConsistent(world);
  });

  it('never answers 2 for Docker, in any state an instance can be in', async () => {
    const { world, sup } = setup([{ name: 'a' }]);
    const seen = new Set<string>();
    const codes = new Set<number>();
    const look = () => {
      seen.add(sup.instance('a')!.state);
      codes.add(sup.health().code);
    };
    look();
    await sup.startAll();
    look();
    await makeReady(world, 'a');
    look();
    const restarting = sup.instance('a')!.restart('test');
    look();
    await world.advance(200);
    await restarting;
    look();
    world.spawner.last('a').exit(1);
    await world.flush();
    look();
    const stopping = sup.instance('a')!.stop('test');
    look();
    await world.advance(200);
    await stopping;
    look();
    expect([...seen].sort()).toEqual(expect.arrayContaining(['backoff', 'ready', 'starting', 'stopped']));
    expect([...codes].every((c) => c === 0 || c === 1)).toBe(true);
    expectConsistent(world);
  });
});

describe('reload', () => {
  it('restarts only the changed instance, starts new ones, stops removed ones, leaves the rest alone', async () => {
    const { world, sup, plan } = setup([{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
    await sup.startAll();
    await makeReady(world, 'a', 'b', 'c');
    const before = { a: pidOf(sup, 'a'), b: pidOf(sup, 'b'), c: pidOf(sup, 'c') };
    const removed = sup.instance('c');
    const [a, b] = plan.instances;
    const changedB: InstancePlan = { ...b, args: [...b.args, '--ctx-size', '8192'] };
    const d = makePlan({ name: 'd' });

    const summary = await sup.reload({ enabled: true, instances: [a, changedB, d] });
    expect(summary).toEqual({ started: ['d'], restarted: ['b'], stopped: ['c'], unchanged: ['a'], idle: [] });
    expect(sup.instances.map((i) => i.name)).toEqual(['a', 'b', 'd']);
    expect(pidOf(sup, 'a')).toBe(before.a);
    expect(pidOf(sup, 'b')).not.toBe(before.b);
    expect(world.spawner.last('b').plan.args).toContain('--ctx-size');
    expect(sup.instance('d')?.state).toBe('starting');
    expect(removed?.state).toBe('stopped');
    expect(world.logOf(plan.instances[2]).closed).toBe(true);
    expect(world.log.transitions('a')).toEqual(['stopped->starting', 'starting->ready']);
    expect(world.log.transitions('b')).toEqual(['stopped->starting', 'starting->ready', 'ready->stopping', 'stopping->stopped', 'stopped->starting']);
    expect(world.log.transitions('c')).toEqual(['stopped->starting', 'starting->ready', 'ready->stopping', 'stopping->stopped']);
    expect(world.log.transitions('d')).toEqual(['stopped->starting']);
    expect(world.log.events('reload')).toHaveLength(1);
    expectConsistent(world);
  });

  it('takes a new policy without a restart (only launch fields restart)', async () => {
    const { world, sup, plan } = setup([{ name: 'a' }]);
    await sup.startAll();
    const pid = pidOf(sup, 'a');
    const next = { ...plan.instances[0], policy: { ...plan.instances[0].policy, healthIntervalS: 3 } };
    expect(launchKey(next)).toBe(launchKey(plan.instances[0]));
    const summary = await sup.reload({ enabled: true, instances: [next] });
    expect(summary.unchanged).toEqual(['a']);
    expect(pidOf(sup, 'a')).toBe(pid);
    expect(sup.instance('a')?.plan.policy.healthIntervalS).toBe(3);
    expectConsistent(world);
  });

  it('hands a port from a removed instance to a new one: the new one starts once the old one is gone', async () => {
    const { world, sup, plan } = setup([{ name: 'old', port: 18_999 }]);
    await sup.startAll();
    await makeReady(world, 'old');
    const oldChild = world.spawner.last('old');
    oldChild.onSigterm = 'ignore';
    // The same port under a new name: the old child holds it until it has exited.
    const renamed = makePlan({ name: 'new', port: plan.instances[0].port });
    const reloading = sup.reload({ enabled: true, instances: [renamed] });
    await world.advance(2_000);
    oldChild.exit(0);
    await world.flush();
    expect(await reloading).toEqual({ started: ['new'], restarted: [], stopped: ['old'], unchanged: [], idle: [] });
    expect(sup.instance('new')?.state).toBe('starting');
    expect(world.log.transitions('new')).toEqual(['stopped->starting']);
    expectConsistent(world);
  });

  it('stops an instance disabled by the reload and starts one it enabled', async () => {
    const { world, sup, plan } = setup([{ name: 'a' }, { name: 'b', enabled: false }]);
    await sup.startAll();
    const [a, b] = plan.instances;
    const summary = await sup.reload({ enabled: true, instances: [{ ...a, enabled: false }, { ...b, enabled: true }] });
    expect(summary).toEqual({ started: ['b'], restarted: [], stopped: ['a'], unchanged: [], idle: [] });
    expect(sup.instance('a')?.state).toBe('stopped');
    expect(sup.instance('b')?.state).toBe('starting');
    expectConsistent(world);
  });

  it('leaves an instance stopped by hand stopped, and restarts a fatal one whose launch was fixed', async () => {
    const { world, sup, plan } = setup([{ name: 'a' }, { name: 'b', policy: { restart: 'never' } }]);
    await sup.startAll();
    await sup.instance('a')?.stop('stop command');
    world.spawner.last('b').exit(1);
    await world.flush();
    expect(sup.instance('b')?.state).toBe('fatal');
    const [a, b] = plan.instances;
    const summary = await sup.reload({ enabled: true, instances: [a, { ...b, args: [...b.args, '--fixed'] }] });
    expect(summary).toEqual({ started: ['b'], restarted: [], stopped: [], unchanged: ['a'], idle: [] });
    expect(sup.instance('a')?.state).toBe('stopped');
    expect(sup.instance('b')?.state).toBe('starting');
    expect(world.log.transitions('b')).toEqual(['stopped->starting', 'starting->fatal', 'fatal->starting']);
    expectConsistent(world);
  });

  it('with master.enable turned off stops everything', async () => {
    const { world, sup, plan } = setup([{ name: 'a' }, { name: 'b' }]);
    await sup.startAll();
    const summary = await sup.reload({ enabled: false, instances: plan.instances });
    expect(summary.stopped).toEqual(['a', 'b']);
    expect(world.spawner.live).toEqual([]);
    expectConsistent(world);
  });
});

describe('select()', () => {
  it('rejects an unknown name with a usage error (exit code 2) that lists the known names', () => {
    const { sup } = setup([{ name: 'glm' }, { name: 'qwen' }]);
    let caught: unknown;
    try {
      sup.select(['glm', 'nope'], false);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SupervisorError);
    expect(isSupervisorError(caught)).toBe(true);
    expect((caught as SupervisorError).exitCode).toBe(EXIT.USAGE);
    expect((caught as SupervisorError).exitCode).toBe(2);
    expect((caught as Error).message).toBe('no instance named "nope" (instances: glm, qwen)');
    expect(() => sup.status(['nope'])).toThrow(/instances: glm, qwen/);
  });

  it('needs a name or --all, and returns instances in the order asked', () => {
    const { sup } = setup([{ name: 'glm' }, { name: 'qwen' }]);
    expect(() => sup.select([], false)).toThrow(expect.objectContaining({ exitCode: EXIT.USAGE }));
    expect(sup.select([], true).map((i) => i.name)).toEqual(['glm', 'qwen']);
    expect(sup.select(['qwen', 'glm'], false).map((i) => i.name)).toEqual(['qwen', 'glm']);
    expect(sup.status().map((s) => s.name)).toEqual(['glm', 'qwen']);
  });

  it('names "none" when there are no instances', () => {
    const { sup } = setup([]);
    expect(() => sup.select(['x'], false)).toThrow('no instance named "x" (instances: none)');
  });
});

describe('shutdown', () => {
  it('stops every instance, SIGKILLs the stubborn ones after their stop_timeout_s, and closes the logs', async () => {
    const { world, sup, plan } = setup([{ name: 'a', policy: { stopTimeoutS: 2 } }, { name: 'b' }]);
    await sup.startAll();
    await makeReady(world, 'a', 'b');
    world.spawner.last('a').onSigterm = 'ignore';
    let done = false;
    const stopping = sup.shutdown('received SIGTERM').then(() => (done = true));
    await world.advance(1_999);
    expect(done).toBe(false);
    expect(sup.instance('b')?.state).toBe('stopped');
    await world.advance(1);
    await stopping;
    expect(world.spawner.last('a').signals).toEqual(['SIGTERM', 'SIGKILL']);
    expect(world.spawner.live).toEqual([]);
    for (const p of plan.instances) expect(world.logOf(p).closed).toBe(true);
    expectConsistent(world);
  });
});

describe('system services (sshd)', () => {
  it('are shown and selectable, counted in health, and untouched by reload', async () => {
    const { world, sup, plan } = setup([{ name: 'a' }]);
    await sup.addSystemInstance(makePlan({ name: 'sshd', probe: 'tcp', policy: { restart: 'always' } }));
    await sup.startAll();
    await makeReady(world, 'sshd', 'a');
    expect(sup.status().map((s) => s.name)).toEqual(['sshd', 'a']);
    expect(sup.select(['sshd'], false)[0].name).toBe('sshd');
    expect(sup.health().code).toBe(0);
    const sshdPid = pidOf(sup, 'sshd');
    const summary = await sup.reload({ ...plan, instances: [] });
    expect(summary).toEqual({ started: [], restarted: [], stopped: ['a'], unchanged: [], idle: [] });
    expect(pidOf(sup, 'sshd')).toBe(sshdPid);
    expect(sup.instance('sshd')?.state).toBe('ready');
    expectConsistent(world);
  });

  it('a config instance may not take a reserved name: reload refuses, nothing changes', async () => {
    const { world, sup, plan } = setup([{ name: 'a' }]);
    await sup.addSystemInstance(makePlan({ name: 'sshd', probe: 'tcp' }));
    await sup.startAll();
    const pidA = pidOf(sup, 'a');
    await expect(sup.reload({ ...plan, instances: [...plan.instances, makePlan({ name: 'sshd' })] })).rejects.toMatchObject({
      exitCode: EXIT.USAGE,
      message: expect.stringContaining('reserved'),
    });
    expect(pidOf(sup, 'a')).toBe(pidA);
    expectConsistent(world);
  });

  it('shutdown gives each stop at most what is left of the budget', async () => {
    const { world, sup } = setup([{ name: 'a', policy: { stopTimeoutS: 8 } }, { name: 'b', policy: { stopTimeoutS: 1 } }]);
    await sup.startAll();
    await makeReady(world, 'a', 'b');
    const [a, b] = [world.spawner.last('a'), world.spawner.last('b')];
    a.onSigterm = 'ignore';
    b.onSigterm = 'ignore';
    const t0 = world.clock.now();
    const done = sup.shutdown('SIGTERM', { budgetMs: 3_000 });
    await world.flush();
    await world.advance(3_000);
    await done;
    expect(b.signalledAt).toEqual([t0, t0 + 1_000]);
    expect(a.signalledAt).toEqual([t0, t0 + 3_000]);
    expect(sup.instances.every((i) => i.state === 'stopped')).toBe(true);
    expectConsistent(world);
  });
});
