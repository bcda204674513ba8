// Upstream's vLLM and SGLang runner configs (reference §4.6–4.7, §5): golden
// launch lines, upstream's fallbacks, and strict errors on broken variants;
// the generic command engine's keys.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ConfigKind } from '../../src/config/config-kind.ts';
import { makeLaunchPlan, type PlanContext } from '../../src/config/launch-plan.ts';
import { CLI } from '../support/daemon.ts';

const fixturePath = (name: string) => new URL(`../fixtures/upstream/${name}`, import.meta.url).pathname;
const fixture = (name: string) => readFileSync(fixturePath(name), 'utf8');

function ctx(kind: ConfigKind, { env = {}, files = [] as string[], path = {} as Record<string, string>, users }: Partial<{ env: Record<string, string>; files: string[]; path: Record<string, string>; users: PlanContext['users'] }> = {}): PlanContext {
  return { env, file: 'test.toml', isFile: (p) => files.includes(p), which: (n) => path[n] ?? null, kind, users };
}

function plan(text: string, c: PlanContext) {
  const result = makeLaunchPlan(text, c);
  if (!result.plan) throw new Error(result.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return { ...result.plan, issues: result.issues };
}

function errors(text: string, c: PlanContext) {
  const result = makeLaunchPlan(text, c);
  expect(result.plan).toBeNull();
  return result.issues.filter((i) => i.severity === 'error').map((i) => `${i.path}: ${i.message}`);
}

const VLLM_HEAD = 'run --manifest-path /hard/volume/workspace/vllm-pixi-offline --environment default --frozen python -m vllm.entrypoints.openai.api_server';

describe('golden launch specs of upstream vLLM and SGLang examples (reference §4.7)', () => {
  it('vllm-qwen2-vl-7b.toml', () => {
    const [i] = plan(fixture('vllm-qwen2-vl-7b.toml'), ctx('vllm')).instances;
    expect(i.name).toBe('qwen2_vl_7b');
    expect(i.engine).toBe('vllm');
    expect(i.logFile).toBe('/tmp/vllm-server-qwen2_vl_7b.log');
    expect(i.executable).toBe('pixi');
    expect(i.args.join(' ')).toBe(
      `${VLLM_HEAD} --host 0.0.0.0 --port 8000 --model /llm-models/Qwen2-VL-7B-Instruct --served-model-name qwen2-vl-7b --trust-remote-code --tensor-parallel-size 1 --gpu-memory-utilization 0.99 --enforce-eager --max-model-len 8192`,
    );
    expect(i.env.PYTHONUNBUFFERED).toBe('1');
    expect(i.user).toBe('me');
    expect(i.env.PATH.startsWith('/home/me/.pixi/bin:/home/me/.local/bin')).toBe(true);
    expect(i.port).toBe(8000);
    expect(i.aliases).toEqual(['qwen2-vl-7b']);
    expect(i.policy.healthPath).toBe('/health');
  });

  it('vllm-qwen2-vl-7b-tp8.toml: 0.90 prints as 0.9', () => {
    const [i] = plan(fixture('vllm-qwen2-vl-7b-tp8.toml'), ctx('vllm')).instances;
    expect(i.name).toBe('qwen2_vl_7b_tp8');
    expect(i.args.join(' ')).toBe(
      `${VLLM_HEAD} --host 0.0.0.0 --port 8000 --model /llm-models/Qwen2-VL-7B-Instruct --served-model-name qwen2-vl-7b --trust-remote-code --tensor-parallel-size 8 --gpu-memory-utilization 0.9 --max-model-len 32768`,
    );
  });

  it('sglang-glm-4.7-tp8.toml', () => {
    const [i] = plan(fixture('sglang-glm-4.7-tp8.toml'), ctx('sglang')).instances;
    expect(i.name).toBe('glm_4_7_tp8');
    expect(i.engine).toBe('sglang');
    expect(i.executable).toBe('/hard/volume/workspace/sglang-pixi-offline/env/bin/python');
    expect(i.logFile).toBe('/tmp/sglang-server-glm_4_7_tp8.log');
    expect(i.args.join(' ')).toBe(
      '-m sglang.launch_server --host 0.0.0.0 --port 30000 --trust-remote-code --tool-call-parser glm47 --reasoning-parser glm45 --mem-fraction-static 0.9 --disable-cuda-graph-padding --model-path /llm-models/GLM-4.7 --served-model-name glm-4.7 --tp-size 8',
    );
    expect(i.user).toBe('me');
    expect(i.port).toBe(30000);
    expect(i.aliases).toEqual(['glm-4.7']);
  });

  it.each([
    ['vllm', 'vllm-qwen2-vl-7b.toml', `pixi ${VLLM_HEAD} --host 0.0.0.0 --port 8000 --model /llm-models/Qwen2-VL-7B-Instruct --served-model-name qwen2-vl-7b --trust-remote-code --tensor-parallel-size 1 --gpu-memory-utilization 0.99 --enforce-eager --max-model-len 8192`],
    ['vllm', 'vllm-qwen2-vl-7b-tp8.toml', `pixi ${VLLM_HEAD} --host 0.0.0.0 --port 8000 --model /llm-models/Qwen2-VL-7B-Instruct --served-model-name qwen2-vl-7b --trust-remote-code --tensor-parallel-size 8 --gpu-memory-utilization 0.9 --max-model-len 32768`],
    ['sglang', 'sglang-glm-4.7-tp8.toml', '/hard/volume/workspace/sglang-pixi-offline/env/bin/python -m sglang.launch_server --host 0.0.0.0 --port 30000 --trust-remote-code --tool-call-parser glm47 --reasoning-parser glm45 --mem-fraction-static 0.9 --disable-cuda-graph-padding --model-path /llm-models/GLM-4.7 --served-model-name glm-4.7 --tp-size 8'],
  ])('supervisor config print --engine %s %s ends in the golden launch line', (engine, file, golden) => {
    const r = spawnSync(process.execPath, [CLI, 'config', 'print', '--engine', engine, fixturePath(file)], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    const command = r.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    expect(command).toHaveLength(1);
    expect(command[0].endsWith(` ${golden}`)).toBe(true);
    const json = spawnSync(process.execPath, [CLI, 'config', 'print', '--engine', engine, '--json', fixturePath(file)], { encoding: 'utf8', timeout: 20_000 });
    const [i] = JSON.parse(json.stdout).instances;
    expect([i.executable, ...i.args].join(' ')).toBe(golden);
  });

  it('--engine with an unknown word is a usage error (exit 2)', () => {
    const r = spawnSync(process.execPath, [CLI, 'config', 'print', '--engine', 'tgi', fixturePath('vllm-qwen2-vl-7b.toml')], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--engine tgi: expected llama-cpp, vllm or sglang');
  });
});

describe("upstream's fallbacks", () => {
  const bare = '[instance.a.server]\nmodel = "m"\n';

  it('vLLM: pixi_project_dir, then AUTO_INFER_VLLM_PIXI_PROJECT_DIR, then the default; environment and module defaults', () => {
    expect(plan(bare, ctx('vllm')).instances[0].args.slice(0, 9).join(' ')).toBe(VLLM_HEAD);
    const fromEnv = plan(bare, ctx('vllm', { env: { AUTO_INFER_VLLM_PIXI_PROJECT_DIR: '/w/v' } })).instances[0];
    expect(fromEnv.args.slice(0, 3)).toEqual(['run', '--manifest-path', '/w/v']);
    const fromMaster = plan(`[master]\npixi_project_dir = "/p"\npixi_environment = "cuda"\napi_server_module = "my.server"\n${bare}`, ctx('vllm', { env: { AUTO_INFER_VLLM_PIXI_PROJECT_DIR: '/w/v' } })).instances[0];
    expect(fromMaster.args.slice(0, 9).join(' ')).toBe('run --manifest-path /p --environment cuda --frozen python -m my.server');
    // No served name: the model is the name clients use; vLLM's default port.
    expect(fromMaster.aliases).toEqual(['m']);
    expect(fromMaster.port).toBe(8000);
  });

  it('SGLang: python_path, then AUTO_INFER_SGLANG_PYTHON, then <project_dir>/env/bin/python (project_dir, then AUTO_INFER_SGLANG_PROJECT_DIR)', () => {
    const py = (text: string, env: Record<string, string> = {}) => plan(text, ctx('sglang', { env })).instances[0].executable;
    expect(py(bare)).toBe('/hard/volume/workspace/sglang-pixi-offline/env/bin/python');
    expect(py(bare, { AUTO_INFER_SGLANG_PROJECT_DIR: '/s' })).toBe('/s/env/bin/python');
    expect(py(bare, { AUTO_INFER_SGLANG_PROJECT_DIR: '/s', AUTO_INFER_SGLANG_PYTHON: '/py' })).toBe('/py');
    expect(py(`[master]\nproject_dir = "/d"\n${bare}`, { AUTO_INFER_SGLANG_PROJECT_DIR: '/s' })).toBe('/d/env/bin/python');
    expect(py(`[master]\npython_path = "/x/python"\nserver_module = "m"\n${bare}`, { AUTO_INFER_SGLANG_PYTHON: '/py' })).toBe('/x/python');
    expect(plan(`[master]\nserver_module = "my.mod"\n${bare}`, ctx('sglang')).instances[0].args.slice(0, 2)).toEqual(['-m', 'my.mod']);
  });

  it('extra_args come first, global then instance, as upstream code does (its contract said "appended")', () => {
    const text = '[instance.server]\nextra_args = ["--verbose"]\nhost = "0.0.0.0"\n[instance.b.server]\nextra_args = ["--x", "1"]\nport = 9001\n';
    expect(plan(text, ctx('vllm')).instances[0].args.slice(9).join(' ')).toBe('--verbose --x 1 --host 0.0.0.0 --port 9001');
    expect(plan(text, ctx('sglang')).instances[0].args.slice(2).join(' ')).toBe('--verbose --x 1 --host 0.0.0.0 --port 9001');
  });

  it('AUTO_INFER_VLLM_OVERRIDES is merged before master.enable; the llama variable is not read for a vLLM file', () => {
    const text = fixture('vllm-qwen2-vl-7b.toml');
    const env = { AUTO_INFER_VLLM_OVERRIDES: '{"instance":{"qwen2_vl_7b":{"server":{"port":8100}}}}', AUTO_INFER_LLAMA_CPP_OVERRIDES: '{"master":{"enable":false}}' };
    const p = plan(text, ctx('vllm', { env }));
    expect(p.enabled).toBe(true);
    expect(p.instances[0].port).toBe(8100);
    expect(plan(text, ctx('vllm', { env: { AUTO_INFER_VLLM_OVERRIDES: '{"master":{"enable":false}}' } })).enabled).toBe(false);
    const bad = makeLaunchPlan(text, ctx('vllm', { env: { AUTO_INFER_VLLM_OVERRIDES: '[1]' } }));
    expect(bad.plan).toBeNull();
    expect(bad.issues[0].file).toBe('AUTO_INFER_VLLM_OVERRIDES');
    const wrong = makeLaunchPlan(text, ctx('vllm', { env: { AUTO_INFER_VLLM_OVERRIDES: '{"master":{"pixi_environment":3}}' } }));
    expect(wrong.issues.find((i) => i.severity === 'error')?.file).toBe('AUTO_INFER_VLLM_OVERRIDES');
  });

  it('AUTO_INFER_SGLANG_OVERRIDES for SGLang files', () => {
    const p = plan(fixture('sglang-glm-4.7-tp8.toml'), ctx('sglang', { env: { AUTO_INFER_SGLANG_OVERRIDES: '{"instance":{"glm_4_7_tp8":{"server":{"tp_size":4}}}}' } }));
    expect(p.instances[0].args.slice(-2)).toEqual(['--tp-size', '4']);
  });

  it('the launch user: AUTO_INFER_VLLM_USER (default me), control.user wins; a missing user or no root runs as ourselves with a warning', () => {
    const text = fixture('vllm-qwen2-vl-7b.toml');
    const homes: Record<string, string> = { me: '/home/me', ann: '/srv/ann' };
    const users = { home: (u: string) => homes[u] ?? null, isRoot: true };
    expect(plan(text, ctx('vllm', { users })).instances[0].user).toBe('me');
    const ann = plan(text, ctx('vllm', { users, env: { AUTO_INFER_VLLM_USER: 'ann', PATH: '/usr/bin' } })).instances[0];
    expect(ann.user).toBe('ann');
    expect(ann.env.PATH).toBe('/srv/ann/.pixi/bin:/srv/ann/.local/bin:/usr/bin');
    expect(ann.env.HOME).toBe('/srv/ann');
    const missing = plan(text, ctx('vllm', { users, env: { AUTO_INFER_VLLM_USER: 'bob', HOME: '/root' } }));
    expect(missing.instances[0].user).toBeNull();
    expect(missing.instances[0].env.PATH.startsWith('/root/.pixi/bin:/root/.local/bin')).toBe(true);
    expect(missing.issues.map((i) => i.message).join('\n')).toContain('user "bob" does not exist: runs as the supervisor\'s own user');
    const notRoot = plan(text, ctx('vllm', { users: { ...users, isRoot: false } }));
    expect(notRoot.instances[0].user).toBeNull();
    expect(notRoot.issues.map((i) => i.message).join('\n')).toContain('the supervisor is not root');
    const configured = plan(`${text}\n[instance.qwen2_vl_7b.control]\nuser = "ann"\n`, ctx('vllm', { users, env: { AUTO_INFER_VLLM_USER: 'me' } }));
    expect(configured.instances[0].user).toBe('ann');
    expect(plan(fixture('sglang-glm-4.7-tp8.toml'), ctx('sglang', { users, env: { AUTO_INFER_SGLANG_USER: 'ann' } })).instances[0].user).toBe('ann');
  });

  it('warns when pixi or the SGLang python is not there (the start would fail)', () => {
    const v = plan(fixture('vllm-qwen2-vl-7b.toml'), ctx('vllm'));
    expect(v.issues.map((i) => i.message).join('\n')).toContain('pixi not found on the launch PATH');
    expect(plan(fixture('vllm-qwen2-vl-7b.toml'), ctx('vllm', { path: { pixi: '/usr/bin/pixi' } })).issues).toEqual([]);
    const s = plan(fixture('sglang-glm-4.7-tp8.toml'), ctx('sglang'));
    expect(s.issues.map((i) => i.message).join('\n')).toContain('python not found: /hard/volume/workspace/sglang-pixi-offline/env/bin/python');
  });
});

describe('strict errors on broken variants', () => {
  it.each([
    ['vllm', '[master]\nllama_cpp_path = "x"\n', 'master.llama_cpp_path'],
    ['vllm', '[master]\nproject_dir = "/x"\n', 'master.project_dir'],
    ['sglang', '[master]\npixi_project_dir = "/x"\n', 'master.pixi_project_dir'],
    ['vllm', '[master]\npixi_environment = 1\n', 'master.pixi_environment'],
    ['vllm', '[master]\nenable = "false"\n', 'master.enable'],
    ['vllm', '[gateway]\nport = 1\n', 'gateway'],
    ['sglang', '[instance.a]\nengine = "vllm"\n', 'instance.a.engine'],
    ['vllm', '[instance.a]\nengine = "tgi"\n', 'instance.a.engine'],
    ['vllm', '[instance.a.server]\nport = 0\n', 'instance.a.server.port'],
    ['vllm', '[instance.a.server]\nextra_args = "--x"\n', 'instance.a.server.extra_args'],
    ['vllm', '[instance.a.control]\nlog_dir = ""\n', 'instance.a.control.log_dir'],
    ['sglang', '[instance.a]\nmodel_path = "x"\n', 'instance.a.model_path'],
    ['vllm', '[instance.a]\nport = 8000\n', 'instance.a.port'],
  ])('%s: %j is an error at %s', (kind, text, path) => {
    expect(errors(text, ctx(kind as ConfigKind)).join('\n')).toContain(`${path}:`);
  });

  it('supervisor config check --engine vllm: a broken variant exits 2 naming file, line and key', () => {
    const file = fixturePath('vllm-qwen2-vl-7b.toml');
    const r = spawnSync(process.execPath, [CLI, 'config', 'check', '--engine', 'vllm', file], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, AUTO_INFER_VLLM_OVERRIDES: '{"master":{"pixi_environment":1}}' } });
    expect(r.status).toBe(2);
    expect(r.stdout).toContain('AUTO_INFER_VLLM_OVERRIDES: error: master.pixi_environment');
    const ok = spawnSync(process.execPath, [CLI, 'config', 'check', '--engine', 'vllm', file], { encoding: 'utf8', timeout: 20_000 });
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain(`${file}: ok, 1 instance(s), 1 enabled`);
  });

  it('a file read as the wrong kind says which kind it looks like', () => {
    const all = (text: string, c: PlanContext) => {
      const result = makeLaunchPlan(text, c);
      expect(result.plan).toBeNull();
      return result.issues.map((i) => `${i.path}: ${i.message}`);
    };
    const asLlama = all(fixture('vllm-qwen2-vl-7b.toml'), ctx('llama-cpp'));
    expect(asLlama.join('\n')).toContain("master.pixi_project_dir: pixi_project_dir belongs in upstream's vllm runner file: is this one? check and serve it with --engine vllm (AUTO_INFER_VLLM_CONFIG)");
    expect(all(fixture('sglang-glm-4.7-tp8.toml'), ctx('vllm')).join('\n')).toContain('with --engine sglang');
    expect(all(fixture('glm-4.7-q2k.toml').replace('# llama_cpp_path', 'llama_cpp_path'), ctx('sglang')).join('\n')).toContain('without --engine (AUTO_INFER_LLAMA_CPP_CONFIG)');
  });

  it('broken TOML names the line', () => {
    const result = makeLaunchPlan('[instance.a.server\n', ctx('vllm'));
    expect(result.plan).toBeNull();
    expect(result.issues[0]).toMatchObject({ line: 1, message: expect.stringContaining('invalid TOML') });
  });
});

describe('engine = "command"', () => {
  const llama = (text: string) => ctx('llama-cpp', {});

  it('runs the command as written, probes health_path on its port, routes its aliases; global server flags do not apply', () => {
    const text = '[instance.server]\nhost = "0.0.0.0"\n[instance.control]\nlog_dir = "/var/log"\n[instance.tgi]\nengine = "command"\ncommand = ["text-generation-launcher", "--port", "8090"]\nport = 8090\nhealth_path = "/ready"\naliases = ["tgi-model"]\n';
    const [i] = plan(text, llama(text)).instances;
    expect(i).toMatchObject({ engine: 'command', executable: 'text-generation-launcher', args: ['--port', '8090'], port: 8090, host: '127.0.0.1', aliases: ['tgi-model'], logFile: '/var/log/command-tgi.log' });
    expect(i.policy.healthPath).toBe('/ready');
    expect(i.env.LLAMA_ARG_LOG_VERBOSITY).toBeUndefined();
  });

  it('without health_path: control.health_path, else /health', () => {
    const text = '[instance.x]\nengine = "command"\ncommand = ["srv"]\nport = 1234\n[instance.x.control]\nhealth_path = "/up"\n[instance.y]\nengine = "command"\ncommand = ["srv"]\nport = 1235\n';
    const p = plan(text, llama(text));
    expect(p.instances.map((i) => i.policy.healthPath)).toEqual(['/up', '/health']);
  });

  it('is allowed in vLLM and SGLang files too', () => {
    const text = '[instance.x]\nengine = "command"\ncommand = ["srv"]\nport = 1234\n';
    expect(plan(text, ctx('vllm')).instances[0].engine).toBe('command');
  });

  it.each([
    ['[instance.x]\nengine = "command"\nport = 1\n', 'instance.x.command: engine = "command" needs command'],
    ['[instance.x]\nengine = "command"\ncommand = ["a"]\n', 'instance.x.port: engine = "command" needs the port'],
    ['[instance.x]\nengine = "command"\ncommand = []\nport = 1\n', 'instance.x.command:'],
    ['[instance.x]\nengine = "command"\ncommand = [""]\nport = 1\n', 'instance.x.command.0:'],
    ['[instance.x]\nengine = "command"\ncommand = ["a"]\nport = 70000\n', 'instance.x.port:'],
    ['[instance.x]\nengine = "command"\ncommand = ["a"]\nport = 1\nhealth_path = "up"\n', 'instance.x.health_path:'],
    ['[instance.x]\nengine = "command"\ncommand = ["a"]\nport = 1\n[instance.x.server]\nport = 2\n', 'instance.x.server: a command instance has no [server] table'],
    ['[instance.x]\ncommand = ["a"]\n', 'instance.x.command: command is a key of engine = "command" instances'],
    ['[instance.x]\nengine = "vllm"\n', 'instance.x.engine: this is a llama-cpp config'],
    ['[instance.x]\nfoo = 1\n', 'instance.x.foo: unknown key in an instance'],
  ])('%j: %s', (text, expected) => {
    expect(errors(text, llama(text)).join('\n')).toContain(expected);
  });
});
