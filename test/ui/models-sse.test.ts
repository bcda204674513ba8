// llama.cpp router mode's GET /models/sse from our state: every model on
// connect, then a model_status per change, with our load phases as progress.
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { ControlHandler } from '../../src/control/server.ts';
import { startGateway, type Gateway } from '../../src/gateway/server.ts';
import type { TransitionEvent } from '../../src/supervise/instance.ts';
import { Dashboard } from '../../src/ui/dashboard.ts';
import { makeUiRoutes } from '../../src/ui/http.ts';
import { makeModelStatus } from '../../src/ui/models-sse.ts';
import { makeFakeTargets, quietLog, testPlan, waitUntil } from '../gateway/support.ts';

let gateway: Gateway | null = null;
afterEach(async () => {
  await gateway?.close();
  gateway = null;
});

describe('makeModelStatus', () => {
  it('maps our states to the router\'s, with progress while loading and exit_code when failed', () => {
    expect(makeModelStatus({ state: 'ready' })).toEqual({ status: 'loaded' });
    expect(makeModelStatus({ state: 'idle' })).toEqual({ status: 'unloaded' });
    expect(makeModelStatus({ state: 'starting', load: { phase: 'loading tensors', percent: 40 } })).toEqual({ status: 'loading', progress: { stages: ['text_model'], current: 'text_model', value: 0.4 } });
    expect(makeModelStatus({ state: 'fatal', last_exit: { code: 1 } })).toEqual({ status: 'unloaded', failed: true, exit_code: 1 });
  });
});

describe('GET /models/sse', () => {
  it('sends every routed model on connect, then each change once; system services are left out', async () => {
    const rows: Array<Record<string, unknown>> = [
      { name: 'sshd', state: 'ready' },
      { name: 'a', state: 'idle' },
    ];
    const control: ControlHandler = async (cmd) => (cmd === 'status' ? rows.map((r) => ({ ...r })) : cmd === 'gpus' ? { present: false, gpus: [] } : []);
    let watcher: ((i: never, e: TransitionEvent) => void) | null = null;
    const dashboard = new Dashboard({ control, watchTransitions: (w) => void (watcher = w as never) });
    const ui = makeUiRoutes({ dashboard, control, routed: (name) => name !== 'sshd', page: null });
    gateway = await startGateway({ plan: testPlan(), targets: makeFakeTargets([]), log: quietLog(), ui: () => ui });
    let text = '';
    const req = http.get({ host: '127.0.0.1', port: gateway.address!.port, path: '/models/sse', agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
    });
    const events = () => text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => JSON.parse(b.slice(6)));
    await waitUntil(() => events().length === 1, 'the first event');
    expect(events()).toEqual([{ event: 'model_status', model: 'a', data: { status: 'unloaded' } }]);
    rows[1] = { name: 'a', state: 'starting', load: { phase: 'loading tensors', percent: 50 } };
    watcher!(undefined as never, { instance: 'a', from: 'idle', to: 'starting', pid: 5, reason: 'load' });
    await waitUntil(() => events().length === 2, 'the loading event');
    rows[1] = { name: 'a', state: 'ready' };
    watcher!(undefined as never, { instance: 'a', from: 'starting', to: 'ready', pid: 5, reason: 'ready' });
    await waitUntil(() => events().length === 3, 'the loaded event');
    expect(events().slice(1)).toEqual([
      { event: 'model_status', model: 'a', data: { status: 'loading', progress: { stages: ['text_model'], current: 'text_model', value: 0.5 } } },
      { event: 'model_status', model: 'a', data: { status: 'loaded' } },
    ]);
    req.destroy();
  });
});
