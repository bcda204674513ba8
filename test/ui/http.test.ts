// The dashboard's routes through a real gateway: the page, the key rule for
// its data, and what keeps an action from being run cross-site.
import { mkdtempSync, rmSync, writeFileSync, appendFileSync, renameSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ControlHandler } from '../../src/control/server.ts';
import { startGateway, type Gateway } from '../../src/gateway/server.ts';
import { Dashboard } from '../../src/ui/dashboard.ts';
import { makeUiRoutes, refuseAction } from '../../src/ui/http.ts';
import { makeFakeTargets, quietLog, rawRequest, testPlan, waitUntil } from '../gateway/support.ts';

let gateway: Gateway | null = null;
let dir: string | null = null;
afterEach(async () => {
  await gateway?.close();
  gateway = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

async function setup(apiKey: string | null = null) {
  dir = mkdtempSync(join(tmpdir(), 'ui-'));
  const logFile = join(dir, 'a.log');
  writeFileSync(logFile, 'one\ntwo\n');
  const actions: Array<{ cmd: string; args: unknown }> = [];
  const control: ControlHandler = async (cmd, args) => {
    if (cmd === 'status') return [{ name: 'a', state: 'ready' }];
    if (cmd === 'gpus') return { present: false, error: null, gpus: [] };
    if (cmd === 'boot-steps') return [];
    if (cmd === 'logs') {
      if (args.name !== 'a') throw new Error(`no instance named "${String(args.name)}"`);
      return { file: logFile, lines: ['one', 'two'] };
    }
    actions.push({ cmd, args });
    if (cmd === 'stop') return [{ name: 'a', state: 'stopped' }];
    throw Object.assign(new Error('a: cannot load: not on demand'), { exitCode: 1 });
  };
  const dashboard = new Dashboard({ control, watchTransitions: () => undefined });
  const ui = makeUiRoutes({ dashboard, control, page: { plain: Buffer.from('<html>page</html>'), gzip: Buffer.from('') } });
  gateway = await startGateway({ plan: testPlan({ apiKey }), targets: makeFakeTargets([]), log: quietLog(), ui: () => ui });
  return { port: gateway.address!.port, actions, logFile };
}

// Collects an SSE stream's text until `until` holds.
function readSse(port: number, path: string, headers: Record<string, string> = {}) {
  let text = '';
  let status = 0;
  const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
    status = res.statusCode ?? 0;
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
  });
  req.on('error', () => undefined);
  return { text: () => text, status: () => status, close: () => req.destroy() };
}

const action = (port: number, body: object, headers: Record<string, string> = { 'x-supervisor-ui': '1' }) =>
  rawRequest({ port, path: '/ui/action', headers, body: JSON.stringify(body) });

describe('/ui routes', () => {
  it('serves the page to anyone (it asks for the key itself), with a CSP that allows nothing from elsewhere', async () => {
    const { port } = await setup('k');
    const res = await rawRequest({ port, method: 'GET', path: '/ui' });
    expect(res.status).toBe(200);
    expect(res.text).toBe('<html>page</html>');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
  });

  it('with an api_key, events, logs and actions need it (Bearer)', async () => {
    const { port, actions } = await setup('k');
    expect((await rawRequest({ port, method: 'GET', path: '/ui/events' })).status).toBe(401);
    expect((await action(port, { action: 'stop', name: 'a' })).status).toBe(401);
    const events = readSse(port, '/ui/events', { authorization: 'Bearer k' });
    await waitUntil(() => events.text().includes('event: snapshot'), 'the snapshot');
    events.close();
    const ok = await action(port, { action: 'stop', name: 'a' }, { 'x-supervisor-ui': '1', authorization: 'Bearer k' });
    expect(ok.json()).toEqual({ ok: true, result: [{ name: 'a', state: 'stopped' }] });
    expect(actions).toEqual([{ cmd: 'stop', args: { names: ['a'] } }]);
  });

  it('an action without the page header, or from another origin, is refused and nothing runs', async () => {
    const { port, actions } = await setup();
    const bare = await action(port, { action: 'stop', name: 'a' }, {});
    expect(bare.status).toBe(403);
    expect(bare.json().error).toMatch(/x-supervisor-ui/);
    const cross = await action(port, { action: 'stop', name: 'a' }, { 'x-supervisor-ui': '1', origin: 'http://evil.example' });
    expect(cross.status).toBe(403);
    expect(cross.json().error).toMatch(/cross-site/);
    // A preflight is never granted: a browser would not even send the cross-site POST.
    const preflight = await rawRequest({ port, method: 'OPTIONS', path: '/ui/action', headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' } });
    expect(preflight.status).toBe(405);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    expect(actions).toEqual([]);
  });

  it('a same-origin action runs and reports the daemon\'s answer, a refusal with its message; a bad body says what is expected', async () => {
    const { port } = await setup();
    const same = await action(port, { action: 'stop', name: 'a' }, { 'x-supervisor-ui': '1', origin: `http://127.0.0.1:${port}` });
    expect(same.status).toBe(200);
    const refused = await action(port, { action: 'load', name: 'a' });
    expect(refused.status).toBe(409);
    expect(refused.json()).toEqual({ ok: false, error: 'a: cannot load: not on demand', exit_code: 1 });
    const wrong = await action(port, { action: 'reload', name: 'a' });
    expect(wrong.status).toBe(400);
    expect(wrong.json().error).toBe('"action" must be one of start, stop, restart, load, unload');
  });

  it('without an api_key, an action from a non-loopback peer is refused', () => {
    const req = { headers: { 'x-supervisor-ui': '1', host: '10.0.0.5:8080' }, socket: { remoteAddress: '10.0.0.7' } } as never;
    expect(refuseAction(req, { keyed: false })).toEqual({ status: 403, message: 'without a gateway api_key, actions are accepted from loopback only' });
    expect(refuseAction(req, { keyed: true })).toBeNull();
    const local = { headers: { 'x-supervisor-ui': '1' }, socket: { remoteAddress: '::ffff:127.0.0.1' } } as never;
    expect(refuseAction(local, { keyed: false })).toBeNull();
  });

  it('tails a log: its history, then lines as written, across a rotation; an unknown instance is a 404', async () => {
    const { port, logFile } = await setup();
    const tail = readSse(port, '/ui/log?name=a');
    await waitUntil(() => tail.text().includes('["one","two"]'), 'the history');
    appendFileSync(logFile, 'three\n');
    await waitUntil(() => tail.text().includes('["three"]'), 'the new line');
    renameSync(logFile, `${logFile}.1`);
    writeFileSync(logFile, 'after rotation\n');
    await waitUntil(() => tail.text().includes('["after rotation"]'), 'the line after the rotation');
    tail.close();
    const missing = await rawRequest({ port, method: 'GET', path: '/ui/log?name=nope' });
    expect(missing.status).toBe(404);
    expect(missing.json().error).toBe('no instance named "nope"');
  });
});
