// The dashboard's state stream on a hand-driven control handler: a page joins
// with the whole state, then gets only what changed, soon after a transition.
import { describe, expect, it } from 'vitest';
import type { ControlHandler } from '../../src/control/server.ts';
import { Dashboard, type DashboardSnapshot, type DashboardUpdate } from '../../src/ui/dashboard.ts';
import type { TransitionEvent } from '../../src/supervise/instance.ts';
import { waitUntil } from '../gateway/support.ts';

function rig() {
  const rows: Array<Record<string, unknown>> = [
    { name: 'a', state: 'ready', uptime_s: 5, pid: 10 },
    { name: 'b', state: 'ready', uptime_s: 7, pid: 11 },
  ];
  let gpus: unknown = { present: false, error: null, at: null, gpus: [] };
  const calls: string[] = [];
  const control: ControlHandler = async (cmd) => {
    calls.push(cmd);
    if (cmd === 'status') return rows.map((r) => ({ ...r }));
    if (cmd === 'gpus') return gpus;
    if (cmd === 'boot-steps') return [];
    throw new Error(`unexpected ${cmd}`);
  };
  let watcher: ((instance: never, event: TransitionEvent) => void) | null = null;
  const dashboard = new Dashboard({ control, watchTransitions: (w) => void (watcher = w as never) });
  const transition = (event: TransitionEvent) => watcher!(undefined as never, event);
  const messages: Array<{ event: string; data: DashboardSnapshot | DashboardUpdate }> = [];
  return { rows, setGpus: (g: unknown) => (gpus = g), calls, dashboard, transition, messages, client: { send: (event: string, data: DashboardSnapshot | DashboardUpdate) => void messages.push({ event, data }) } };
}

describe('Dashboard', () => {
  it('sends a joining page the whole state, then the changed rows only, within tens of ms of a transition', async () => {
    const r = rig();
    const stop = r.dashboard.subscribe(r.client);
    await waitUntil(() => r.messages.length === 1, 'the snapshot');
    const snapshot = r.messages[0].data as DashboardSnapshot;
    expect(r.messages[0].event).toBe('snapshot');
    expect(snapshot.instances.map((i) => i.name)).toEqual(['a', 'b']);

    r.rows[0] = { name: 'a', state: 'backoff', uptime_s: null, pid: null };
    const at = Date.now();
    r.transition({ instance: 'a', from: 'ready', to: 'backoff', pid: null, reason: 'killed by SIGKILL' });
    await waitUntil(() => r.messages.length === 2, 'the update');
    expect(Date.now() - at).toBeLessThan(100);
    const update = r.messages[1].data as DashboardUpdate;
    expect(update.instances).toEqual([{ name: 'a', state: 'backoff', uptime_s: null, pid: null }]);
    expect(update.timeline).toMatchObject([{ instance: 'a', from: 'ready', to: 'backoff', reason: 'killed by SIGKILL' }]);
    expect(update.gpus).toBeUndefined();
    expect(update.order).toBeUndefined();
    stop();
  });

  it('does not count uptime ticking as a change, and says when an instance went away', async () => {
    const r = rig();
    const stop = r.dashboard.subscribe(r.client);
    await waitUntil(() => r.messages.length === 1, 'the snapshot');
    r.rows[1].uptime_s = 9;
    r.rows.shift();
    r.transition({ instance: 'a', from: 'ready', to: 'stopped', pid: null, reason: 'removed' });
    await waitUntil(() => r.messages.length === 2, 'the update');
    const update = r.messages[1].data as DashboardUpdate;
    expect(update.removed).toEqual(['a']);
    expect(update.order).toEqual(['b']);
    expect(update.instances).toBeUndefined();
    stop();
  });

  it('many transitions at once become one message; with no page open, nothing is rebuilt', async () => {
    const r = rig();
    for (let i = 0; i < 5; i++) r.transition({ instance: 'a', from: 'ready', to: 'stopping', pid: 10, reason: `x${i}` });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.calls).toEqual([]);
    expect(r.dashboard.timeline).toHaveLength(5);
    const stop = r.dashboard.subscribe(r.client);
    await waitUntil(() => r.messages.length === 1, 'the snapshot');
    expect((r.messages[0].data as DashboardSnapshot).timeline).toHaveLength(5);
    r.rows[0].state = 'stopping';
    for (let i = 0; i < 5; i++) r.transition({ instance: 'a', from: 'stopping', to: 'stopping', pid: 10, reason: `y${i}` });
    await waitUntil(() => r.messages.length >= 2, 'the update');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(r.messages).toHaveLength(2);
    expect((r.messages[1].data as DashboardUpdate).timeline).toHaveLength(5);
    stop();
  });
});

describe('Dashboard when the state cannot be read', () => {
  it('a joining page gets its snapshot once a later rebuild succeeds', async () => {
    let fail = true;
    const control: ControlHandler = async (cmd) => {
      if (fail) throw new Error('not yet');
      return cmd === 'status' ? [{ name: 'a', state: 'ready' }] : cmd === 'gpus' ? { present: false, gpus: [] } : [];
    };
    const dashboard = new Dashboard({ control, watchTransitions: () => undefined });
    const got: string[] = [];
    const stop = dashboard.subscribe({ send: (event) => void got.push(event) });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(got).toEqual([]);
    fail = false;
    await waitUntil(() => got.length === 1, 'the snapshot after the retry', 5000);
    expect(got).toEqual(['snapshot']);
    stop();
  });
});
