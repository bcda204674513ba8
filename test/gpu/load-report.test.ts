// The load report read from llama-server logs: a real CPU load at verbosity 4
// (recorded here), and the GPU lines of fitted and reduced loads.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { emptyLoadReport, gpuBuffers, isFitReduced, loadPercent, readLoadLine, readLoadLog } from '../../src/gpu/load-report.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/llama-logs/${name}`, import.meta.url), 'utf8').split('\n');

describe('readLoadLog', () => {
  it('reads a whole CPU load of the tiny model: fit on host memory, buffers, context, phases', () => {
    const report = readLoadLog(fixture('cpu-tiny-verbosity4.log'));
    expect(report).toMatchObject({
      phase: 'listening',
      fit: { projectedMiB: 97, freeMiB: 24105, memory: 'host' },
      fitDecision: 'unchanged',
      contextReduced: null,
      offloaded: null,
      nCtx: 65536,
      nCtxTrain: 65536,
    });
    expect(report.buffers).toEqual({ CPU_Mapped: { model: 0.49, kv: 0, compute: 0 }, CPU: { model: 0, kv: 32, compute: 65.01 } });
    expect(gpuBuffers(report)).toEqual([]);
    expect(isFitReduced(report)).toBe(false);
  });

  it('follows the phases in order, and the percentage with them', () => {
    const phases: string[] = [];
    let report = emptyLoadReport();
    for (const line of fixture('cpu-tiny-verbosity4.log')) {
      report = readLoadLine(report, line);
      if (phases.at(-1) !== report.phase) phases.push(report.phase);
    }
    expect(phases).toEqual(['spawned', 'fitting', 'reading', 'tensors', 'context', 'warmup', 'listening']);
    expect(loadPercent({ phase: 'tensors' })).toBe(20);
    expect(loadPercent({ phase: 'listening' })).toBe(100);
  });

  it('a second instance whose context fit cut to the free memory (the H200 case)', () => {
    const report = readLoadLog([
      '0.00.400.001 I common_params_fit_impl: projected to use 87398 MiB of device memory vs. 54637 MiB of free device memory',
      '0.00.400.002 I common_params_fit_impl: cannot meet free memory target of 1024 MiB, need to reduce device memory by 33785 MiB',
      '0.00.400.003 I common_params_fit_impl: context size reduced from 131072 to 71936 -> need 33792 MiB less memory in total',
      '0.00.400.004 I common_params_fit_impl: entire model can be fit by reducing context',
      '0.00.500.000 I load_tensors: offloaded 33/33 layers to GPU',
      '0.00.500.001 I load_tensors:        CUDA0 model buffer size = 12358.55 MiB',
      '0.00.500.002 I load_tensors:   CPU_Mapped model buffer size =   250.00 MiB',
      '0.00.600.000 I llama_context: n_ctx                 = 71936',
      '0.00.600.001 I llama_kv_cache:      CUDA0 KV buffer size = 35968.00 MiB',
      '0.00.600.002 I sched_reserve:      CUDA0 compute buffer size =  5248.01 MiB',
    ]);
    expect(report).toMatchObject({ fitDecision: 'context-reduced', contextReduced: { from: 131072, to: 71936 }, nCtx: 71936, fit: { freeMiB: 54637, memory: 'device' } });
    expect(isFitReduced(report)).toBe(true);
    expect(gpuBuffers(report)).toEqual([{ device: 0, mib: 12358.55 + 35968 + 5248.01, buffers: { model: 12358.55, kv: 35968, compute: 5248.01 } }]);
  });

  it('layers moved to system memory, and a failed fit', () => {
    const moved = readLoadLog([
      'common_params_fit_impl: projected to use 187398 MiB of device memory vs. 142629 MiB of free device memory',
      'common_params_fit_impl: filling dense layers back-to-front:',
      'load_tensors: offloaded 20/33 layers to GPU',
    ]);
    expect(moved).toMatchObject({ fitDecision: 'layers-moved', offloaded: { layers: 20, of: 33 } });
    expect(isFitReduced(moved)).toBe(true);
    expect(readLoadLog(['W common_fit_params: failed to fit params to free device memory: n_gpu_layers already set by user']).fitDecision).toBe('failed');
  });

  it('keeps the device projection over the host one, and ignores lines that say nothing', () => {
    const report = readLoadLog([
      'common_params_fit_impl: projected to use 300 MiB of device memory vs. 1000 MiB of free device memory',
      'common_params_fit_impl: projected to use 97 MiB of host memory vs. 24105 MiB of total host memory',
      'something else entirely',
    ]);
    expect(report.fit).toEqual({ projectedMiB: 300, freeMiB: 1000, memory: 'device' });
    expect(report.lines).toBe(2);
    const same = emptyLoadReport();
    expect(readLoadLine(same, 'slot update_slots: nothing')).toBe(same);
  });
});

describe('recorded on an H200 (bench/gpu/record-fixtures.sh): a 7B-shaped model with a 131072 context', () => {
  it('the first instance fits with nothing changed', () => {
    const report = readLoadLog(fixture('h200-fitted.log'));
    expect(report).toMatchObject({ phase: 'listening', fitDecision: 'unchanged', contextReduced: null, offloaded: { layers: 33, of: 33 }, nCtx: 131072, nCtxTrain: 131072 });
    expect(report.fit).toMatchObject({ memory: 'device', freeMiB: 142629 });
    const [gpu] = gpuBuffers(report);
    expect(gpu.device).toBe(0);
    expect(gpu.buffers.kv).toBe(65536);
    expect(isFitReduced(report)).toBe(false);
  });

  it('the second gets its context cut to the memory left', () => {
    const report = readLoadLog(fixture('h200-context-reduced.log'));
    expect(report).toMatchObject({ fitDecision: 'context-reduced', contextReduced: { from: 131072, to: 71936 }, nCtx: 71936, fit: { projectedMiB: 87395, freeMiB: 54641 } });
    expect(gpuBuffers(report)[0].buffers).toEqual({ model: 12355.78, kv: 35968, compute: 5230.51 });
    expect(isFitReduced(report)).toBe(true);
  });

  it('a fit that gives up after cutting the context keeps the cut: the tiny model with -ngl 99 on a full GPU', () => {
    const report = readLoadLog(fixture('h200-tiny-fit-gave-up.log'));
    expect(report).toMatchObject({ fitDecision: 'context-reduced', contextReduced: { from: 65536, to: 4096 }, nCtx: 4096, nCtxTrain: 65536 });
    expect(isFitReduced(report)).toBe(true);
  });

  it('a third with a context set by the user has its layers moved to the CPU', () => {
    const report = readLoadLog(fixture('h200-layers-moved.log'));
    expect(report).toMatchObject({ fitDecision: 'layers-moved', offloaded: { layers: 0, of: 33 }, nCtx: 8192, contextReduced: null });
    expect(report.buffers.CPU_Mapped.model).toBe(12358.55);
    expect(gpuBuffers(report).map((g) => g.mib)).toEqual([163.5]);
  });
});
