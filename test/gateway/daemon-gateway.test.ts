import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, type InstancePlan, type LaunchPlan } from '../../src/config/instance-plan.ts';
import { addRequestStats, getInstancesToDrain, makeDaemonGateway } from '../../src/gateway/daemon-gateway.ts';
import type { Supervisor } from '../../src/supervise/supervisor.ts';
import { quietLog, rawRequest, testPlan } from './support.ts';

const plan = (name: string, args: string[] = [], enabled = true): InstancePlan =>
  ({ name, enabled, executable: 'llama-server', args, env: {}, logFile: `/tmp/${name}.log`, gpuIds: null, host: '127.0.0.1', port: 1, background: true, user: null, model: null, policy: { ...DEFAULT_POLICY } }) as InstancePlan;

function supervisorOf(instances: { plan: InstancePlan; state: string }[], system: { plan: InstancePlan; state: string }[] = []) {
  const all = [...system, ...instances].map((i) => ({ ...i, name: i.plan.name, on: () => undefined, status: () => ({ state: i.state, last_exit: null, restarts: 0 }), summary: { state: i.state, hasRun: false, restarts: 0, load: null, fitReducedCount: 0 } }));
  return {
    plan: { enabled: true, instances: instances.map((i) => i.plan) } as LaunchPlan,
    instances: all,
    instance: (name: string) => all.find((i) => i.name === name),
  } as unknown as Supervisor;
}

describe('getInstancesToDrain', () => {
  it('running instances that reload will stop or restart: removed, disabled, launch changed', () => {
    const supervisor = supervisorOf(
      [
        { plan: plan('same', ['-c', '1']), state: 'ready' },
        { plan: plan('changed', ['-c', '1']), state: 'ready' },
        { plan: plan('removed'), state: 'starting' },
        { plan: plan('disabled'), state: 'backoff' },
        { plan: plan('fatal-changed', ['-c', '1']), state: 'fatal' },
        { plan: plan('stopped-removed'), state: 'stopped' },
      ],
      [{ plan: plan('sshd'), state: 'ready' }],
    );
    const next: LaunchPlan = {
      enabled: true,
      instances: [plan('same', ['-c', '1']), plan('changed', ['-c', '2']), plan('disabled', [], false), plan('fatal-changed', ['-c', '2']), plan('new')],
    } as LaunchPlan;
    expect(getInstancesToDrain(supervisor, next)).toEqual(['changed', 'removed', 'disabled']);
    expect(getInstancesToDrain(supervisor, { ...next, enabled: false })).toEqual(['same', 'changed', 'removed', 'disabled']);
  });
});

describe('makeDaemonGateway', () => {
  it('loads nothing while disabled; starts, moves and stops with the plan; drains; counts', async () => {
    const supervisor = supervisorOf([{ plan: { ...plan('a', ['--alias', 'tiny-a']), aliases: ['tiny-a'] }, state: 'ready' }]);
    const gw = makeDaemonGateway({ supervisor, log: quietLog() });
    await gw.apply(undefined);
    await gw.apply(testPlan({ enabled: false }));
    expect(gw.address).toBeNull();
    expect(gw.stats('a')).toBeNull();
    expect(await gw.withDrain(['a'], async () => 'ran without a gateway')).toBe('ran without a gateway');
    expect(addRequestStats([{ name: 'a', state: 'ready' }], gw)).toEqual([{ name: 'a', state: 'ready', inflight: null, requests: null }]);

    await gw.apply(testPlan({ defaultInstance: 'a' }));
    const port = gw.address!.port;
    const models = await rawRequest({ port, method: 'GET', path: '/v1/models' });
    expect(models.json().data.map((m: any) => m.id)).toEqual(['tiny-a', 'a']);
    expect(gw.stats('a')).toEqual({ inflight: 0, requests: 0, held: 0, queued: 0 });
    expect(addRequestStats([{ name: 'a' }], gw)).toEqual([{ name: 'a', inflight: 0, requests: 0 }]);
    expect(await gw.withDrain(['a'], async () => 'drained')).toBe('drained');

    await gw.apply(testPlan({ enabled: false }));
    expect(gw.address).toBeNull();
    await expect(rawRequest({ port, method: 'GET', path: '/health' })).rejects.toThrow(/ECONNREFUSED/);
    await gw.close();
  });

  it('a port in use: apply rejects with a message naming the address, and a later apply can still succeed', async () => {
    const supervisor = supervisorOf([{ plan: plan('a'), state: 'ready' }]);
    const first = makeDaemonGateway({ supervisor, log: quietLog() });
    await first.apply(testPlan());
    const taken = first.address!.port;
    const second = makeDaemonGateway({ supervisor, log: quietLog() });
    await expect(second.apply(testPlan({ port: taken }))).rejects.toThrow(`gateway cannot listen on 127.0.0.1:${taken}: the address is in use`);
    await second.apply(testPlan());
    expect(second.address!.port).not.toBe(taken);
    await first.close();
    await second.close();
  });
});
