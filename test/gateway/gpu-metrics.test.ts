// /metrics with GPUs: DCGM-exporter names and labels for each GPU (so
// dashboards built for DCGM read them), and each instance's GPU memory,
// context and reduced fits, rendered from the H200 recordings.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseGpuCsv, parseProcessCsv } from '../../src/gpu/inventory.ts';
import { GatewayMetrics } from '../../src/gateway/metrics.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/gpu/${name}`, import.meta.url), 'utf8');
const render = (gpu: Parameters<GatewayMetrics['render']>[0]['gpu']) =>
  new GatewayMetrics().render({ targets: [], stats: () => ({ inflight: 0, requests: 0, held: 0 }), bodies: { used: 0, capacity: 1, waiting: 0 }, gpu }).split('\n');

describe('GPU metrics', () => {
  const snapshot = { at: 0, gpus: parseGpuCsv(fixture('nvidia-smi-two.csv')), processes: parseProcessCsv(fixture('apps-two.csv')) };
  const labels = 'gpu="0",UUID="GPU-315cd002-e974-3bdd-c635-f8e7f15b6430",modelName="NVIDIA H200"';

  it('per GPU, as DCGM names them', () => {
    const lines = render({ snapshot, instances: [] });
    expect(lines).toContain(`DCGM_FI_DEV_FB_USED{${labels}} 142139`);
    expect(lines).toContain(`DCGM_FI_DEV_FB_FREE{${labels}} 1018`);
    expect(lines).toContain(`DCGM_FI_DEV_GPU_UTIL{${labels}} 39`);
    expect(lines).toContain('# TYPE DCGM_FI_DEV_FB_USED gauge');
  });

  it('per instance: memory by GPU and source, context configured/trained/actual, reduced fits', () => {
    const lines = render({
      snapshot,
      instances: [
        { name: 'a', memory: [{ gpu: 0, uuid: null, mib: 87982, source: 'nvml' }], context: { configured: null, trained: 131072, actual: 131072 }, fitReducedCount: 0 },
        { name: 'b', memory: [{ gpu: 0, uuid: null, mib: 53554, source: 'buffers' }], context: { configured: null, trained: 131072, actual: 71936 }, fitReducedCount: 1 },
      ],
    });
    expect(lines).toEqual(expect.arrayContaining([
      'supervisor_instance_gpu_memory_mib{instance="a",gpu="0",source="nvml"} 87982',
      'supervisor_instance_gpu_memory_mib{instance="b",gpu="0",source="buffers"} 53554',
      'supervisor_instance_context_tokens{instance="b",kind="actual"} 71936',
      'supervisor_instance_context_tokens{instance="b",kind="trained"} 131072',
      'supervisor_instance_fit_reduced_total{instance="b"} 1',
    ]));
    expect(lines.some((l) => l.includes('kind="configured"'))).toBe(false);
  });

  it('without GPUs there is no GPU family at all', () => {
    expect(render(null).some((l) => l.includes('DCGM') || l.includes('gpu_memory'))).toBe(false);
  });
});
