import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeServerArgs, mergeServer } from '../../src/config/argv.ts';
import { makeLaunchPlan, type PlanContext } from '../../src/config/launch-plan.ts';
import { readToml } from '../../src/config/toml-source.ts';
import type { ConfigTable } from '../../src/config/overrides.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/upstream/${name}`, import.meta.url), 'utf8');

// The scratch directory of reference §4.7: no installed bundle, no workspace build, nothing on PATH.
function scratch(env: Record<string, string> = {}, files: string[] = [], path: Record<string, string> = {}): PlanContext {
  return { env, file: 'test.toml', isFile: (p) => files.includes(p), which: (n) => path[n] ?? null };
}

function plan(text: string, ctx = scratch()) {
  const result = makeLaunchPlan(text, ctx);
  if (!result.plan) throw new Error(result.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
  return { ...result.plan, issues: result.issues };
}

function errors(text: string, ctx = scratch()) {
  const result = makeLaunchPlan(text, ctx);
  expect(result.plan).toBeNull();
  return result.issues.filter((i) => i.severity === 'error');
}

describe('golden launch specs (reference §4.7)', () => {
  it('glm-4.7-q2k.toml', () => {
    const p = plan(fixture('glm-4.7-q2k.toml'));
    expect(p.enabled).toBe(true);
    expect(p.instances).toHaveLength(1);
    const [i] = p.instances;
    expect(i.name).toBe('glm-4-7-q2k');
    expect(i.logFile).toBe('/tmp/glm-4.7-q2k.log');
    expect(i.background).toBe(true);
    expect(i.gpuIds).toBe('0,1,2,3,4,5,6,7');
    expect(i.env.CUDA_VISIBLE_DEVICES).toBe('0,1,2,3,4,5,6,7');
    expect(i.executable).toBe('llama-server');
    expect(i.args.join(' ')).toBe(
      '--host 0.0.0.0 --metrics --jinja --flash-attn on --fit on --ctx-size 16384 --temp 1.0 --top-p 0.95 --model /llm-models/GLM-4.7-GGUF/Q2_K/GLM-4.7-Q2_K-00001-of-00003.gguf --port 8080 --alias glm4 --n-predict 2048 --n-gpu-layers -1',
    );
    expect(i.port).toBe(8080);
    expect(i.host).toBe('0.0.0.0');
    expect(i.model).toBe('/llm-models/GLM-4.7-GGUF/Q2_K/GLM-4.7-Q2_K-00001-of-00003.gguf');
  });

  it('examples/llama_config.toml', () => {
    const p = plan(fixture('llama_config.toml'));
    expect(p.instances).toHaveLength(1);
    const [i] = p.instances;
    expect(i.name).toBe('llama-3-8b');
    expect(i.executable).toBe('llama-server');
    expect(i.logFile).toBe('/tmp/llama-server-llama-3-8b.log');
    expect(i.gpuIds).toBeNull();
    expect('CUDA_VISIBLE_DEVICES' in i.env).toBe(false);
    expect(i.args.join(' ')).toBe(
      '--host 0.0.0.0 --n-gpu-layers 99 --flash-attn --metrics --model /path/to/your/model.gguf --port 8080 --alias llama3 --ctx-size 8192',
    );
    // Upstream's own example breaks its schema: kept working, but named.
    expect(p.issues).toEqual([
      expect.objectContaining({ severity: 'warning', path: 'instance.server.flash_attn', line: 27 }),
    ]);
  });

  it('llama_config.disabled.toml launches nothing', () => {
    const p = plan(fixture('llama_config.disabled.toml'));
    expect(p.enabled).toBe(false);
    expect(p.instances).toEqual([]);
  });

  // The vLLM and SGLang configs share the TOML shape but not the runner: their
  // [master] keys are not ours, so they are rejected; their argv rules are ours.
  const serverArgv = (text: string, name: string) => {
    const doc = readToml(text).document as any;
    return makeServerArgs(mergeServer(doc.instance.server as ConfigTable, doc.instance[name].server as ConfigTable)).join(' ');
  };
  it('vllm-qwen2-vl-7b.toml argv', () => {
    expect(serverArgv(fixture('vllm-qwen2-vl-7b.toml'), 'qwen2_vl_7b')).toBe(
      '--host 0.0.0.0 --port 8000 --model /llm-models/Qwen2-VL-7B-Instruct --served-model-name qwen2-vl-7b --trust-remote-code --tensor-parallel-size 1 --gpu-memory-utilization 0.99 --enforce-eager --max-model-len 8192',
    );
    const errs = errors(fixture('vllm-qwen2-vl-7b.toml'));
    expect(errs.map((e) => `${e.path}@${e.line}`)).toEqual([
      'master.pixi_project_dir@6',
      'master.pixi_environment@7',
      'master.api_server_module@8',
    ]);
  });
  it('vllm-qwen2-vl-7b-tp8.toml argv (0.90 prints as 0.9)', () => {
    expect(serverArgv(fixture('vllm-qwen2-vl-7b-tp8.toml'), 'qwen2_vl_7b_tp8')).toMatch(
      / --tensor-parallel-size 8 --gpu-memory-utilization 0.9 --max-model-len 32768$/,
    );
  });
  it('sglang-glm-4.7-tp8.toml argv', () => {
    expect(serverArgv(fixture('sglang-glm-4.7-tp8.toml'), 'glm_4_7_tp8')).toBe(
      '--host 0.0.0.0 --port 30000 --trust-remote-code --tool-call-parser glm47 --reasoning-parser glm45 --mem-fraction-static 0.9 --disable-cuda-graph-padding --model-path /llm-models/GLM-4.7 --served-model-name glm-4.7 --tp-size 8',
    );
  });

  it('synthetic edge case: extra_args first, lists concatenated, overridden keys keep their place', () => {
    const p = plan(`
[instance.server]
extra_args = ["--verbose"]
lora = ["a.gguf"]
host = "0.0.0.0"
port = 9000
[instance.a.control]
enabled = false
[instance.b.server]
extra_args = ["--x", "1"]
lora = ["b.gguf"]
host = "127.0.0.1"
port = 9001
[instance.c]
control = {}
`);
    const b = p.instances.find((i) => i.name === 'b')!;
    expect(b.args.join(' ')).toBe('--verbose --x 1 --lora a.gguf --lora b.gguf --host 127.0.0.1 --port 9001');
    const c = p.instances.find((i) => i.name === 'c')!;
    expect(c.enabled).toBe(true);
    expect(c.args.join(' ')).toBe('--verbose --lora a.gguf --host 0.0.0.0 --port 9000');
    expect(p.instances.map((i) => i.name)).toEqual(['a', 'b', 'c']);
  });
});

describe('merge and argv rules', () => {
  it('prints numbers like Python str()', () => {
    const p = plan(`[instance.x.server]\na = 1.0\nb = 0.90\nc = 1e-5\nd = 1.5e300\ne = -1\nf = 10\ng = [1, 2.5]\nh = 3e16\n`);
    expect(p.instances[0].args.join(' ')).toBe('--a 1.0 --b 0.9 --c 1e-05 --d 1.5e+300 --e -1 --f 10 --g 1 --g 2.5 --h 3e+16');
  });

  it('false omits the flag, true is a bare flag', () => {
    const p = plan(`[instance.server]\nmetrics = true\n[instance.x.server]\nmetrics = false\nembeddings = true\n`);
    expect(p.instances[0].args).toEqual(['--embeddings']);
  });

  it('control is shallow-merged: any control key may be global', () => {
    const p = plan(`[instance.control]\nlog_dir = "/var/log/x/"\ngpu_ids = "0"\n[instance.a]\n[instance.b.control]\ngpu_ids = "1"\nlog_dir = "rel"\n[instance.b.server]\nport = 8081\n`);
    expect(p.instances.map((i) => [i.logFile, i.env.CUDA_VISIBLE_DEVICES])).toEqual([
      ['/var/log/x/llama-server-a.log', '0'],
      ['rel/llama-server-b.log', '1'],
    ]);
  });

  it('gpu_ids: all inherits, none empties, integers accepted, case-insensitive keywords', () => {
    const gpus = (v: string) => plan(`[instance.x.control]\ngpu_ids = ${v}\n`).instances[0].env.CUDA_VISIBLE_DEVICES;
    expect(gpus('"all"')).toBeUndefined();
    expect(gpus('"ALL"')).toBeUndefined();
    expect(gpus('"none"')).toBe('');
    expect(gpus('"None"')).toBe('');
    expect(gpus('3')).toBe('3');
    expect(gpus('"0,1"')).toBe('0,1');
  });

  it('executable: configured, then fallbacks in order, then PATH; its directory leads LD_LIBRARY_PATH', () => {
    const toml = `[instance.x]\n`;
    const a = plan(`[master]\nllama_cpp_path = "/opt/ll/bin/llama-server"\n${toml}`, scratch({ LD_LIBRARY_PATH: '/usr/lib' }));
    expect(a.instances[0].executable).toBe('/opt/ll/bin/llama-server');
    expect(a.instances[0].env.LD_LIBRARY_PATH).toBe('/opt/ll/bin:/usr/lib');
    const both = ['/soft/app/llama-cpp/bin/llama-server', '/hard/volume/workspace/llama-cpp/build/bin/llama-server'];
    expect(plan(toml, scratch({}, both)).instances[0].executable).toBe(both[0]);
    expect(plan(toml, scratch({}, [both[1]])).instances[0].executable).toBe(both[1]);
    const onPath = plan(toml, scratch({}, [], { 'llama-server': '/usr/local/bin/llama-server' })).instances[0];
    expect(onPath.executable).toBe('llama-server');
    expect(onPath.env.LD_LIBRARY_PATH).toBe('/usr/local/bin');
    const nowhere = plan(toml).instances[0];
    expect('LD_LIBRARY_PATH' in nowhere.env).toBe(false);
    const relative = plan(`[master]\nllama_cpp_path = "build/bin/llama-server"\n${toml}`).instances[0];
    expect(relative.env.LD_LIBRARY_PATH).toBe('build/bin');
  });

  it('overrides are deep-merged before anything, lists replaced, floats kept', () => {
    const env = {
      AUTO_INFER_LLAMA_CPP_OVERRIDES: '{"instance": {"x": {"server": {"port": 9999, "temp": 1.0}}}}',
    };
    const p = plan(`[instance.x.server]\nport = 8000\nlora = ["a"]\n`, scratch(env));
    expect(p.instances[0].args).toEqual(['--port', '9999', '--lora', 'a', '--temp', '1.0']);
    const off = plan(`[instance.x]\n`, scratch({ AUTO_INFER_LLAMA_CPP_OVERRIDES: '{"master": {"enable": false}}' }));
    expect(off.enabled).toBe(false);
    const lists = plan(`[instance.x.server]\nlora = ["a"]\n`, scratch({ AUTO_INFER_LLAMA_CPP_OVERRIDES: '{"instance":{"x":{"server":{"lora":["b"]}}}}' }));
    expect(lists.instances[0].args).toEqual(['--lora', 'b']);
  });

  it('an instance without host/port gets llama-server defaults; extra_args --port counts', () => {
    const p = plan(`[instance.a]\n[instance.b.server]\nextra_args = ["--port=9100", "--host", "0.0.0.0"]\n`);
    expect(p.instances.map((i) => [i.host, i.port])).toEqual([
      ['127.0.0.1', 8080],
      ['0.0.0.0', 9100],
    ]);
  });

  it('new control keys land in the policy, with defaults', () => {
    const p = plan(`[instance.control]\nrestart = "always"\nbackoff_initial_ms = 10\n[instance.x.control]\nmax_restarts = 3\nenv = { A = "1", B = 2 }\nuser = "me"\n`);
    const i = p.instances[0];
    expect(i.policy).toMatchObject({ restart: 'always', backoffInitialMs: 10, maxRestarts: 3, stopTimeoutS: 8, healthPath: '/health', startupStallS: 180 });
    expect(i.env).toMatchObject({ A: '1', B: '2', INFER_DEV_INSTANCE: 'x' });
    expect(i.user).toBe('me');
  });

  it('aliases and api key are read from argv as llama-server reads them (last flag wins), else from the instance env', () => {
    const p = plan(`[instance.a.server]
alias = "glm4, glm-big,"
api_key = "k1,k2"
port = 1
[instance.b.server]
extra_args = ["-a", "first", "--alias=last", "--api-key", ""]
port = 2
[instance.c.control]
env = { LLAMA_ARG_ALIAS = "from-env", LLAMA_API_KEY = "env-key" }
[instance.c.server]
port = 3
[gateway]
enable = false
`);
    expect(p.instances.map((i) => [i.aliases, i.apiKey])).toEqual([
      [['glm4', 'glm-big'], 'k1'],
      [['last'], null],
      [['from-env'], 'env-key'],
    ]);
  });

  it('integer-like instance names keep document order', () => {
    const p = plan(`[instance.b]\n[instance.2]\nserver = { port = 1 }\n[instance.a]\nserver = { port = 2 }\n`);
    expect(p.instances.map((i) => i.name)).toEqual(['b', '2', 'a']);
  });
});

describe('strict errors name file, line, column, key path and what was expected', () => {
  const one = (text: string, ctx?: PlanContext) => {
    const errs = errors(text, ctx);
    expect(errs).toHaveLength(1);
    return errs[0];
  };
  it('syntax error with position', () => {
    expect(one('[instance.x\n')).toMatchObject({ file: 'test.toml', line: 1, path: '' });
  });
  it('instance value that is not a table', () => {
    expect(one('[instance]\nfoo = 1\n')).toMatchObject({ path: 'instance.foo', line: 2, column: 1, message: expect.stringContaining('must be a table') });
  });
  it('extra_args not a list of strings', () => {
    expect(one('[instance.x.server]\nextra_args = "--verbose"\n')).toMatchObject({ path: 'instance.x.server.extra_args', line: 2, message: 'expected a list of strings, got "--verbose"' });
    expect(one('[instance.server]\nextra_args = ["-c", 512]\n').path).toBe('instance.server.extra_args');
  });
  it('boolean or table inside a server list; table as a server value', () => {
    expect(one('[instance.x.server]\nlora = ["a", true]\n')).toMatchObject({ path: 'instance.x.server.lora.1', line: 2 });
    expect(one('[instance.x.server]\nlora = [{a = 1}]\n').path).toBe('instance.x.server.lora.0');
    expect(one('[instance.x.server]\n  spec = { a = 1 }\n')).toMatchObject({ path: 'instance.x.server.spec', line: 2, column: 3 });
  });
  it('gpu_ids pattern', () => {
    const e = one('[instance.x.control]\ngpu_ids = "0, 1"\n');
    expect(e).toMatchObject({ path: 'instance.x.control.gpu_ids', line: 2 });
    expect(e.message).toContain('"all", "none"');
    expect(one('[instance.x.control]\ngpu_ids = -1\n').path).toBe('instance.x.control.gpu_ids');
    expect(one('[instance.x.control]\ngpu_ids = ["0"]\n').path).toBe('instance.x.control.gpu_ids');
  });
  it('two enabled instances on one port (defaults count); a disabled one does not', () => {
    expect(one('[instance.a]\n[instance.b]\n')).toMatchObject({ path: 'instance.b.server.port', message: expect.stringContaining('"a"') });
    expect(one('[instance.server]\nport = 9000\n[instance.a]\n[instance.b]\n').message).toContain('port 9000');
    plan('[instance.a]\n[instance.b.control]\nenabled = false\n');
  });
  it('unknown [master] keys and unknown control keys', () => {
    expect(one('[master]\nenabled = true\n')).toMatchObject({
      path: 'master.enabled',
      line: 2,
      message: 'unknown key (did you mean "enable"? expected one of: enable, memory_budget_mib, llama_cpp_path)',
    });
    expect(one('[instance.x.control]\nrestarts = "always"\n').path).toBe('instance.x.control.restarts');
  });
  it('strict types where upstream used truthiness', () => {
    expect(one('[instance.x.control]\nenabled = "false"\n').message).toBe('expected true or false, got "false"');
    expect(one('[instance.x.control]\nrestart = "sometimes"\n').message).toContain('"on-failure"');
    expect(one('[instance.x.server]\nport = 70000\n').message).toBe('expected at most 65535, got 70000');
    expect(one('[instance.x.control]\nmax_restarts = 1.5\n').message).toBe('expected an integer, got 1.5');
  });
  it('overrides that are not JSON or not an object', () => {
    const bad = one('[instance.x]\n', scratch({ AUTO_INFER_LLAMA_CPP_OVERRIDES: '{"instance": ' }));
    expect(bad).toMatchObject({ file: 'AUTO_INFER_LLAMA_CPP_OVERRIDES', message: expect.stringContaining('unexpected end of JSON') });
    expect(one('[instance.x]\n', scratch({ AUTO_INFER_LLAMA_CPP_OVERRIDES: '[1]' })).message).toContain('expected a JSON object, got an array');
  });
  it('errors in overridden values point at the overrides, not the file', () => {
    const e = one('[instance.x.server]\nport = 8000\n', scratch({ AUTO_INFER_LLAMA_CPP_OVERRIDES: '{"instance":{"x":{"server":{"port":0}}}}' }));
    expect(e).toMatchObject({ file: 'AUTO_INFER_LLAMA_CPP_OVERRIDES', path: 'instance.x.server.port' });
    expect(e.line).toBeUndefined();
  });
  it('reports every error, not just the first', () => {
    expect(errors('[master]\nx = 1\n[instance.a.control]\nrestart = 1\n[instance.b.server]\nport = "x"\n')).toHaveLength(3);
  });
});
