// Engines through the real supervisor: the vLLM stand-in (test/fixtures/engines,
// Python, started exactly as upstream starts vLLM: `pixi run --manifest-path D
// --environment E --frozen python -m MODULE ARGS` through a pixi-shaped wrapper)
// and the real llama-server run as a generic `engine = "command"` instance.
// Real vLLM and SGLang are not run here: no GPU, no network, no room for them.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { REPO_ROOT, startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { freePorts, llamaServerPath } from '../support/llama-server.ts';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/engines');
const PATH = `${join(FIXTURES, 'bin')}:${process.env.PATH}`;

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'engines-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const daemons: DaemonHandle[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});

/** One stand-in instance of an upstream-shaped vLLM file. */
function vllmInstance(name: string, port: number, { mode = 'serve', loadS = 1, model = 'Qwen/Qwen2-VL-7B-Instruct', served = name, control = '' } = {}): string {
  return `
[instance.${name}.control]
env = { STANDIN_MODE = "${mode}", STANDIN_LOAD_S = "${loadS}", STANDIN_DIE_AFTER_S = "1" }
${control}
[instance.${name}.server]
port = ${port}
model = "${model}"
served_model_name = "${served}"
gpu_memory_utilization = 0.9
`;
}

function vllmFile(body: string, file = 'vllm.toml'): string {
  const path = join(dir, file);
  writeFileSync(
    path,
    `[master]
enable = true
pixi_project_dir = ${JSON.stringify(join(FIXTURES, 'vllm-project'))}
pixi_environment = "default"
api_server_module = "standin.api_server"

[instance.control]
log_dir = ${JSON.stringify(dir)}
backoff_initial_ms = 100
stop_timeout_s = 3
health_interval_s = 0.3

[instance.server]
host = "127.0.0.1"
${body}`,
  );
  return path;
}

async function start(llamaConfig: string, env: Record<string, string>): Promise<DaemonHandle> {
  const d = await startDaemon(llamaConfig, { PATH, ...env });
  daemons.push(d);
  return d;
}

const chat = (port: number, model: string) =>
  fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 }),
  });

describe('the vLLM stand-in, from an upstream vLLM file (AUTO_INFER_VLLM_CONFIG)', () => {
  it('starts through pixi, is starting while /health answers 503, then ready; the gateway routes its served name; stop and start work', async () => {
    const [port, gateway] = await freePorts(2);
    const file = vllmFile(vllmInstance('qwen', port, { loadS: 2, served: 'qwen2-vl-7b' }));
    const d = await start(`[gateway]\nhost = "127.0.0.1"\nport = ${gateway}\n`, { AUTO_INFER_VLLM_CONFIG: file });
    const starting = await d.waitForState('qwen', 'starting', 10_000);
    await d.waitFor(() => existsSync(join(dir, 'vllm-server-qwen.log')) && readFileSync(join(dir, 'vllm-server-qwen.log'), 'utf8').includes('Starting vLLM API server'), 10_000, 'the stand-in to listen');
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(503);
    expect(d.status().find((r) => r.name === 'qwen')!.state).toBe('starting');
    const ready = await d.waitForState('qwen', 'ready', 20_000);
    expect(ready.pid).toBe(starting.pid);
    const log = readFileSync(join(dir, 'vllm-server-qwen.log'), 'utf8');
    // The launch line upstream's runner would run; PYTHONUNBUFFERED makes the lines come as printed.
    expect(log).toContain('pixi run --manifest-path');
    expect(log).toContain("'served_model_name': ['qwen2-vl-7b']");
    const res = await chat(gateway, 'qwen2-vl-7b');
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).choices[0].message.content).toBe('stand-in says hi');
    expect(d.cli('stop', 'qwen').code).toBe(0);
    expect(d.status().find((r) => r.name === 'qwen')).toMatchObject({ state: 'stopped', pid: null });
    expect(d.cli('start', 'qwen').code).toBe(0);
    await d.waitForState('qwen', 'ready', 20_000);
  });

  it.each([
    ['free-memory', { mode: 'free-memory' }, /Free memory on device \(10\.52\/79\.19 GiB\) on startup is less than desired GPU memory utilization \(0\.9/],
    ['oom', { mode: 'oom' }, /torch\.OutOfMemoryError: CUDA out of memory\. Tried to allocate 2\.00 GiB/],
    ['missing-model', { model: '/llm-models/not-there' }, /\/llm-models\/not-there does not appear to have a file named config\.json/],
  ])('%s: fatal at once with that line, no restart loop', async (name, options, line) => {
    const [port] = await freePorts(1);
    const file = vllmFile(vllmInstance('bad', port, options), `${name}.toml`);
    const d = await start('[master]\n', { AUTO_INFER_VLLM_CONFIG: file });
    const row = await d.waitForState('bad', 'fatal', 20_000);
    expect(row.last_exit.reason).toMatch(line);
    expect(row.last_exit.reason).toMatch(/^exited with code 1: /);
    await new Promise((r) => setTimeout(r, 800));
    expect(d.status().find((r) => r.name === 'bad')).toMatchObject({ state: 'fatal', restarts: 0 });
    expect(d.cli('health').code).toBe(1);
  });

  it('an engine that dies under a live server (/health 503) fails liveness and is restarted', async () => {
    const [port] = await freePorts(1);
    const file = vllmFile(vllmInstance('dying', port, { mode: 'engine-dead' }));
    const d = await start('[master]\n', { AUTO_INFER_VLLM_CONFIG: file });
    const first = await d.waitForState('dying', 'ready', 20_000);
    await d.waitFor(() => {
      const row = d.status().find((r) => r.name === 'dying')!;
      return row.restarts >= 1 && row.pid !== first.pid;
    }, 30_000, () => `a restart (last: ${JSON.stringify(d.status())})`);
    const row = d.status().find((r) => r.name === 'dying')!;
    expect(row.last_exit.reason).toMatch(/liveness: 3 failed health checks in a row \(last: 503 .*EngineDeadError/);
  });

  it('supervisor serve --engine vllm FILE adds the file to a running daemon; a reload whose llama.cpp file clashes with it is refused', async () => {
    const [port, other] = await freePorts(2);
    const d = await start('[master]\n', {});
    const file = vllmFile(vllmInstance('late', port), 'late.toml');
    const served = d.cli('serve', '--engine', 'vllm', file);
    expect(served.code, served.stderr).toBe(0);
    expect(served.stdout).toContain('started: late');
    await d.waitForState('late', 'ready', 20_000);
    // A name used by both files is refused, and nothing running changes.
    d.writeConfig(`[instance.late]\nengine = "command"\ncommand = ["sleep", "100"]\nport = ${other}\n`);
    const reload = d.cli('reload');
    expect(reload.code).toBe(2);
    expect(reload.stderr).toContain('instance "late" is also in');
    expect(d.status().find((r) => r.name === 'late')!.state).toBe('ready');
  });
});

describe('reload and serve with upstream files', () => {
  it('reload re-reads the vLLM file: a changed instance restarts on its new port; a broken file given to serve is refused and not kept', async () => {
    const [port, moved] = await freePorts(2);
    const file = vllmFile(vllmInstance('r', port, { loadS: 0.2 }), 'reload.toml');
    const d = await start('[master]\n', { AUTO_INFER_VLLM_CONFIG: file });
    const first = await d.waitForState('r', 'ready', 20_000);
    vllmFile(vllmInstance('r', moved, { loadS: 0.2 }), 'reload.toml');
    const reload = d.cli('reload');
    expect(reload.code, reload.stderr).toBe(0);
    await d.waitFor(() => {
      const row = d.status().find((r) => r.name === 'r')!;
      return row.state === 'ready' && row.port === moved && row.pid !== first.pid;
    }, 20_000, () => `r ready on ${moved} (last: ${JSON.stringify(d.status())})`);
    const broken = join(dir, 'broken.toml');
    writeFileSync(broken, '[master]\nllama_cpp_path = "x"\n');
    const refused = d.cli('serve', '--engine', 'vllm', broken);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('master.llama_cpp_path');
    // The file that runs is still the one reload reads.
    expect(d.cli('reload').code).toBe(0);
    expect(d.status().find((r) => r.name === 'r')).toMatchObject({ state: 'ready', port: moved });
  });
});

describe('on demand', () => {
  it('an on-demand vLLM instance stays idle until a gateway request for its served name loads it; idle_unload_s unloads it again', async () => {
    const [port, gateway] = await freePorts(2);
    const file = vllmFile(vllmInstance('lazy', port, { loadS: 0.5, served: 'lazy-model', control: 'on_demand = true\nidle_unload_s = 1' }), 'lazy.toml');
    const d = await start(`[gateway]\nhost = "127.0.0.1"\nport = ${gateway}\n`, { AUTO_INFER_VLLM_CONFIG: file });
    await d.waitForState('lazy', 'idle', 10_000);
    await d.waitFor(async () => (await fetch(`http://127.0.0.1:${gateway}/health`).catch(() => null)) !== null, 10_000, 'the gateway');
    const res = await chat(gateway, 'lazy-model');
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).choices[0].message.content).toBe('stand-in says hi');
    await d.waitForState('lazy', 'idle', 15_000);
  });
});

describe('the stand-in as SGLang, from an upstream SGLang file (AUTO_INFER_SGLANG_CONFIG)', () => {
  it('runs <python_path> -m <server_module> with --model-path; ready, and fatal with the OOM line', async () => {
    const [port, bad] = await freePorts(2);
    const file = join(dir, 'sglang.toml');
    writeFileSync(
      file,
      `[master]
python_path = "python3"
server_module = "standin.api_server"

[instance.control]
log_dir = ${JSON.stringify(dir)}
env = { PYTHONPATH = ${JSON.stringify(join(FIXTURES, 'vllm-project'))}, STANDIN_LOAD_S = "0.5" }

[instance.server]
host = "127.0.0.1"

[instance.glm.server]
port = ${port}
model_path = "zai-org/GLM-4.7"
served_model_name = "glm-4.7"
` +
        `\n[instance.oom.control]\nenv = { PYTHONPATH = ${JSON.stringify(join(FIXTURES, 'vllm-project'))}, STANDIN_MODE = "oom" }\n[instance.oom.server]\nport = ${bad}\nmodel_path = "zai-org/GLM-4.7"\n`,
    );
    const d = await start('[master]\n', { AUTO_INFER_SGLANG_CONFIG: file });
    await d.waitForState('glm', 'ready', 20_000);
    expect(readFileSync(join(dir, 'sglang-server-glm.log'), 'utf8')).toContain("'model': 'zai-org/GLM-4.7'");
    const row = await d.waitForState('oom', 'fatal', 20_000);
    expect(row.last_exit.reason).toMatch(/CUDA out of memory/);
    expect(row.restarts).toBe(0);
  });
});

describe('engine = "command" running the real llama-server', () => {
  it('becomes ready on its health_path and answers through the gateway by its alias', async () => {
    const model = join(dir, 'tiny.gguf');
    await writeTinyModel(model);
    const [port, gateway] = await freePorts(2);
    const command = [llamaServerPath(), '--host', '127.0.0.1', '--port', String(port), '--model', model, '--threads', '1', '--ctx-size', '512', '--alias', 'tiny-cmd'];
    const d = await start(
      `[instance.control]\nlog_dir = "@DIR@"\n\n[instance.tiny]\nengine = "command"\ncommand = ${JSON.stringify(command)}\nport = ${port}\nhealth_path = "/health"\naliases = ["tiny-cmd"]\n\n[gateway]\nhost = "127.0.0.1"\nport = ${gateway}\n`,
      {},
    );
    await d.waitForState('tiny', 'ready', 60_000);
    const res = await chat(gateway, 'tiny-cmd');
    expect(res.status).toBe(200);
    expect(typeof ((await res.json()) as any).choices[0].message.content).toBe('string');
    expect(readFileSync(join(d.dir, 'command-tiny.log'), 'utf8')).toContain('llama');
    expect(d.status().find((r) => r.name === 'tiny')).toMatchObject({ requests: 1 });
  });
});
