// Several config files, one daemon: the union of their plans.
import { describe, expect, it } from 'vitest';
import { combinePlans } from '../../src/config/combine-plans.ts';
import { makeLaunchPlan } from '../../src/config/launch-plan.ts';
import type { ConfigKind } from '../../src/config/config-kind.ts';

const planOf = (text: string, kind: ConfigKind) => {
  const r = makeLaunchPlan(text, { env: {}, file: `${kind}.toml`, isFile: () => false, which: () => '/bin/x', kind });
  if (!r.plan) throw new Error(JSON.stringify(r.issues));
  return { kind, file: `${kind}.toml`, plan: r.plan };
};

describe('combinePlans', () => {
  const llama = planOf('[gateway]\nenable = true\nport = 4000\n[instance.a.server]\nport = 8080\n', 'llama-cpp');
  const vllm = planOf('[instance.v.server]\nport = 8000\n', 'vllm');

  it('one file: its plan as it is', () => {
    expect(combinePlans([llama]).plan).toBe(llama.plan);
  });

  it('llama.cpp, vLLM, SGLang in that order; the gateway is the llama.cpp file\'s', () => {
    const sglang = planOf('[instance.s.server]\nport = 30000\n', 'sglang');
    const { plan } = combinePlans([llama, vllm, sglang]);
    expect(plan?.instances.map((i) => [i.name, i.engine])).toEqual([['a', 'llama-server'], ['v', 'vllm'], ['s', 'sglang']]);
    expect(plan?.gateway).toMatchObject({ enabled: true, port: 4000 });
  });

  it("the gateway is planned over every file's instances: its default may name a vLLM instance, its port may clash with one", () => {
    const withDefault = planOf('[gateway]\nport = 4000\ndefault = "a"\n[instance.a.server]\nport = 8080\n', 'llama-cpp');
    expect(combinePlans([withDefault, vllm]).plan?.gateway).toMatchObject({ enabled: true });
    const onlyGateway = planOf('[gateway]\nport = 8000\n', 'llama-cpp');
    const r = combinePlans([onlyGateway, vllm]);
    expect(r.plan).toBeNull();
    expect(r.issues[0]).toMatchObject({ file: 'llama-cpp.toml', path: 'gateway.port', message: 'port 8000 is also used by instance "v" (the gateway needs a port of its own)' });
  });

  it('master.enable = false in one file disables only its own instances', () => {
    const off = planOf('[master]\nenable = false\n[instance.v.server]\nport = 8000\n', 'vllm');
    const { plan } = combinePlans([llama, off]);
    expect(plan?.enabled).toBe(true);
    expect(plan?.instances.map((i) => i.enabled)).toEqual([true, false]);
  });

  it('a name or a port in two files is an error naming both', () => {
    const same = planOf('[instance.a.server]\nport = 8001\n', 'vllm');
    expect(combinePlans([llama, same]).issues[0].message).toBe('instance "a" is also in llama-cpp.toml (llama-cpp); names must differ across config files');
    const port = planOf('[instance.v.server]\nport = 8080\n', 'vllm');
    const r = combinePlans([llama, port]);
    expect(r.plan).toBeNull();
    expect(r.issues[0]).toMatchObject({ file: 'vllm.toml', path: 'instance.v', message: 'port 8080 is also used by instance "a" of llama-cpp.toml' });
  });
});
