// llama.cpp RPC in the config: `engine = "rpc-worker"` (rpc-server next to
// llama-server, TCP readiness, no gateway route), a leader's `rpc = [...]`
// rendered as --rpc, the insecure-network warning and the errors.
import { describe, expect, it } from 'vitest';
import { makeLaunchPlan, type PlanContext } from '../../src/config/launch-plan.ts';
import { findRpcWorkers, splitRpcAddress } from '../../src/engines/rpc-worker.ts';

function ctx({ files = [] as string[], path = {} as Record<string, string>, env = {} as Record<string, string> } = {}): PlanContext {
  return { env, file: 'test.toml', isFile: (p) => files.includes(p), which: (n) => path[n] ?? null };
}

function check(text: string, c = ctx()) {
  const result = makeLaunchPlan(text, c);
  const at = (severity: string) => result.issues.filter((i) => i.severity === severity).map((i) => `${i.path}: ${i.message}`);
  return { plan: result.plan, errors: at('error'), warnings: at('warning') };
}

const BIN = '/opt/llama/bin';
const WORKER = '[master]\nllama_cpp_path = "/opt/llama/bin/llama-server"\n[instance.w]\nengine = "rpc-worker"\nport = 50060\n';

describe('engine = "rpc-worker"', () => {
  it('runs rpc-server from llama-server\'s directory, with its libraries, on loopback by default; readiness is TCP', () => {
    const { plan, warnings } = check(WORKER, ctx({ files: [`${BIN}/rpc-server`] }));
    expect(warnings).toEqual([]);
    expect(plan!.instances[0]).toMatchObject({
      engine: 'rpc-worker',
      executable: `${BIN}/rpc-server`,
      args: ['--host', '127.0.0.1', '--port', '50060'],
      env: { LD_LIBRARY_PATH: BIN },
      host: '127.0.0.1',
      port: 50060,
      probe: 'tcp',
      aliases: [],
      model: null,
      rpcWorkers: [],
      logFile: '/tmp/rpc-worker-w.log',
    });
  });

  it('finds the renamed ggml-rpc-server, then PATH; renders device, threads and cache; defaults to port 50052', () => {
    const renamed = check('[master]\nllama_cpp_path = "/opt/llama/bin/llama-server"\n[instance.w]\nengine = "rpc-worker"\ndevice = "CUDA0"\nthreads = 4\ncache = true\n', ctx({ files: [`${BIN}/ggml-rpc-server`] }));
    expect(renamed.plan!.instances[0]).toMatchObject({ executable: `${BIN}/ggml-rpc-server`, args: ['--host', '127.0.0.1', '--port', '50052', '--device', 'CUDA0', '--threads', '4', '--cache'] });
    const onPath = check('[instance.w]\nengine = "rpc-worker"\n', ctx({ path: { 'rpc-server': '/usr/local/bin/rpc-server' } }));
    expect(onPath.plan!.instances[0]).toMatchObject({ executable: '/usr/local/bin/rpc-server', env: { LD_LIBRARY_PATH: '/usr/local/bin' } });
  });

  it('a non-loopback host is a warning naming the insecurity, unless allow_network = true', () => {
    const open = check('[instance.w]\nengine = "rpc-worker"\nhost = "0.0.0.0"\n');
    expect(open.plan).not.toBeNull();
    expect(open.warnings).toEqual([expect.stringMatching(/^instance\.w\.host: rpc-server listens on 0\.0\.0\.0, not loopback: .*no authentication or encryption.*allow_network = true/)]);
    expect(check('[instance.w]\nengine = "rpc-worker"\nhost = "10.0.0.5"\nallow_network = true\n').warnings).toEqual([]);
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) expect(check(`[instance.w]\nengine = "rpc-worker"\nhost = "${host}"\n`).warnings).toEqual([]);
  });

  it('is never a gateway route', () => {
    const { errors } = check(`${WORKER}[gateway]\ndefault = "w"\n`);
    expect(errors).toEqual(['gateway.default: no instance named "w" (instances: none)']);
  });

  it.each([
    ['[instance.w]\nengine = "rpc-worker"\n[instance.w.server]\nport = 1\n', 'instance.w.server: an rpc-worker instance has no [server] table'],
    ['[instance.w]\nengine = "rpc-worker"\ncommand = ["x"]\n', 'instance.w.command: command is a key of engine = "command" instances, not of rpc-worker'],
    ['[instance.w]\nengine = "rpc-worker"\nrpc = ["a:1"]\n', 'instance.w.rpc: rpc lists a llama-server leader\'s RPC workers'],
    ['[instance.x]\nallow_network = true\n', 'instance.x.allow_network: allow_network is a key of engine = "rpc-worker" instances'],
    ['[instance.x]\nrpc = ["nohost"]\n', 'instance.x.rpc.0: expected "host:port"'],
    ['[instance.x]\nrpc = ["a:1,b:2"]\n', 'instance.x.rpc.0: expected "host:port"'],
    ['[instance.w]\nengine = "rpc-worker"\nthreads = 0\n', 'instance.w.threads:'],
    ['[instance.control]\non_demand = true\n[instance.w]\nengine = "rpc-worker"\n', 'instance.w.control.on_demand: an rpc-worker is loaded by no request'],
  ])('refuses %j', (text, message) => {
    expect(check(text).errors.join('\n')).toContain(message);
  });

  it('belongs in llama.cpp\'s file only', () => {
    const r = makeLaunchPlan('[instance.w]\nengine = "rpc-worker"\n', { ...ctx(), kind: 'vllm' });
    expect(r.issues.map((i) => i.message).join('\n')).toMatch(/engine may be "vllm", "command", not "rpc-worker"/);
  });
});

describe('a leader\'s rpc = [...]', () => {
  it('renders --rpc after the server keys, and its workers are what the start waits for', () => {
    const { plan } = check('[instance.llm]\nrpc = ["127.0.0.1:50060", "w-1.grp:50052", "[::1]:50061"]\n[instance.llm.server]\nmodel = "/m.gguf"\nport = 8090\n');
    const [leader] = plan!.instances;
    expect(leader.args).toEqual(['--model', '/m.gguf', '--port', '8090', '--rpc', '127.0.0.1:50060,w-1.grp:50052,[::1]:50061']);
    expect(leader.rpcWorkers).toEqual(['127.0.0.1:50060', 'w-1.grp:50052', '[::1]:50061']);
    expect(leader.probe).toBe('http');
  });

  it('an empty list renders nothing (leader-entry.sh fills it at start)', () => {
    const { plan } = check('[instance.llm]\nrpc = []\n[instance.llm.server]\nmodel = "/m.gguf"\n');
    expect(plan!.instances[0].args).toEqual(['--model', '/m.gguf']);
    expect(plan!.instances[0].rpcWorkers).toEqual([]);
  });

  it('a --rpc written as a server key or in extra_args is waited for all the same', () => {
    expect(findRpcWorkers(['--rpc', 'a:1, b:2', '--rpc=c:3'])).toEqual(['a:1', 'b:2', 'c:3']);
    const { plan } = check('[instance.llm.server]\nmodel = "/m.gguf"\nrpc = "127.0.0.1:50060"\n');
    expect(plan!.instances[0].rpcWorkers).toEqual(['127.0.0.1:50060']);
  });

  it('splits host and port, IPv6 without brackets', () => {
    expect(splitRpcAddress('w-1.grp:50052')).toEqual({ host: 'w-1.grp', port: 50052 });
    expect(splitRpcAddress('[::1]:50061')).toEqual({ host: '::1', port: 50061 });
  });
});
