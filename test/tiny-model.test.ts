// The generated tiny model is served by a real llama-server: chat and
// completion endpoints answer, output is printable ASCII, and answers end fast.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTinyModel, writeTinyModel } from '../tools/tiny-model/tiny-model.ts';
import { freePort, llamaServerPath } from './support/llama-server.ts';

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

describe('makeTinyModel', () => {
  it('is a GGUF v3 file of about 0.5 MB, deterministic per seed', () => {
    const a = makeTinyModel({ seed: 7 });
    expect(a.subarray(0, 4).toString('ascii')).toBe('GGUF');
    expect(a.readUInt32LE(4)).toBe(3);
    expect(a.length).toBeGreaterThan(400_000);
    expect(a.length).toBeLessThan(700_000);
    expect(a.equals(makeTinyModel({ seed: 7 }))).toBe(true);
    expect(a.equals(makeTinyModel({ seed: 8 }))).toBe(false);
  });
});

describe('tiny model on a real llama-server', () => {
  let dir: string;
  let server: ChildProcess;
  let base: string;
  let stderr = '';

  async function post(path: string, body: unknown): Promise<{ status: number; json: any }> {
    const res = await fetch(base + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = { raw: text };
    }
    return { status: res.status, json };
  }

  async function waitHealthy(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (server.exitCode !== null || server.signalCode !== null) {
        throw new Error(`llama-server exited (${server.exitCode ?? server.signalCode}):\n${stderr.slice(-3000)}`);
      }
      const status = await fetch(`${base}/health`).then(
        (r) => r.status,
        () => 0,
      );
      if (status === 200) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`llama-server not healthy after ${timeoutMs} ms:\n${stderr.slice(-3000)}`);
  }

  function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
    if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  beforeAll(async () => {
    const bin = llamaServerPath(); // may build llama-server once (minutes)
    dir = await mkdtemp(join(tmpdir(), 'tiny-model-'));
    const model = join(dir, 'tiny.gguf');
    await writeTinyModel(model, { seed: 1 });
    expect((await readFile(model)).equals(makeTinyModel({ seed: 1 }))).toBe(true);

    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(bin, ['-m', model, '--port', String(port), '--host', '127.0.0.1', '-c', '4096'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    server.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-20_000);
    });
    await waitHealthy(30_000);
  });

  afterAll(async () => {
    if (server && !(await exited(server, 0))) {
      server.kill('SIGKILL');
      await exited(server, 5_000);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('answers a chat completion with printable ASCII', async () => {
    const { status, json } = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Say hello.' }],
      max_tokens: 200,
      seed: 1,
    });
    expect(status, JSON.stringify(json)).toBe(200);
    const content = json.choices[0].message.content;
    expect(typeof content).toBe('string');
    expect(content).toMatch(PRINTABLE_ASCII);
  });

  it('accepts a prompt with characters outside the vocabulary', async () => {
    const { status, json } = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'héllo ✓ 日本語 😀' }],
      max_tokens: 50,
      seed: 2,
    });
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json.choices[0].message.content).toMatch(PRINTABLE_ASCII);
  });

  it('ends a long prompt with a huge max_tokens quickly, by </s>', async () => {
    const content = 'The quick brown fox jumps over the lazy dog. '.repeat(67).slice(0, 3000);
    const started = Date.now();
    const { status, json } = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content }],
      max_tokens: 32_000,
      seed: 3,
    });
    const elapsed = Date.now() - started;
    expect(status, JSON.stringify(json)).toBe(200);
    expect(json.choices[0].finish_reason).toBe('stop');
    expect(elapsed).toBeLessThan(20_000);
  });

  it('answers a plain completion', async () => {
    const { status, json } = await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 16, seed: 4 });
    expect(status, JSON.stringify(json)).toBe(200);
    expect(typeof json.choices[0].text).toBe('string');
    expect(json.choices[0].text).toMatch(PRINTABLE_ASCII);
  });

  it('exits on SIGTERM', async () => {
    server.kill('SIGTERM');
    expect(await exited(server, 5_000)).toBe(true);
    expect(server.signalCode === 'SIGTERM' || server.exitCode === 0).toBe(true);
  });
});
