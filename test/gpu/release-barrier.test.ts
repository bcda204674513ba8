// The release barrier's decision on recorded H200 facts, in both pid worlds,
// and the /proc scan for processes that still have a GPU device open.
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseGpuCsv, parseProcessCsv } from '../../src/gpu/inventory.ts';
import { checkRelease, findDeviceHolders, type ExitSnapshot } from '../../src/gpu/release-barrier.ts';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/gpu/${name}`, import.meta.url), 'utf8');
const three = parseGpuCsv(fixture('nvidia-smi-three.csv'));
const two = parseGpuCsv(fixture('nvidia-smi-two.csv'));
// The fitted server (pid 5319, 87982 MiB) exited while three ran: 142826 MiB were in use.
const snapshot: ExitSnapshot = { heldMiB: new Map([[0, 87982]]), usedAtExitMiB: new Map([[0, 142826]]), pids: [5319] };

describe('checkRelease', () => {
  it('with our own pids: not released while the driver still lists the exited pid, released once it is gone', () => {
    const still = checkRelease(snapshot, { gpus: three, processes: parseProcessCsv(fixture('apps-three.csv')), pidsAreOurs: true, holders: [] });
    expect(still).toEqual({ released: false, reason: "the last run's memory is not back yet: pid 5319 holds 87982 MiB on GPU 0" });
    const gone = checkRelease(snapshot, { gpus: three, processes: parseProcessCsv('5413, GPU-315cd002-e974-3bdd-c635-f8e7f15b6430, 54140\n'), pidsAreOurs: true, holders: [] });
    expect(gone).toEqual({ released: true });
  });

  it('with foreign pids (a container): by the memory in use on the GPU', () => {
    expect(checkRelease(snapshot, { gpus: three, processes: null, pidsAreOurs: false, holders: [] })).toEqual({
      released: false,
      reason: "GPU 0: 142826 MiB in use, the last run's 87982 MiB not back yet",
    });
    // 142826 - 87982 = 54844: the release.txt recording saw 54839 MiB in use 144 ms after the kill.
    const after = [{ ...three[0], usedMiB: 54839 }];
    expect(checkRelease(snapshot, { gpus: after, processes: null, pidsAreOurs: false, holders: [] })).toEqual({ released: true });
  });

  it('a process of the instance that still has the device open holds the barrier, whatever the memory says', () => {
    expect(checkRelease(snapshot, { gpus: two, processes: [], pidsAreOurs: true, holders: [777] })).toEqual({
      released: false,
      reason: 'pid 777 of the last run still has the GPU open',
    });
  });

  it('an instance that held nothing passes at once', () => {
    expect(checkRelease({ heldMiB: new Map(), usedAtExitMiB: new Map(), pids: [1] }, { gpus: three, processes: null, pidsAreOurs: false, holders: [] })).toEqual({ released: true });
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
