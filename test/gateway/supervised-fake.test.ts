// The gateway on a real Supervisor whose instances are the fake server:
// loading that takes time, and an instance that is fatal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeInstance, fakeMaster } from '../support/daemon.ts';
import { freePorts } from '../support/llama-server.ts';
import { rawRequest } from './support.ts';
import { startSupervised, type Supervised } from './supervised.ts';

let sv: Supervised;
let ports: { slow: number; broken: number };

beforeAll(async () => {
  const [slow, broken] = await freePorts(2);
  ports = { slow, broken };
  sv = await startSupervised({
    instancesToml: `${fakeMaster()}
[instance.control]
log_dir = "@DIR@"
${fakeInstance('gw-slow', ports.slow, ['--ready-after-ms', '1500'])}
alias = "slow-model"
${fakeInstance('gw-broken', ports.broken, ['--exit-immediately', '3'], 'restart = "never"')}
`,
    gatewayToml: '[gateway]\nwait_ready_s = 20\n',
  });
});

afterAll(async () => {
  await sv?.close();
});

describe('gateway over supervised fake servers', () => {
  it('requests during loading wait, then are served by the right instance; one listener however many wait', async () => {
    expect(sv.supervisor.instance('gw-slow')!.state).not.toBe('ready');
    // The supervisor's own watcher is there before any request; the gateway adds at most one of its own.
    const before = sv.supervisor.instance('gw-slow')!.listenerCount('transition');
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const t0 = Date.now();
      const body = JSON.stringify({ model: 'slow-model', messages: [] });
      const pending = Array.from({ length: 20 }, () => rawRequest({ port: sv.port, path: '/v1/chat/completions', body }));
      await new Promise((r) => setTimeout(r, 200));
      expect(sv.supervisor.instance('gw-slow')!.listenerCount('transition')).toBeLessThanOrEqual(before + 1);
      const results = await Promise.all(pending);
      for (const res of results) {
        expect(res.status, res.text).toBe(200);
        expect(res.json().fake_server.port).toBe(ports.slow);
      }
      expect(Date.now() - t0).toBeGreaterThan(500);
      expect(sv.gateway.stats('gw-slow')).toEqual({ inflight: 0, requests: 20, held: 0, queued: 0 });
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });

  it('a fatal instance: 503 at once, x-should-retry false, Anthropic shape on /v1/messages', async () => {
    await sv.waitState('gw-broken', 'fatal');
    const t0 = Date.now();
    const res = await rawRequest({ port: sv.port, path: '/v1/messages', body: JSON.stringify({ model: 'gw-broken', max_tokens: 1, messages: [] }) });
    // At once: waiting would take wait_ready_s (20 s); the margin is for a loaded machine.
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(res.status).toBe(503);
    expect(res.headers['x-should-retry']).toBe('false');
    expect(res.json()).toEqual({ type: 'error', error: { type: 'api_error', message: 'instance "gw-broken" is fatal: exited with code 3; last output: fake-server: exiting immediately with code 3 (restart = "never"); start it with "supervisor start gw-broken"', src: 'gateway' } });
  });

  it('/health lists the states and is 503 while one instance is fatal', async () => {
    const res = await rawRequest({ port: sv.port, method: 'GET', path: '/health' });
    expect(res.status).toBe(503);
    expect(res.json().instances.map((i: any) => [i.name, i.state])).toEqual([
      ['gw-slow', 'ready'],
      ['gw-broken', 'fatal'],
    ]);
  });
});
