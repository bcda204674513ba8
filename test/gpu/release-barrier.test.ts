// The release barrier's decision on recorded H200 facts, and the /proc scan
// for processes that still have a GPU device open.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseGpuCsv, parseProcessCsv } from '../../src/gpu/inventory.ts';
import { checkRelease, findDeviceHolders, listedPids } from '../../src/gpu/release-barrier.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/gpu/${name}`, import.meta.url), 'utf8');
const gpus = parseGpuCsv(fixture('nvidia-smi-three.csv'));
const three = parseProcessCsv(fixture('apps-three.csv'));
const two = parseProcessCsv(fixture('apps-three.csv')).filter((p) => p.pid !== 5319);

describe('checkRelease', () => {
  it('waits while the driver still lists a pid it listed at the exit, and not after', () => {
    // The fitted server (pid 5319, 87982 MiB) exited while three ran, and the driver still listed it.
    const snapshot = { pids: [5319, 5320], listed: listedPids([5319, 5320], three) };
    expect(snapshot.listed).toEqual([5319]);
    expect(checkRelease(snapshot, { processes: three, gpus, holders: [] })).toEqual({
      released: false,
      reason: "the last run's memory is not back yet: pid 5319 holds 87982 MiB on GPU 0",
    });
    expect(checkRelease(snapshot, { processes: two, gpus, holders: [] })).toEqual({ released: true });
  });

  it('in a container (host pids, none of ours listed) only open device files decide', () => {
    const snapshot = { pids: [12], listed: listedPids([12], three) };
    expect(snapshot.listed).toEqual([]);
    expect(checkRelease(snapshot, { processes: three, gpus, holders: [] })).toEqual({ released: true });
  });

  it('a process of the instance that still has the device open holds the barrier, whatever the driver says', () => {
    expect(checkRelease({ pids: [1], listed: [] }, { processes: [], gpus, holders: [777] })).toEqual({
      released: false,
      reason: 'pid 777 of the last run still has the GPU open',
    });
  });
});

describe('findDeviceHolders', () => {
  let root: string;
  afterEach(async () => rm(root, { recursive: true, force: true }));

  it('finds the pids with a /dev/nvidia* fd, skipping vanished ones', async () => {
    root = await mkdtemp(join(tmpdir(), 'fake-proc-'));
    for (const [pid, targets] of [[10, ['/dev/null', '/dev/nvidia0']], [11, ['/dev/null', 'socket:[123]']], [12, ['/dev/nvidia-uvm']]] as const) {
      await mkdir(join(root, String(pid), 'fd'), { recursive: true });
      for (const [i, target] of targets.entries()) await symlink(target, join(root, String(pid), 'fd', String(i)));
    }
    expect(await findDeviceHolders([10, 11, 12, 13], { procRoot: root })).toEqual([10, 12]);
  });

  it('finds nothing open for this process', async () => {
    root = await mkdtemp(join(tmpdir(), 'fake-proc-'));
    expect(await findDeviceHolders([process.pid])).toEqual([]);
  });
});
