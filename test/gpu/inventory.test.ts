// nvidia-smi's answers as recorded on an H200 (bench/gpu/record-fixtures.sh),
// and the shapes it takes elsewhere (several GPUs, MIG, unknown values).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { addMigDevices, findGpu, parseGpuCsv, parseProcessCsv } from '../../src/gpu/inventory.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/gpu/${name}`, import.meta.url), 'utf8');
const H200 = 'GPU-315cd002-e974-3bdd-c635-f8e7f15b6430';

describe('parseGpuCsv', () => {
  it('reads the recorded H200, idle and with two instances loaded', () => {
    expect(parseGpuCsv(fixture('nvidia-smi-idle.csv'))).toEqual([
      { index: 0, uuid: H200, name: 'NVIDIA H200', totalMiB: 143771, usedMiB: 0, freeMiB: 143156, utilization: 0, pciBusId: '00000000:00:06.0', mig: [] },
    ]);
    expect(parseGpuCsv(fixture('nvidia-smi-two.csv'))[0]).toMatchObject({ usedMiB: 142139, freeMiB: 1018 });
  });

  it('reads several GPUs, and [N/A] as unknown', () => {
    const text = '0, GPU-a, NVIDIA H200, 143771, 10, 143000, 0, 00000000:18:00.0\n1, GPU-b, NVIDIA H200, [N/A], [N/A], [N/A], [Not Supported], 00000000:2A:00.0\n';
    const gpus = parseGpuCsv(text);
    expect(gpus.map((g) => [g.index, g.uuid, g.totalMiB, g.utilization])).toEqual([[0, 'GPU-a', 143771, 0], [1, 'GPU-b', null, null]]);
  });

  it('refuses what is not its CSV (a driver error message), naming the row', () => {
    expect(() => parseGpuCsv("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")).toThrow(/expected 8 fields in row 1/);
  });
});

describe('parseProcessCsv', () => {
  it('reads the recorded processes: three llama-servers on one GPU', () => {
    expect(parseProcessCsv(fixture('apps-three.csv'))).toEqual([
      { pid: 5319, gpuUuid: H200, usedMiB: 87982 },
      { pid: 5413, gpuUuid: H200, usedMiB: 54140 },
      { pid: 5478, gpuUuid: H200, usedMiB: 682 },
    ]);
    expect(parseProcessCsv(fixture('apps-idle.csv'))).toEqual([]);
  });
});

describe('MIG and gpu_ids', () => {
  const gpus = parseGpuCsv('0, GPU-a, NVIDIA H200, 143771, 0, 143000, 0, 00000000:18:00.0\n1, GPU-b, NVIDIA H200, 143771, 0, 143000, 0, 00000000:2A:00.0\n');
  const listing = 'GPU 0: NVIDIA H200 (UUID: GPU-a)\n  MIG 1g.18gb     Device  0: (UUID: MIG-aaaa-1)\n  MIG 1g.18gb     Device  1: (UUID: MIG-aaaa-2)\nGPU 1: NVIDIA H200 (UUID: GPU-b)\n';
  it('adds the MIG devices listed under their GPU', () => {
    const withMig = addMigDevices(gpus, listing);
    expect(withMig[0].mig).toEqual([{ profile: '1g.18gb', index: 0, uuid: 'MIG-aaaa-1' }, { profile: '1g.18gb', index: 1, uuid: 'MIG-aaaa-2' }]);
    expect(withMig[1].mig).toEqual([]);
    expect(addMigDevices(parseGpuCsv(fixture('nvidia-smi-idle.csv')), fixture('nvidia-smi-L.txt'))[0].mig).toEqual([]);
  });

  it('finds a GPU by index, by its UUID, or by one of its MIG devices', () => {
    const withMig = addMigDevices(gpus, listing);
    expect(findGpu(withMig, '1')?.uuid).toBe('GPU-b');
    expect(findGpu(withMig, 'GPU-a')?.index).toBe(0);
    expect(findGpu(withMig, 'MIG-aaaa-2')?.index).toBe(0);
    expect(findGpu(withMig, '7')).toBeNull();
    expect(findGpu(withMig, 'GPU-zzz')).toBeNull();
  });
});
