import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, type InstancePlan, type LaunchPlan } from '../../src/config/instance-plan.ts';
import { fromSupervisor } from '../../src/gateway/targets.ts';
import type { Supervisor } from '../../src/supervise/supervisor.ts';

// Just the public surface of Instance the adapter reads.
class FakeInstance extends EventEmitter {
  state = 'stopped';
  lastExit: object | null = null;
  constructor(readonly plan: InstancePlan) {
    super();
  }
  get name() {
    return this.plan.name;
  }
  get summary() {
    return { state: this.state, hasRun: this.lastExit !== null, restarts: 2, load: null, fitReducedCount: 0, slots: null, lastExitCode: null, reason: '' };
  }
  move(to: string) {
    const from = this.state;
    this.state = to;
    this.emit('transition', { instance: this.name, from, to, pid: null, reason: 'test' });
  }
}

// Cast: only the fields the adapter reads matter here, whatever else InstancePlan grows.
const plan = (name: string, { aliases, apiKey }: Pick<InstancePlan, 'aliases' | 'apiKey'>, enabled = true): InstancePlan =>
  ({
  name,
  enabled,
  executable: 'llama-server',
  args: [],
  aliases,
  apiKey,
  env: {},
  logFile: '/tmp/x.log',
  gpuIds: null,
  host: '0.0.0.0',
  port: 8080,
  probe: 'http',
  background: true,
  user: null,
  model: null,
    policy: { ...DEFAULT_POLICY },
  }) as InstancePlan;

function fakeSupervisor() {
  const glm = new FakeInstance(plan('glm', { aliases: ['glm4', 'glm-big'], apiKey: 'k1' }));
  const off = new FakeInstance(plan('off', { aliases: ['x'] }, false));
  // A plan not made from a config: no aliases, no key.
  const sshd = new FakeInstance(plan('sshd', {}));
  const launchPlan: LaunchPlan = { enabled: true, instances: [glm.plan, off.plan] } as LaunchPlan;
  const all = [sshd, glm, off];
  const supervisor = {
    plan: launchPlan,
    instances: all,
    instance: (name: string) => all.find((i) => i.name === name),
  } as unknown as Supervisor;
  return { supervisor, glm, off, sshd };
}

describe('fromSupervisor', () => {
  it("lists the config's instances with aliases, key, state; system services (sshd) are left out", () => {
    const { supervisor } = fakeSupervisor();
    const targets = fromSupervisor(supervisor);
    expect(targets.list()).toEqual([
      { name: 'glm', aliases: ['glm4', 'glm-big'], host: '0.0.0.0', port: 8080, apiKey: 'k1', enabled: true, state: 'stopped', notStartedYet: true, restarts: 2, load: null, onDemand: false, maxConcurrent: null, maxQueue: 256, lastExitCode: null, reason: '' },
      { name: 'off', aliases: ['x'], host: '0.0.0.0', port: 8080, apiKey: null, enabled: false, state: 'stopped', notStartedYet: true, restarts: 2, load: null, onDemand: false, maxConcurrent: null, maxQueue: 256, lastExitCode: null, reason: '' },
    ]);
    expect(targets.get('sshd')).toBeUndefined();
  });

  it('a stopped instance that has run before is not "not started yet"', () => {
    const { supervisor, glm } = fakeSupervisor();
    glm.lastExit = { code: 0, signal: null, reason: 'stopped' };
    expect(fromSupervisor(supervisor).get('glm')).toMatchObject({ state: 'stopped', notStartedYet: false });
  });

  it('nextChange: true on the next transition, false on timeout or abort; one listener for many waiters', async () => {
    const { supervisor, glm } = fakeSupervisor();
    const targets = fromSupervisor(supervisor);
    const waits = Array.from({ length: 50 }, () => targets.nextChange('glm', 5000));
    expect(glm.listenerCount('transition')).toBe(1);
    glm.move('starting');
    expect(await Promise.all(waits)).toEqual(new Array(50).fill(true));
    expect(await targets.nextChange('glm', 20)).toBe(false);
    const controller = new AbortController();
    const aborted = targets.nextChange('glm', 5000, controller.signal);
    controller.abort();
    expect(await aborted).toBe(false);
    expect(glm.listenerCount('transition')).toBe(1);
  });
});
