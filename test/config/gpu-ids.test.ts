// What issue 18 added to the plan: gpu_ids by UUID, CUDA_DEVICE_ORDER for
// explicit ids, llama-server's load verbosity through the environment (argv
// untouched), the fit and release keys, and the checks against this machine's GPUs.
import { describe, expect, it } from 'vitest';
import { checkGpuIds, resolveGpuId, selectGpus } from '../../src/config/gpu-ids.ts';
import { makeLaunchPlan, type PlanContext } from '../../src/config/launch-plan.ts';

const ctx = (over: Partial<PlanContext> = {}): PlanContext => ({ env: {}, file: 't.toml', isFile: () => false, which: () => null, ...over });
const one = (control: string, server = 'port = 8080\n', c = ctx()) => {
  const result = makeLaunchPlan(`[instance.a.control]\n${control}\n[instance.a.server]\n${server}`, c);
  return { instance: result.plan?.instances[0], issues: result.issues };
};
const H200 = [
  { index: 0, uuid: 'GPU-315cd002-e974-3bdd-c635-f8e7f15b6430', mig: [] },
  { index: 1, uuid: 'GPU-aaaa0000-0000-0000-0000-000000000001', mig: [{ uuid: 'MIG-11112222-3333-4444-5555-666677778888' }] },
];

describe('gpu_ids', () => {
  it('takes indices and UUIDs, GPU- and MIG-; anything else is an error naming what is expected', () => {
    expect(one('gpu_ids = "GPU-315cd002-e974-3bdd-c635-f8e7f15b6430,1"').instance?.env.CUDA_VISIBLE_DEVICES).toBe('GPU-315cd002-e974-3bdd-c635-f8e7f15b6430,1');
    expect(one('gpu_ids = "MIG-11112222-3333-4444-5555-666677778888"').instance?.env.CUDA_VISIBLE_DEVICES).toBe('MIG-11112222-3333-4444-5555-666677778888');
    const bad = one('gpu_ids = "0;1"');
    expect(bad.instance).toBeUndefined();
    expect(bad.issues[0].message).toMatch(/expected "all", "none", or GPU indices or UUIDs/);
  });

  it('explicit ids get CUDA_DEVICE_ORDER=PCI_BUS_ID (index N = nvidia-smi\'s N); all and none do not; a user setting wins', () => {
    expect(one('gpu_ids = "0,1"').instance?.env.CUDA_DEVICE_ORDER).toBe('PCI_BUS_ID');
    expect(one('gpu_ids = "0,1"').instance?.envNotes?.CUDA_DEVICE_ORDER).toMatch(/index N is the GPU nvidia-smi lists as N/);
    expect(one('gpu_ids = "all"').instance?.env.CUDA_DEVICE_ORDER).toBeUndefined();
    expect(one('gpu_ids = "none"').instance?.env).toMatchObject({ CUDA_VISIBLE_DEVICES: '' });
    expect(one('gpu_ids = "none"').instance?.env.CUDA_DEVICE_ORDER).toBeUndefined();
    expect(one('gpu_ids = "1"\nenv = { CUDA_DEVICE_ORDER = "FASTEST_FIRST" }').instance?.env.CUDA_DEVICE_ORDER).toBe('FASTEST_FIRST');
    expect(one('gpu_ids = "1"', 'port = 8080\n', ctx({ env: { CUDA_DEVICE_ORDER: 'FASTEST_FIRST' } })).instance?.env.CUDA_DEVICE_ORDER).toBeUndefined();
  });

  it('selectGpus and resolveGpuId', () => {
    expect([selectGpus(null), selectGpus('ALL'), selectGpus('none'), selectGpus('0,GPU-x')]).toEqual(['all', 'all', 'none', ['0', 'GPU-x']]);
    expect(resolveGpuId(H200, '1')).toBe(1);
    expect(resolveGpuId(H200, 'MIG-11112222-3333-4444-5555-666677778888')).toBe(1);
    expect(resolveGpuId(H200, '2')).toBeNull();
  });
});

describe('llama-server load verbosity', () => {
  it('adds LLAMA_ARG_LOG_VERBOSITY=4 to the environment, argv untouched, and says why', () => {
    const { instance } = one('');
    expect(instance?.env.LLAMA_ARG_LOG_VERBOSITY).toBe('4');
    expect(instance?.args).toEqual(['--port', '8080']);
    expect(instance?.envNotes?.LLAMA_ARG_LOG_VERBOSITY).toMatch(/argv unchanged.*buffers, offload and fit/);
  });

  it('leaves the verbosity alone when the user chose one: env table, our environment, or a flag', () => {
    expect(one('env = { LLAMA_ARG_LOG_VERBOSITY = "1" }').instance?.env.LLAMA_ARG_LOG_VERBOSITY).toBe('1');
    expect(one('', 'port = 8080\n', ctx({ env: { LLAMA_ARG_LOG_VERBOSITY: '2' } })).instance?.env.LLAMA_ARG_LOG_VERBOSITY).toBeUndefined();
    for (const flag of ['"-v"', '"--verbose"', '"-lv", "1"', '"--verbosity", "2"', '"--log-verbosity=3"']) {
      const { instance } = one('', `port = 8080\nextra_args = [${flag}]\n`);
      expect({ flag, env: instance?.env.LLAMA_ARG_LOG_VERBOSITY }).toEqual({ flag, env: undefined });
    }
  });
});

describe('the fit and release keys', () => {
  it('default to warn and 15 s, and are checked', () => {
    expect(one('').instance?.policy).toMatchObject({ onFitReduced: 'warn', gpuReleaseTimeoutS: 15 });
    expect(one('on_fit_reduced = "fail"\ngpu_release_timeout_s = 2.5').instance?.policy).toMatchObject({ onFitReduced: 'fail', gpuReleaseTimeoutS: 2.5 });
    expect(one('on_fit_reduced = "shrug"').issues[0]).toMatchObject({ path: 'instance.a.control.on_fit_reduced', severity: 'error' });
    expect(one('gpu_release_timeout_s = -1').issues[0]).toMatchObject({ path: 'instance.a.control.gpu_release_timeout_s', severity: 'error' });
  });

  it('the configured context is read from --ctx-size', () => {
    expect(one('', 'port = 8080\nctx_size = 131072\n').instance?.ctxSize).toBe(131072);
    expect(one('').instance?.ctxSize).toBeNull();
  });
});

describe('checks against the GPUs of the machine', () => {
  it('warns about ids that name no GPU, at the key, and only when the GPUs are known', () => {
    const { issues } = one('gpu_ids = "0,3"', 'port = 8080\n', ctx({ gpus: H200 }));
    expect(issues).toEqual([expect.objectContaining({ severity: 'warning', path: 'instance.a.control.gpu_ids', message: expect.stringMatching(/names "3", which is no GPU of this machine \(GPUs: 0 \(GPU-315cd002/) })]);
    expect(one('gpu_ids = "0,3"').issues).toEqual([]);
  });

  it('says when enabled instances share a GPU (by index or UUID), and not for disabled or CPU ones', () => {
    const instances = [
      { name: 'a', enabled: true, gpuIds: '0' },
      { name: 'b', enabled: true, gpuIds: 'GPU-315cd002-e974-3bdd-c635-f8e7f15b6430' },
      { name: 'c', enabled: false, gpuIds: '0' },
      { name: 'd', enabled: true, gpuIds: 'none' },
      { name: 'e', enabled: true, gpuIds: '1' },
    ];
    expect(checkGpuIds(instances, H200)).toEqual([{ instance: 'b', message: expect.stringMatching(/^shares GPU 0 with a: allowed, but each start sees only the memory the others left/) }]);
    // Both inherit every GPU: they share them all, where there are GPUs.
    const inherit = [{ name: 'x', enabled: true, gpuIds: null }, { name: 'y', enabled: true, gpuIds: null }];
    expect(checkGpuIds(inherit, H200).map((i) => i.message.slice(0, 13))).toEqual(['shares GPU 0 ', 'shares GPU 1 ']);
    expect(checkGpuIds(inherit, null)).toEqual([]);
  });
});
