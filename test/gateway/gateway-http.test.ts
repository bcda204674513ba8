// The gateway over real HTTP, in-process, with hand-driven targets and small
// upstream servers: every rule of the request path, quickly and deterministically.
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { makeLaunchPlan } from '../../src/config/launch-plan.ts';
import { startGateway, type Gateway } from '../../src/gateway/server.ts';
import { connect, makeFakeTargets, quietLog, rawRequest, sleep, startUpstream, testPlan, waitUntil, type Upstream } from './support.ts';

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup({ plan = {}, upstreamHandler, targets: extra = [] }: { plan?: Parameters<typeof testPlan>[0]; upstreamHandler?: Parameters<typeof startUpstream>[0]; targets?: Parameters<typeof makeFakeTargets>[0] } = {}) {
  const upstream = await startUpstream(upstreamHandler);
  cleanups.push(() => upstream.close());
  const targets = makeFakeTargets([{ name: 'a', aliases: ['tiny-a'], port: upstream.port }, ...extra]);
  const log = quietLog();
  const gateway = await startGateway({ plan: testPlan({ defaultInstance: 'a', ...plan }), targets, log, timeouts: { headersMs: 1000, keepAliveMs: 1000 } });
  cleanups.push(() => gateway.close());
  const port = gateway.address!.port;
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    rawRequest({ port, path, body: typeof body === 'string' ? body : JSON.stringify(body), headers });
  return { upstream, targets, gateway, port, post, log };
}

const chatBody = { model: 'tiny-a', messages: [{ role: 'user', content: 'hi' }] };

describe('local routes', () => {
  it('HEAD /, GET|HEAD /api/hello and telemetry are answered without touching an instance', async () => {
    const { port, upstream } = await setup();
    const root = await rawRequest({ port, method: 'HEAD', path: '/' });
    expect(root.status).toBe(200);
    expect(root.text).toBe('');
    expect((await rawRequest({ port, method: 'HEAD', path: '/api/hello' })).status).toBe(200);
    expect((await rawRequest({ port, method: 'GET', path: '/api/hello' })).status).toBe(200);
    const telemetry = await rawRequest({ port, path: '/api/event_logging/v2/batch', body: JSON.stringify({ events: new Array(500).fill({ x: 1 }) }) });
    expect(telemetry.status).toBe(200);
    expect(telemetry.json()).toEqual({});
    expect(upstream.seen).toEqual([]);
  });

  it('/health: 503 until every enabled instance is ready, listing states; a disabled one does not count', async () => {
    const { port, targets } = await setup({ targets: [{ name: 'b', port: 1, state: 'starting' }, { name: 'off', port: 2, state: 'stopped', enabled: false }] });
    const before = await rawRequest({ port, method: 'GET', path: '/health' });
    expect(before.status).toBe(503);
    expect(before.json()).toMatchObject({ status: 'unavailable', instances: [{ name: 'a', state: 'ready' }, { name: 'b', state: 'starting' }, { name: 'off', state: 'stopped', enabled: false }] });
    targets.setState('b', 'ready');
    const after = await rawRequest({ port, method: 'GET', path: '/health' });
    expect(after.status).toBe(200);
    expect(after.json().status).toBe('ok');
  });

  it('/v1/models: aliases, names and patterns, each with its instance and state', async () => {
    const { port } = await setup({ plan: { models: [{ pattern: 'claude-*', instance: 'b' }] }, targets: [{ name: 'b', aliases: ['tiny-b'], port: 1, state: 'backoff' }] });
    const res = await rawRequest({ port, method: 'GET', path: '/v1/models?limit=1000' });
    expect(res.status).toBe(200);
    const list = res.json();
    expect(list.data.map((m: any) => [m.id, m.instance, m.state])).toEqual([
      ['tiny-a', 'a', 'ready'],
      ['a', 'a', 'ready'],
      ['tiny-b', 'b', 'backoff'],
      ['b', 'b', 'backoff'],
      ['claude-*', 'b', 'backoff'],
    ]);
    expect(list).toMatchObject({ has_more: false, first_id: 'tiny-a', last_id: 'claude-*', object: 'list' });
    expect(list.data[0]).toMatchObject({ type: 'model', object: 'model', display_name: 'tiny-a', owned_by: 'infer-dev' });
    expect(typeof list.data[0].created_at).toBe('string');
  });

  it('unknown route 404 and wrong method 405, in the right shape', async () => {
    const { port } = await setup();
    const missing = await rawRequest({ port, method: 'GET', path: '/v1/nothing' });
    expect(missing.status).toBe(404);
    expect(missing.json()).toMatchObject({ error: { type: 'not_found_error', src: 'gateway' } });
    const wrong = await rawRequest({ port, method: 'GET', path: '/v1/messages' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('POST');
    expect(wrong.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });
});

describe('forwarding', () => {
  it('forwards the exact bytes, path and query, end-to-end headers; not the client key, but the instance key', async () => {
    const { post, upstream, targets } = await setup();
    targets.update('a', { apiKey: 'instance-key' });
    const raw = '{"model":"tiny-a",  "messages":[{"role":"user","content":"héllo"}]}';
    const res = await post('/v1/messages?beta=true', raw, { 'anthropic-version': '2023-06-01', 'anthropic-beta': 'x,y', 'x-claude-code-session-id': 's', 'x-api-key': 'client', connection: 'keep-alive' });
    expect(res.status).toBe(200);
    const [seen] = upstream.seen;
    expect(seen.url).toBe('/v1/messages?beta=true');
    expect(seen.body).toBe(raw);
    expect(seen.headers).toMatchObject({ 'anthropic-version': '2023-06-01', 'anthropic-beta': 'x,y', 'x-claude-code-session-id': 's', authorization: 'Bearer instance-key', 'content-length': String(Buffer.byteLength(raw)) });
    expect(seen.headers['x-api-key']).toBeUndefined();
  });

  it('passes upstream error statuses and bodies through unchanged', async () => {
    const { post } = await setup({
      upstreamHandler: (_req, res) => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":{"code":400,"message":"exceed_context_size_error","type":"exceed_context_size_error"}}');
      },
    });
    const res = await post('/v1/messages', chatBody);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual({ error: { code: 400, message: 'exceed_context_size_error', type: 'exceed_context_size_error' } });
  });

  it('SSE events reach the client as they are sent, not at the end', async () => {
    const { port } = await setup({
      upstreamHandler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: message_start\ndata: {}\n\n');
        setTimeout(() => res.write(':\n\n'), 1000);
        setTimeout(() => res.end('event: message_stop\ndata: {}\n\n'), 2000);
      },
    });
    const arrivals: { at: number; text: string }[] = [];
    const t0 = Date.now();
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/v1/messages', headers: { 'content-type': 'application/json' } }, (res) => {
        expect(res.headers['x-accel-buffering']).toBe('no');
        res.setEncoding('utf8');
        res.on('data', (text: string) => arrivals.push({ at: Date.now() - t0, text }));
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end(JSON.stringify({ ...chatBody, stream: true }));
    });
    expect(arrivals[0].text).toContain('message_start');
    // Seconds apart, so that a stall of the loaded test machine cannot merge or reorder them.
    expect(arrivals[0].at).toBeLessThan(800);
    expect(arrivals.some((a) => a.text === ':\n\n' && a.at >= 800 && a.at < 1800)).toBe(true);
    expect(arrivals.at(-1)!.text).toContain('message_stop');
  });
});

describe('refusals in the SDK shapes', () => {
  it('API key: 401 without it, accepted as x-api-key or Bearer; health and probes need none', async () => {
    const { post, port } = await setup({ plan: { apiKey: 'k1' } });
    const none = await post('/v1/messages', chatBody);
    expect(none.status).toBe(401);
    expect(none.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error', src: 'gateway' } });
    const wrong = await post('/v1/chat/completions', chatBody, { authorization: 'Bearer nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.json()).toMatchObject({ error: { type: 'authentication_error', code: 401 } });
    expect((await post('/v1/messages', chatBody, { 'x-api-key': 'k1' })).status).toBe(200);
    expect((await post('/v1/chat/completions', chatBody, { authorization: 'Bearer k1' })).status).toBe(200);
    expect((await rawRequest({ port, method: 'GET', path: '/v1/models' })).status).toBe(401);
    expect((await rawRequest({ port, method: 'GET', path: '/metrics' })).status).toBe(401);
    expect((await rawRequest({ port, method: 'GET', path: '/health' })).status).toBe(200);
    expect((await rawRequest({ port, method: 'HEAD', path: '/' })).status).toBe(200);
  });

  it("an instance's own api_key is not bypassed: with no gateway key the gateway asks for the instance's key", async () => {
    // Like llama-server with --api-key: 401 without the key.
    const upstream = await startUpstream((req, res) => {
      const ok = req.headers.authorization === 'Bearer inst-key';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? '{"ok":true}' : '{"error":{"code":401,"message":"Invalid API Key"}}');
    });
    cleanups.push(() => upstream.close());
    const planned = makeLaunchPlan(`[instance.x.server]\nhost = "0.0.0.0"\nport = ${upstream.port}\napi_key = "inst-key"\n`, { env: {}, file: null, isFile: () => false, which: () => null });
    const [instance] = planned.plan!.instances;
    const targets = makeFakeTargets([{ name: 'x', host: instance.host, port: instance.port, apiKey: instance.apiKey, aliases: instance.aliases }]);
    const gateway = await startGateway({ plan: { ...planned.plan!.gateway!, host: '127.0.0.1', port: 0 }, targets, log: quietLog() });
    cleanups.push(() => gateway.close());
    const port = gateway.address!.port;
    const send = (headers: Record<string, string> = {}) => rawRequest({ port, path: '/v1/chat/completions', body: JSON.stringify(chatBody), headers });
    expect((await send()).status).toBe(401);
    expect((await send({ authorization: 'Bearer wrong' })).status).toBe(401);
    expect(upstream.seen).toEqual([]);
    expect((await send({ authorization: 'Bearer inst-key' })).status).toBe(200);
    expect((await send({ 'x-api-key': 'inst-key' })).status).toBe(200);
  });

  it('malformed JSON → 400; a body that is not an object → 400', async () => {
    const { post, upstream } = await setup();
    const bad = await post('/v1/messages', '{"model": ');
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringMatching(/not valid JSON/) } });
    const array = await post('/v1/chat/completions', '[1,2]');
    expect(array.status).toBe(400);
    expect(array.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 400, message: 'request body must be a JSON object' } });
    expect(upstream.seen).toEqual([]);
  });

  it('oversized body → 413, declared or streamed', async () => {
    const { post, port } = await setup({ plan: { maxBodyBytes: 2048 } });
    const big = JSON.stringify({ ...chatBody, pad: 'x'.repeat(4096) });
    const declared = await post('/v1/messages', big);
    expect(declared.status).toBe(413);
    expect(declared.json()).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
    // Chunked, no content-length: the cap is found while reading.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/v1/chat/completions', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.write(big.slice(0, 1500));
      setTimeout(() => req.end(big.slice(1500)), 50);
    });
    expect(chunked).toBe(413);
  });

  it('unknown model with no default → 404 listing the known names', async () => {
    const { post } = await setup({ plan: { defaultInstance: null } });
    const res = await post('/v1/messages', { ...chatBody, model: 'claude-opus-4-8' });
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error', message: expect.stringContaining('tiny-a') } });
    const openai = await post('/v1/chat/completions', { ...chatBody, model: 'gpt-4' });
    expect(openai.json()).toMatchObject({ error: { type: 'not_found_error', code: 404 } });
  });

  it('fatal or stopped → 503 at once with x-should-retry: false', async () => {
    const { post, targets } = await setup();
    targets.setState('a', 'fatal');
    const t0 = Date.now();
    const fatal = await post('/v1/messages', chatBody);
    // At once: waiting would take waitReadyMs (5 s).
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(fatal.status).toBe(503);
    expect(fatal.headers['x-should-retry']).toBe('false');
    expect(fatal.json()).toMatchObject({ type: 'error', error: { type: 'api_error', message: expect.stringMatching(/fatal/) } });
    targets.setState('a', 'stopped');
    const stopped = await post('/v1/chat/completions', chatBody);
    expect(stopped.status).toBe(503);
    expect(stopped.headers['x-should-retry']).toBe('false');
    targets.update('a', { state: 'ready', enabled: false });
    expect((await post('/v1/chat/completions', chatBody)).headers['x-should-retry']).toBe('false');
  });
});

describe('request bodies', () => {
  const metric = async (port: number, name: string) => {
    const text = (await rawRequest({ port, method: 'GET', path: '/metrics' })).text;
    return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1]);
  };

  it('are held within body_memory_bytes in total: a body that does not fit waits unread, then goes, or gets 503 retry-after', async () => {
    const answers: Array<() => void> = [];
    const { post, port, upstream } = await setup({
      plan: { maxBodyBytes: 64 * 1024, bodyMemoryBytes: 64 * 1024, waitReadyMs: 1500 },
      upstreamHandler: (_req, res) => {
        answers.push(() => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{"ok":true}');
        });
      },
    });
    const body = JSON.stringify({ ...chatBody, pad: 'x'.repeat(40 * 1024) });
    const first = post('/v1/messages', body);
    await waitUntil(() => answers.length === 1, 'the first body at the instance');
    expect(await metric(port, 'supervisor_gateway_request_body_bytes')).toBe(Buffer.byteLength(body));
    // No room for a second one while the first is held: it waits, unread.
    const second = post('/v1/messages', body);
    await waitUntil(async () => (await metric(port, 'supervisor_gateway_request_bodies_waiting')) === 1, 'the second body to wait');
    expect(upstream.seen).toHaveLength(1);
    // The instance answers the first: its body is given back, and the second goes.
    answers[0]();
    expect((await first).status).toBe(200);
    await waitUntil(() => answers.length === 2, 'the second body at the instance');
    answers[1]();
    expect((await second).status).toBe(200);
    expect(await metric(port, 'supervisor_gateway_request_body_bytes')).toBe(0);

    // Held longer than wait_ready_s: 503 with retry-after, in the SDK's shape; nothing forwarded.
    const third = post('/v1/messages', body);
    await waitUntil(() => answers.length === 3, 'the third body at the instance');
    const t0 = Date.now();
    const refused = await post('/v1/chat/completions', body);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.json()).toMatchObject({ error: { type: 'unavailable_error', message: expect.stringContaining('body_memory_bytes') } });
    expect(upstream.seen).toHaveLength(3);
    answers[2]();
    expect((await third).status).toBe(200);
  });

  it('a body of many chunks reaches the instance byte for byte', async () => {
    const { port, upstream } = await setup({ plan: { maxBodyBytes: 4 * 1024 * 1024, bodyMemoryBytes: 4 * 1024 * 1024 } });
    const raw = Buffer.from(`{"model":"tiny-a","messages":[${Array.from({ length: 20_000 }, (_, i) => `{"role":"user","content":"héllo ${i} \\n 😀"}`).join(',')}],"stream":false}`);
    const res = await new Promise<number>((resolve, reject) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/v1/messages', headers: { 'content-type': 'application/json', 'content-length': raw.length } }, (r) => {
        r.resume();
        resolve(r.statusCode ?? 0);
      });
      req.on('error', reject);
      // Odd-sized writes: chunk borders fall inside strings, escapes and multi-byte characters.
      for (let at = 0; at < raw.length; at += 7919) req.write(raw.subarray(at, at + 7919));
      req.end();
    });
    expect(res).toBe(200);
    expect(Buffer.from(upstream.seen[0].body).equals(raw)).toBe(true);
  });

  it('a 30 MB body nested 30 million deep: a clear 400, and the gateway answers others meanwhile', async () => {
    const { port, upstream } = await setup({ plan: { maxBodyBytes: 32 * 1024 * 1024, bodyMemoryBytes: 32 * 1024 * 1024 } });
    const deep = Buffer.alloc(30_000_000, '[');
    deep.write('{"model":"tiny-a","a":');
    let answered = false;
    const refused = rawRequest({ port, path: '/v1/chat/completions', body: deep }).finally(() => (answered = true));
    // /health, one after another, until the body is answered: none may wait behind it.
    const healthMs: number[] = [];
    while (!answered) {
      const t0 = Date.now();
      expect((await rawRequest({ port, method: 'GET', path: '/health' })).status).toBe(200);
      healthMs.push(Date.now() - t0);
    }
    const res = await refused;
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ error: { type: 'invalid_request_error', message: 'request body is nested deeper than 512 levels', src: 'gateway' } });
    // JSON.parse of this body held the event loop for seconds; a scan that stops at depth 512 does not.
    expect(Math.max(...healthMs)).toBeLessThan(1000);
    expect(upstream.seen).toEqual([]);
  });
});

describe('waiting for an instance', () => {
  it('starting: the request is held, then forwarded once ready', async () => {
    const { post, targets, upstream } = await setup();
    targets.setState('a', 'starting');
    const pending = post('/v1/messages', chatBody);
    await waitUntil(() => targets.waits('a') === 1, 'the request to be held');
    expect(upstream.seen).toEqual([]);
    targets.setState('a', 'ready');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(upstream.seen).toHaveLength(1);
  });

  it('still starting after wait_ready_s → 503 with retry-after; count_tokens does not wait', async () => {
    const { post, targets } = await setup({ plan: { waitReadyMs: 1500 } });
    targets.setState('a', 'backoff');
    const t0 = Date.now();
    const held = await post('/v1/messages', chatBody);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1490);
    expect(held.status).toBe(503);
    expect(held.headers['retry-after']).toBe('5');
    expect(held.headers['x-should-retry']).toBeUndefined();
    expect(JSON.stringify(held.json())).not.toMatch(/overloaded/);
    const t1 = Date.now();
    const count = await post('/v1/messages/count_tokens', chatBody);
    expect(count.status).toBe(503);
    // Not held: holding would take waitReadyMs (1.5 s).
    expect(Date.now() - t1).toBeLessThan(1000);
  });

  it('an enabled instance not started yet (daemon start, background = false chain) is waited for', async () => {
    const { post, targets } = await setup();
    targets.update('a', { state: 'stopped', notStartedYet: true });
    const pending = post('/v1/messages', chatBody);
    // Each change only once the request waits on it, so it sees every state.
    await waitUntil(() => targets.waits('a') === 1, 'the request to wait while stopped');
    targets.update('a', { state: 'starting', notStartedYet: false });
    await waitUntil(() => targets.waits('a') === 2, 'the request to wait while starting');
    targets.setState('a', 'ready');
    expect((await pending).status).toBe(200);
  });

  it('a restart passing through stopped (stopping → stopped → starting → ready) is waited out', async () => {
    const { post, targets } = await setup();
    targets.setState('a', 'stopping');
    const pending = post('/v1/messages', chatBody);
    // Each change only once the request waits on it, so it sees every state.
    await waitUntil(() => targets.waits('a') === 1, 'the request to wait while stopping');
    targets.setState('a', 'stopped');
    await waitUntil(() => targets.waits('a') === 2, 'the request to wait out stopped');
    targets.setState('a', 'starting');
    await waitUntil(() => targets.waits('a') === 3, 'the request to wait while starting');
    targets.setState('a', 'ready');
    expect((await pending).status).toBe(200);
  });

  it('an instance that refuses connections while "ready" (just crashed) → 503 retry-after, not a hang', async () => {
    const { post, targets } = await setup({ plan: { waitReadyMs: 1000 } });
    targets.update('a', { port: 1 });
    const res = await post('/v1/messages', chatBody);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
  });
});

describe('an instance that resets the connection before answering', () => {
  it('died under the request (it leaves ready): sent again once, to the restarted instance', async () => {
    const restarted = await startUpstream();
    cleanups.push(() => restarted.close());
    const { post, targets, upstream } = await setup({
      upstreamHandler: (req) => {
        // Its process dies with the request unanswered; the supervisor sees the exit, then restarts it on a new port.
        req.socket.destroy();
        setTimeout(() => targets.update('a', { state: 'backoff', restarts: 1 }), 20);
        setTimeout(() => targets.update('a', { state: 'ready', port: restarted.port }), 100);
      },
    });
    const res = await post('/v1/messages', chatBody);
    expect(res.status, res.text).toBe(200);
    expect(upstream.seen).toHaveLength(1);
    expect(restarted.seen).toHaveLength(1);
  });

  it('a reset by an instance that stays ready is its answer: 502, sent once', async () => {
    const { post, upstream } = await setup({ upstreamHandler: (req) => req.socket.destroy() });
    const res = await post('/v1/messages', chatBody);
    expect(res.status).toBe(502);
    expect(res.json().error.message).toBe('instance "a" lost the connection: ECONNRESET');
    expect(upstream.seen).toHaveLength(1);
  });

  it('a request that kills every run of its instance is sent twice at most, then 502', async () => {
    let runs = 0;
    const { post, targets, upstream } = await setup({
      upstreamHandler: (req) => {
        req.socket.destroy();
        const run = ++runs;
        setTimeout(() => targets.update('a', { state: 'backoff', restarts: run }), 10);
        setTimeout(() => targets.update('a', { state: 'ready' }), 50);
      },
    });
    const res = await post('/v1/messages', chatBody);
    expect(res.status).toBe(502);
    expect(upstream.seen).toHaveLength(2);
  });
});

describe('drain', () => {
  it('waits for in-flight requests and holds new ones until released', async () => {
    let release!: () => void;
    const { post, gateway, upstream } = await setup({
      upstreamHandler: (_req, res, body) => {
        const finish = () => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(body);
        };
        if (JSON.parse(body).slow) release = finish;
        else finish();
      },
    });
    const slow = post('/v1/messages', { ...chatBody, slow: true });
    // In flight once the upstream holds it (a fixed sleep lost this race on a loaded machine).
    await waitUntil(() => upstream.seen.length === 1, 'the slow request at the instance');
    expect(gateway.stats('a')).toEqual({ inflight: 1, requests: 1, held: 0, queued: 0 });
    let drained = false;
    const draining = gateway.drain('a', 5000).then((h) => {
      drained = true;
      return h;
    });
    const held = post('/v1/messages', chatBody);
    await waitUntil(() => gateway.stats('a').held === 1, 'the new request to be held at the gate');
    // Still in flight: the drain waits, the held request stays held.
    expect(drained).toBe(false);
    expect(upstream.seen).toHaveLength(1);
    release();
    expect((await slow).status).toBe(200);
    const handle = await draining;
    expect(handle).toMatchObject({ drained: true, inflight: 0 });
    // Drained but not released: the held request still waits at the gate.
    expect(gateway.stats('a')).toEqual({ inflight: 0, requests: 1, held: 1, queued: 0 });
    expect(upstream.seen).toHaveLength(1);
    handle.release();
    expect((await held).status).toBe(200);
    expect(gateway.stats('a')).toEqual({ inflight: 0, requests: 2, held: 0, queued: 0 });
  });

  it('withDrain releases even when the restart throws', async () => {
    const { gateway, post } = await setup();
    await expect(gateway.withDrain(['a'], async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect((await post('/v1/messages', chatBody)).status).toBe(200);
  });
});

describe('broken connections', () => {
  it('a client that disconnects mid-stream aborts the upstream request', async () => {
    let upstreamClosed: Promise<void> = Promise.resolve();
    const { port, gateway } = await setup({
      upstreamHandler: (req, res) => {
        upstreamClosed = new Promise((resolve) => res.on('close', () => resolve()));
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        const timer = setInterval(() => res.write('data: {}\n\n'), 20);
        res.on('close', () => clearInterval(timer));
      },
    });
    await new Promise<void>((resolve) => {
      const req = http.request({ port, host: '127.0.0.1', method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json' } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.end(JSON.stringify({ ...chatBody, stream: true }));
    });
    await upstreamClosed;
    await waitUntil(() => gateway.stats('a').inflight === 0, 'the aborted request to leave the in-flight count');
  });

  it('an instance that dies mid-SSE: the client gets an error event and a clean end', async () => {
    const { post } = await setup({
      upstreamHandler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: message_start\ndata: {}\n\n');
        setTimeout(() => res.socket?.destroy(), 50);
      },
    });
    const res = await post('/v1/messages', { ...chatBody, stream: true });
    expect(res.status).toBe(200);
    expect(res.text).toMatch(/^event: message_start\ndata: \{\}\n\nevent: error\ndata: \{"type":"error","error":\{"type":"api_error","message":"instance \\"a\\" closed the connection/);
  });

  it('an instance that dies mid-JSON: the client connection is cut, not a truncated 200', async () => {
    const { port } = await setup({
      upstreamHandler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"partial":');
        setTimeout(() => res.socket?.destroy(), 50);
      },
    });
    await expect(rawRequest({ port, path: '/v1/chat/completions', body: JSON.stringify(chatBody) })).rejects.toThrow(/aborted|socket hang up|ECONNRESET/);
  });
});

describe('connections', () => {
  it('500 concurrent connections and byte-by-byte slow clients do not stall other requests; header timeout enforced', async () => {
    const { port, post } = await setup();
    const sockets = await Promise.all(Array.from({ length: 500 }, () => connect(port)));
    const closed = sockets.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
    for (const s of sockets) s.on('error', () => undefined);
    const head = 'POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n';
    let i = 0;
    const drip = setInterval(() => {
      const ch = head[i++ % head.length];
      for (const s of sockets) if (!s.destroyed) s.write(ch);
    }, 20);
    try {
      const t0 = Date.now();
      const results = await Promise.all(Array.from({ length: 20 }, () => post('/v1/messages', chatBody)));
      expect(results.every((r) => r.status === 200)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(2000);
      // headersMs = 1000 in this suite: every slow client is cut within a few checking intervals.
      await Promise.race([Promise.all(closed), sleep(5000).then(() => Promise.reject(new Error('slow clients were not cut off')))]);
    } finally {
      clearInterval(drip);
      for (const s of sockets) s.destroy();
    }
  });

  it('an idle keep-alive connection is closed after keepAliveMs', async () => {
    const { port } = await setup();
    const socket = await connect(port);
    const t0 = Date.now();
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - t0)));
    socket.write('HEAD / HTTP/1.1\r\nHost: x\r\n\r\n');
    socket.resume();
    const after = await closed;
    expect(after).toBeGreaterThanOrEqual(900);
    expect(after).toBeLessThan(4000);
  });
});

describe('metrics and reload', () => {
  it('/metrics counts requests, in-flight, durations and upstream errors per instance', async () => {
    const { post, port, targets } = await setup();
    await post('/v1/messages', chatBody);
    await post('/v1/messages', '{');
    targets.update('a', { port: 1 });
    await post('/v1/messages/count_tokens', chatBody);
    const text = (await rawRequest({ port, method: 'GET', path: '/metrics' })).text;
    expect(text).toContain('supervisor_instance_state{instance="a",state="ready"} 1');
    expect(text).toContain('supervisor_instance_restarts_total{instance="a"} 0');
    expect(text).toContain('supervisor_gateway_requests_total{instance="a",code="200"} 1');
    expect(text).toContain('supervisor_gateway_requests_total{instance="",code="400"} 1');
    expect(text).toContain('supervisor_gateway_requests_in_flight{instance="a"} 0');
    expect(text).toMatch(/supervisor_gateway_upstream_errors_total\{instance="a",kind="refused"\} [1-9]/);
    expect(text).toMatch(/supervisor_gateway_request_duration_seconds_bucket\{instance="a",le="\+Inf"\} 2/);
  });

  it('reload: new routes at once; a new port moves the listener', async () => {
    const upstreamB = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"from":"b"}');
    });
    cleanups.push(() => upstreamB.close());
    const { gateway, post, targets } = await setup({ targets: [{ name: 'b', port: upstreamB.port }] });
    void targets;
    expect((await post('/v1/messages', { model: 'claude-haiku-4-5' })).text).toBe('{"ok":true}');
    await gateway.reload(testPlan({ defaultInstance: 'a', models: [{ pattern: 'claude-*haiku*', instance: 'b' }] }));
    // port 0 again = a new ephemeral port, so the listener moved too.
    const port = gateway.address!.port;
    const res = await rawRequest({ port, path: '/v1/messages', body: JSON.stringify({ model: 'claude-haiku-4-5' }) });
    expect(res.text).toBe('{"from":"b"}');
    await gateway.reload(testPlan({ enabled: false }));
    expect(gateway.address).toBeNull();
  });
});
