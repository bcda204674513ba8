// The gateway on the real thing: two llama-server instances (different
// aliases; names unlike other suites', since a crash sweeps processes by instance name) serving the tiny model under a real Supervisor, driven by the
// official Anthropic and OpenAI SDKs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../src/gateway/server.ts';
import { fromSupervisor } from '../../src/gateway/targets.ts';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { freePorts, llamaServerPath } from '../support/llama-server.ts';
import { quietLog, rawRequest, sleep } from './support.ts';
import { startSupervised, type Supervised } from './supervised.ts';

const KEY = 'test-key';
let modelDir: string;
let sv: Supervised;
let ports: { a: number; b: number };
let anthropic: Anthropic;
let openai: OpenAI;

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'tiny-'));
  const model = join(modelDir, 'tiny.gguf');
  await writeTinyModel(model);
  const [a, b] = await freePorts(2);
  ports = { a, b };
  sv = await startSupervised({
    instancesToml: `
[master]
llama_cpp_path = ${JSON.stringify(llamaServerPath())}

[instance.control]
log_dir = "@DIR@"
backoff_initial_ms = 100
# llama-server ignores SIGTERM while it streams: keep the SIGKILL fallback short for the drain-timeout test.
stop_timeout_s = 1

[instance.server]
host = "127.0.0.1"
model = ${JSON.stringify(model)}
threads = 1
ctx_size = 8192
parallel = 2
ignore_eos = true

[instance.gw-a.server]
port = ${ports.a}
alias = "tiny-a"

[instance.gw-b.server]
port = ${ports.b}
alias = "tiny-b"
`,
    gatewayToml: `
[gateway]
api_key = "${KEY}"
default = "gw-a"
wait_ready_s = 30
[gateway.models]
"claude-*haiku*" = "gw-b"
"claude-*" = "gw-a"
`,
  });
  anthropic = new Anthropic({ baseURL: sv.url, apiKey: KEY, maxRetries: 0 });
  openai = new OpenAI({ baseURL: `${sv.url}/v1`, apiKey: KEY, maxRetries: 0 });
  await sv.waitState('gw-a', 'ready');
  await sv.waitState('gw-b', 'ready');
});

afterAll(async () => {
  await sv?.close();
  if (modelDir) rmSync(modelDir, { recursive: true, force: true });
});

const user = [{ role: 'user' as const, content: 'Say hello.' }];

// The instance's slots: is any of them generating?
async function slotsBusy(port: number): Promise<boolean> {
  const slots = (await (await fetch(`http://127.0.0.1:${port}/slots`)).json()) as { is_processing: boolean }[];
  return slots.some((s) => s.is_processing);
}

describe('Anthropic SDK through the gateway', () => {
  it('messages.create, routed by alias and by pattern to the right instance', async () => {
    const before = { a: sv.gateway.stats('gw-a').requests, b: sv.gateway.stats('gw-b').requests };
    const byAlias = await anthropic.messages.create({ model: 'tiny-b', max_tokens: 4, messages: user });
    expect(byAlias).toMatchObject({ type: 'message', role: 'assistant', model: 'tiny-b' });
    expect(byAlias.content[0].type).toBe('text');
    const haiku = await anthropic.messages.create({ model: 'claude-haiku-4-5-20251001', max_tokens: 4, messages: user });
    expect(haiku.model).toBe('tiny-b');
    const sonnet = await anthropic.messages.create({ model: 'claude-sonnet-4-6[1m]', max_tokens: 4, messages: user });
    expect(sonnet.model).toBe('tiny-a');
    const other = await anthropic.messages.create({ model: 'some-unknown-model', max_tokens: 4, messages: user });
    expect(other.model).toBe('tiny-a');
    expect(sv.gateway.stats('gw-a').requests - before.a).toBe(2);
    expect(sv.gateway.stats('gw-b').requests - before.b).toBe(2);
  });

  it('messages.stream: every event type arrives, in order, with the text', async () => {
    const stream = anthropic.messages.stream({ model: 'claude-opus-4-8', max_tokens: 8, messages: user });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    const collapsed = types.filter((t, i) => t !== types[i - 1]);
    expect(collapsed).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    expect(types.filter((t) => t === 'content_block_delta').length).toBeGreaterThan(1);
    const final = await stream.finalMessage();
    expect(final.model).toBe('tiny-a');
    expect(final.usage.output_tokens).toBe(8);
    expect(final.stop_reason).toBe('max_tokens');
  });

  it('countTokens', async () => {
    const count = await anthropic.messages.countTokens({ model: 'claude-haiku-4-5', messages: user });
    expect(count.input_tokens).toBeGreaterThan(0);
  });

  it('a wrong key: AuthenticationError in the Anthropic shape, from the gateway', async () => {
    const wrong = new Anthropic({ baseURL: sv.url, apiKey: 'nope', maxRetries: 0 });
    const err = await wrong.messages.create({ model: 'tiny-a', max_tokens: 1, messages: user }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    expect((err as InstanceType<typeof Anthropic.AuthenticationError>).error).toMatchObject({ type: 'error', error: { type: 'authentication_error', src: 'gateway' } });
  });
});

describe('OpenAI SDK through the gateway', () => {
  it('chat completions, not streamed, routed by alias', async () => {
    const res = await openai.chat.completions.create({ model: 'tiny-b', max_tokens: 4, messages: user });
    expect(res.model).toBe('tiny-b');
    expect(typeof res.choices[0].message.content).toBe('string');
  });

  it('chat completions, streamed, routed by pattern', async () => {
    const stream = await openai.chat.completions.create({ model: 'claude-3-5-haiku-20241022', max_tokens: 6, messages: user, stream: true });
    let text = '';
    let model = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      model = chunk.model;
      text += chunk.choices[0]?.delta?.content ?? '';
    }
    expect(model).toBe('tiny-b');
    expect(chunks).toBeGreaterThan(2);
    expect(text.length).toBeGreaterThan(0);
  });
});

describe('local routes and refusals', () => {
  it('HEAD /, /api/hello, telemetry; /v1/models lists both instances', async () => {
    expect((await fetch(sv.url, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${sv.url}/api/hello`, { method: 'HEAD' })).status).toBe(200);
    const telemetry = await fetch(`${sv.url}/api/event_logging/batch`, { method: 'POST', body: '{"events":[]}', headers: { 'content-type': 'application/json' } });
    expect(telemetry.status).toBe(200);
    expect(await telemetry.json()).toEqual({});
    const models = await openai.models.list();
    const ids = models.data.map((m) => m.id);
    expect(ids).toEqual(expect.arrayContaining(['tiny-a', 'gw-a', 'tiny-b', 'gw-b', 'claude-*haiku*', 'claude-*']));
    expect(models.data.find((m) => m.id === 'tiny-b')).toMatchObject({ instance: 'gw-b', state: 'ready' });
  });

  it('malformed JSON 400, oversized 413, unknown model 404 (no default), each in its shape', async () => {
    const headers = { 'x-api-key': KEY };
    const bad = await rawRequest({ port: sv.port, path: '/v1/messages', body: '{"model":', headers });
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', src: 'gateway' } });
    const big = await rawRequest({ port: sv.port, path: '/v1/chat/completions', body: `{"pad":"${'x'.repeat(sv.gatewayPlan.maxBodyBytes)}"}`, headers });
    expect(big.status).toBe(413);
    expect(big.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 413, src: 'gateway' } });
    // A second gateway on the same instances, with no default: unknown models are 404.
    const strict = await startGateway({ plan: { ...sv.gatewayPlan, defaultInstance: null, apiKey: null }, targets: fromSupervisor(sv.supervisor), log: quietLog() });
    try {
      const client = new Anthropic({ baseURL: `http://127.0.0.1:${strict.address!.port}`, apiKey: 'x', maxRetries: 0 });
      const err = await client.messages.create({ model: 'gpt-4', max_tokens: 1, messages: user }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Anthropic.NotFoundError);
      expect((err as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({ error: { type: 'not_found_error', message: expect.stringContaining('tiny-a') } });
      expect((await client.messages.create({ model: 'claude-opus-4-8', max_tokens: 1, messages: user })).model).toBe('tiny-a');
    } finally {
      await strict.close();
    }
  });
});

describe('broken connections', () => {
  it('a client that disconnects mid-stream: the instance slot is free again', async () => {
    expect(await slotsBusy(ports.b)).toBe(false);
    const controller = new AbortController();
    const res = await fetch(`${sv.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': KEY },
      body: JSON.stringify({ model: 'tiny-b', max_tokens: 30_000, stream: true, messages: user }),
      signal: controller.signal,
    });
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('content_block_delta')) seen += new TextDecoder().decode((await reader.read()).value);
    // Negative control: the slot is busy while the stream runs (30k tokens take far longer than this test).
    expect(await slotsBusy(ports.b)).toBe(true);
    controller.abort();
    const t0 = Date.now();
    while (await slotsBusy(ports.b)) {
      expect(Date.now() - t0).toBeLessThan(3000);
      await sleep(50);
    }
    expect(sv.gateway.stats('gw-b').inflight).toBe(0);
  });

  it('an instance killed mid-stream: the SDK gets a clean error, the gateway stays up, the next request waits for the restart', async () => {
    const pid = sv.supervisor.instance('gw-b')!.status().pid!;
    const stream = anthropic.messages.stream({ model: 'tiny-b', max_tokens: 30_000, messages: user });
    let deltas = 0;
    const err = await (async () => {
      for await (const event of stream) {
        if (event.type === 'content_block_delta' && ++deltas === 5) process.kill(pid, 'SIGKILL');
      }
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'api_error', message: expect.stringMatching(/closed the connection/), src: 'gateway' } });
    // The gateway stays up: /health answers, the other instance is still ready, this one is on its way back
    // (200 only once it is ready again).
    const health = await fetch(`${sv.url}/health`);
    const states = Object.fromEntries(((await health.json()) as { instances: { name: string; state: string }[] }).instances.map((i) => [i.name, i.state]));
    expect(states['gw-a']).toBe('ready');
    expect(['ready', 'backoff', 'starting']).toContain(states['gw-b']);
    expect(health.status).toBe(states['gw-b'] === 'ready' ? 200 : 503);
    // Crashed → backoff → starting → ready: held by the gateway, then served.
    const again = await anthropic.messages.create({ model: 'tiny-b', max_tokens: 2, messages: user });
    expect(again.model).toBe('tiny-b');
    expect(sv.supervisor.instance('gw-b')!.status().pid).not.toBe(pid);
    expect(sv.supervisor.instance('gw-b')!.status().restarts).toBe(1);
  });
});

describe('drain', () => {
  it('a restart during an in-flight stream lets the stream finish first; a request meanwhile waits and succeeds', async () => {
    const instance = sv.supervisor.instance('gw-a')!;
    const pid = instance.status().pid;
    const order: string[] = [];
    const stream = anthropic.messages.stream({ model: 'tiny-a', max_tokens: 1500, messages: user });
    await new Promise<void>((resolve) => stream.on('streamEvent', (e) => e.type === 'content_block_delta' && resolve()));
    // In flight when the drain starts, finished when the restart begins.
    expect(sv.gateway.stats('gw-a').inflight).toBe(1);
    let inflightAtRestart = -1;
    const restart = sv.gateway.withDrain(['gw-a'], async () => {
      inflightAtRestart = sv.gateway.stats('gw-a').inflight;
      order.push('restart begins');
      await instance.restart('test restart');
      order.push('restarted');
    });
    // withDrain closed the gate before returning: this request is held there.
    const during = anthropic.messages.create({ model: 'tiny-a', max_tokens: 2, messages: user }).then((m) => {
      order.push('held request served');
      return m;
    });
    // Had the restart cut the stream, finalMessage would throw.
    const final = await stream.finalMessage();
    expect(final.usage.output_tokens).toBe(1500);
    expect(final.stop_reason).toBe('max_tokens');
    await restart;
    expect((await during).model).toBe('tiny-a');
    expect(order).toEqual(['restart begins', 'restarted', 'held request served']);
    expect(inflightAtRestart).toBe(0);
    expect(instance.status().pid).not.toBe(pid);
  });

  it('drain_timeout passes: the restart goes ahead and the cut stream ends with a clean error', async () => {
    const instance = sv.supervisor.instance('gw-a')!;
    const stream = anthropic.messages.stream({ model: 'tiny-a', max_tokens: 30_000, messages: user });
    stream.on('error', () => undefined); // asserted through finalMessage below
    await new Promise<void>((resolve) => stream.on('streamEvent', (e) => e.type === 'content_block_delta' && resolve()));
    const handle = await sv.gateway.drain('gw-a', 300);
    expect(handle).toMatchObject({ drained: false, inflight: 1 });
    try {
      await instance.restart('test restart after drain timeout');
    } finally {
      handle.release();
    }
    const err = await stream.finalMessage().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((await anthropic.messages.create({ model: 'tiny-a', max_tokens: 2, messages: user })).model).toBe('tiny-a');
  });
});
