// The proof on the real thing: real llama-server processes from one TOML,
// serving the generated tiny model, supervised by the built daemon.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { isAlive } from '../../src/process/proc.ts';
import { startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { rawRequest } from '../gateway/support.ts';
import { freePorts, llamaServerPath } from '../support/llama-server.ts';

let modelDir: string;
let model: string;
let daemon: DaemonHandle;
let ports: { a: number; b: number; broken: number; gateway: number };

function config(ctxB: number): string {
  return `
[master]
llama_cpp_path = ${JSON.stringify(llamaServerPath())}

[instance.control]
log_dir = "@DIR@"
backoff_initial_ms = 200
stop_timeout_s = 5

[instance.server]
host = "127.0.0.1"
model = ${JSON.stringify(model)}
threads = 1

[instance.a.server]
port = ${ports.a}
alias = "tiny-a"
ctx_size = 2048

[instance.b.server]
port = ${ports.b}
alias = "tiny-b"
ctx_size = ${ctxB}

[instance.broken.server]
port = ${ports.broken}
extra_args = ["--no-such-flag"]

[gateway]
host = "127.0.0.1"
port = ${ports.gateway}
default = "a"
`;
}

// A fresh connection each time: a pooled one may still be the killed server's.
async function chat(port: number): Promise<{ status: number; body: any }> {
  const res = await rawRequest({ port, path: '/v1/chat/completions', body: JSON.stringify({ messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 32 }) });
  return { status: res.status, body: res.json() };
}

beforeAll(async () => {
  modelDir = mkdtempSync(join(tmpdir(), 'tiny-'));
  model = join(modelDir, 'tiny.gguf');
  await writeTinyModel(model);
  const [a, b, broken, gateway] = await freePorts(4);
  ports = { a, b, broken, gateway };
  daemon = await startDaemon(config(2048));
});

afterAll(async () => {
  await daemon?.stop();
  rmSync(modelDir, { recursive: true, force: true });
});

describe('real llama-server instances', () => {
  it('both become ready and answer a chat completion', async () => {
    await daemon.waitForState('a', 'ready', 60_000);
    await daemon.waitForState('b', 'ready', 60_000);
    for (const port of [ports.a, ports.b]) {
      const { status, body } = await chat(port);
      expect(status).toBe(200);
      expect(typeof body.choices[0].message.content).toBe('string');
    }
  });

  it("the daemon's gateway routes by alias, and status counts the requests", async () => {
    const res = await fetch(`http://127.0.0.1:${ports.gateway}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny-b', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 }),
    });
    expect(res.status).toBe(200);
    await res.json();
    const models = (await (await fetch(`http://127.0.0.1:${ports.gateway}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(expect.arrayContaining(['tiny-a', 'tiny-b']));
    const b = daemon.status().find((r) => r.name === 'b')!;
    expect(b).toMatchObject({ requests: 1, inflight: 0 });
    expect(daemon.status().find((r) => r.name === 'a')!.requests).toBe(0);
  });

  it('an unknown flag is fatal at once, with the offending log line, and no restart loop', async () => {
    const row = await daemon.waitForState('broken', 'fatal', 30_000);
    expect(row.last_exit.reason).toMatch(/no-such-flag/);
    await new Promise((r) => setTimeout(r, 1000));
    const again = daemon.status().find((r) => r.name === 'broken')!;
    expect(again.state).toBe('fatal');
    expect(again.restarts).toBe(0);
  });

  it('kill -9 → restarted, ready again, restarts = 1', async () => {
    const before = daemon.status().find((r) => r.name === 'a')!;
    process.kill(before.pid, 'SIGKILL');
    await daemon.waitFor(() => {
      const row = daemon.status().find((r) => r.name === 'a')!;
      return row.state === 'ready' && row.pid !== before.pid;
    }, 60_000, 'a to be ready again');
    const after = daemon.status().find((r) => r.name === 'a')!;
    expect(after.restarts).toBe(1);
    expect(after.last_exit).toMatchObject({ signal: 'SIGKILL' });
    expect((await chat(ports.a)).status).toBe(200);
  });

  it('reload after changing one ctx_size restarts only that instance', async () => {
    const before = daemon.status();
    const pidA = before.find((r) => r.name === 'a')!.pid;
    const pidB = before.find((r) => r.name === 'b')!.pid;
    daemon.writeConfig(config(4096));
    const reload = daemon.cli('reload', '--json');
    expect(reload.code).toBe(0);
    expect(JSON.parse(reload.stdout)).toMatchObject({ restarted: ['b'], started: [], stopped: [] });
    const b = await daemon.waitForState('b', 'ready', 60_000);
    expect(b.pid).not.toBe(pidB);
    expect(daemon.status().find((r) => r.name === 'a')!.pid).toBe(pidA);
    const logs = daemon.cli('logs', 'b', '-n', '400');
    expect(logs.stdout).toMatch(/--ctx-size 4096/);
  });

  it('stopping all leaves no llama-server process', async () => {
    const pids = daemon.status().map((r) => r.pid).filter((p) => p !== null) as number[];
    expect(pids.length).toBe(2);
    const stop = daemon.cli('stop', '--all');
    expect(stop.code).toBe(0);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    for (const name of ['a', 'b', 'broken']) expect(await daemon.processesOf(name)).toEqual([]);
    expect(daemon.status().every((r) => r.state === 'stopped')).toBe(true);
  });
});
