// llama.cpp RPC on one machine (issue 15): two real rpc-server workers and a
// leader llama-server with --rpc on loopback, under one supervisor daemon,
// the tiny model served through the gateway. The leader's start is held
// until every worker accepts TCP (each missing one named in status); a
// worker killed with -9 is restarted, and the leader with it once it is back.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { rawRequest } from '../gateway/support.ts';
import { freePorts, llamaServerBinDir, llamaServerPath } from '../support/llama-server.ts';

let modelDir: string;
let daemon: DaemonHandle;
let ports: { w1: number; w2: number; llm: number; gateway: number };
const timings: Record<string, number> = {};

const row = (name: string) => daemon.status().find((r) => r.name === name)!;

async function chat(): Promise<{ status: number; body: any }> {
  const res = await rawRequest({
    port: ports.gateway,
    path: '/v1/chat/completions',
    body: JSON.stringify({ model: 'tiny-rpc', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16 }),
  });
  return { status: res.status, body: res.status === 200 ? res.json() : res.text };
}

beforeAll(async () => {
  expect(existsSync(join(llamaServerBinDir(), 'rpc-server')), 'rpc-server next to llama-server (scripts/build-llama-server.sh builds it)').toBe(true);
  modelDir = mkdtempSync(join(tmpdir(), 'tiny-rpc-'));
  const model = join(modelDir, 'tiny.gguf');
  await writeTinyModel(model);
  const [w1, w2, llm, gateway] = await freePorts(4);
  ports = { w1, w2, llm, gateway };
  daemon = await startDaemon(`
[master]
llama_cpp_path = ${JSON.stringify(llamaServerPath())}

[instance.control]
log_dir = "@DIR@"
restart = "always"
backoff_initial_ms = 200
stop_timeout_s = 5
health_interval_s = 1

[instance.w1]
engine = "rpc-worker"
port = ${w1}
threads = 1

[instance.w2]
engine = "rpc-worker"
port = ${w2}
threads = 1

[instance.llm]
rpc = ["127.0.0.1:${w1}", "127.0.0.1:${w2}"]

[instance.llm.server]
host = "127.0.0.1"
port = ${llm}
model = ${JSON.stringify(model)}
alias = "tiny-rpc"
ctx_size = 512
n_gpu_layers = 99
threads = 1

[gateway]
host = "127.0.0.1"
port = ${gateway}
`);
}, 600_000);

afterAll(async () => {
  await daemon?.stop();
  rmSync(modelDir, { recursive: true, force: true });
  console.log(`rpc e2e timings (ms): ${JSON.stringify(timings)}`);
});

describe('llama.cpp RPC workers under one supervisor', () => {
  it('workers ready on TCP, the leader loads onto them and answers through the gateway', async () => {
    await daemon.waitForState('w1', 'ready', 30_000);
    await daemon.waitForState('w2', 'ready', 30_000);
    await daemon.waitForState('llm', 'ready', 90_000);
    expect(row('w1')).toMatchObject({ engine: 'rpc-worker' });
    const { status, body } = await chat();
    expect(status, JSON.stringify(body)).toBe(200);
    expect(typeof body.choices[0].message.content).toBe('string');
    // The layers went to the workers: the leader's log names the RPC devices.
    const log = daemon.cli('logs', 'llm', '-n', '2000').stdout;
    expect(log).toMatch(/--rpc 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+/);
    expect(log).toMatch(/RPC/);
  });

  it('stays up: probes of a worker busy with its leader (one client at a time, backlog 1: connects time out) are no failures', async () => {
    const pids = ['w1', 'w2', 'llm'].map((name) => row(name).pid);
    // health_interval_s = 1: six probes of each worker, and six watches by the leader.
    await new Promise((r) => setTimeout(r, 6000));
    expect(['w1', 'w2', 'llm'].map((name) => row(name).pid)).toEqual(pids);
    expect(['w1', 'w2', 'llm'].map((name) => row(name).state)).toEqual(['ready', 'ready', 'ready']);
    expect(daemon.events.filter((e) => e.event === 'rpc-worker-lost')).toEqual([]);
    expect((await chat()).status).toBe(200);
  });

  it('the gateway never routes to a worker: its name is no model, and the request goes to the default (the leader)', async () => {
    const before = row('llm').requests;
    const res = await rawRequest({ port: ports.gateway, path: '/v1/chat/completions', body: JSON.stringify({ model: 'w1', messages: [{ role: 'user', content: 'x' }], max_tokens: 1 }) });
    expect(res.status).toBe(200);
    expect(row('llm').requests).toBe(before + 1);
    expect(row('w1').requests ?? 0).toBe(0);
    const models = (await (await fetch(`http://127.0.0.1:${ports.gateway}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).not.toContain('w1');
    expect(models.data.map((m) => m.id)).toContain('tiny-rpc');
    expect(daemon.cli('health', '--ready').stdout).toMatch(/ready: 1\/1 can serve \(llm\)/);
  });

  it('kill -9 of a worker: it is restarted, the leader is restarted once it is back, and answers again', async () => {
    const worker = row('w1');
    const leader = row('llm');
    const t0 = Date.now();
    const seen = daemon.events.length;
    process.kill(worker.pid, 'SIGKILL');
    await daemon.waitFor(() => row('w1').state === 'ready' && row('w1').pid !== worker.pid, 30_000, 'w1 back');
    timings.workerBackMs = Date.now() - t0;
    await daemon.waitFor(() => row('llm').state === 'ready' && row('llm').pid !== leader.pid, 90_000, () => `llm restarted and ready (now ${JSON.stringify(row('llm'))})`);
    timings.leaderReadyAgainMs = Date.now() - t0;
    const leaderSteps = daemon.events.slice(seen).filter((e) => e.event === 'transition' && e.instance === 'llm').map((e) => `${e.from}->${e.to} (${e.reason})`);
    console.log(`leader after the kill: ${JSON.stringify(leaderSteps)}`);
    // Restarted by the supervisor for the worker's return (not a crash of its own: it was idle).
    expect(leaderSteps[0]).toBe(`ready->restarting (RPC worker 127.0.0.1:${ports.w1} is back after it was lost: the leader reloads onto it)`);
    const { status, body } = await chat();
    expect(status, JSON.stringify(body)).toBe(200);
    timings.answerAgainMs = Date.now() - t0;
    const lost = daemon.events.find((e) => e.event === 'rpc-worker-lost');
    expect(lost).toMatchObject({ instance: 'llm', worker: `127.0.0.1:${ports.w1}` });
    // One restart for one loss, no loop.
    expect(leaderSteps.filter((step) => step.startsWith('ready->'))).toHaveLength(1);
  });

  it('a request while a worker is gone crashes llama-server (its abort): a crash, whose restart waits for the worker, no loop', async () => {
    expect(daemon.cli('stop', 'w1').code).toBe(0);
    const leader = row('llm');
    const seen = daemon.events.length;
    // llama-server does not notice a lost worker until it computes: still ready, /health still 200.
    expect(leader.state).toBe('ready');
    const t0 = Date.now();
    // The gateway holds this request (wait_ready_s) while the leader cannot serve.
    const pending = chat().catch((err: NodeJS.ErrnoException) => ({ status: 0, body: err.code }));
    await daemon.waitFor(() => row('llm').state === 'waiting', 30_000, () => `llm waiting (now ${JSON.stringify(row('llm'))})`);
    timings.crashToWaitingMs = Date.now() - t0;
    const after = row('llm');
    expect(after.last_exit).toMatchObject({ code: null, signal: 'SIGABRT' });
    // llama.cpp's abort prints the line, then a gdb backtrace (whose last line the exit reason shows).
    expect(daemon.cli('logs', 'llm', '-n', '400').stdout).toMatch(/ggml-rpc\.cpp:\d+: Remote RPC server crashed or returned malformed response/);
    expect(after.state_reason).toBe(`waiting for RPC workers to accept TCP: 127.0.0.1:${ports.w1} (ECONNREFUSED)`);
    await new Promise((r) => setTimeout(r, 2000));
    expect(row('llm')).toMatchObject({ state: 'waiting', pid: null, restarts: leader.restarts + 1 });
    const t1 = Date.now();
    expect(daemon.cli('start', 'w1').code).toBe(0);
    await daemon.waitForState('llm', 'ready', 90_000);
    timings.workerStartToLeaderReadyMs = Date.now() - t1;
    const held = await pending;
    console.log(`the request that crashed the leader: ${held.status} ${JSON.stringify(held.body).slice(0, 200)} after ${Date.now() - t0} ms`);
    expect((await chat()).status).toBe(200);
    const steps = daemon.events.slice(seen).filter((e) => e.event === 'transition' && e.instance === 'llm').map((e) => `${e.from}->${e.to}`);
    console.log(`leader after the crash: ${JSON.stringify(steps)}`);
    expect(steps.filter((step) => step === 'backoff->waiting' || step === 'backoff->starting')).toHaveLength(1);
  }, 120_000);

  it('the leader\'s start is held while a worker is down, naming it in status, and goes on once it is back', async () => {
    expect(daemon.cli('stop', 'w2').code).toBe(0);
    const t0 = Date.now();
    const restart = daemon.cliAsync('restart', 'llm');
    await daemon.waitFor(() => row('llm').state === 'waiting', 30_000, () => `llm waiting (now ${JSON.stringify(row('llm'))})`);
    expect(row('llm').state_reason).toMatch(new RegExp(`waiting for RPC workers to accept TCP: 127\\.0\\.0\\.1:${ports.w2} \\(ECONNREFUSED\\)`));
    expect(row('llm').state_reason).not.toContain(String(ports.w1));
    await new Promise((r) => setTimeout(r, 1500));
    expect(row('llm')).toMatchObject({ state: 'waiting', pid: null });
    expect(daemon.cli('start', 'w2').code).toBe(0);
    await daemon.waitForState('llm', 'ready', 90_000);
    timings.heldStartToReadyAfterWorkerStartMs = Date.now() - t0;
    await restart;
    expect((await chat()).status).toBe(200);
    const workerLog = readFileSync(row('w2').log_file ?? join(daemon.dir, 'rpc-worker-w2.log'), 'utf8');
    expect(workerLog).toMatch(/--host 127\.0\.0\.1 --port \d+/);
  });
});
