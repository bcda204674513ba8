// The release barrier and GPU memory end to end: the built daemon, a real
// (fake) server process, and a fake nvidia-smi on PATH whose process list the
// test edits, standing in for a driver that has not let go of the memory yet.
import { chmodSync, copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fakeInstance, fakeMaster, startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { freePort } from '../support/llama-server.ts';

const FAKE_SMI = new URL('../fixtures/gpu/fake-nvidia-smi.sh', import.meta.url).pathname;
const UUID = 'GPU-fa6e0000-0000-0000-0000-000000000000';

let daemon: DaemonHandle | undefined;
const bins: string[] = [];
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
  for (const bin of bins.splice(0)) rmSync(bin, { recursive: true, force: true });
});

/** A daemon that finds the fake nvidia-smi first on PATH; `apps` is the file it lists processes from. */
async function startWithFakeGpu(control: string): Promise<{ d: DaemonHandle; apps: string }> {
  const port = await freePort();
  const config = `${fakeMaster()}[instance.control]\nlog_dir = "@DIR@"\nbackoff_initial_ms = 100\n` + fakeInstance('g', port, [], control);
  // The bin dir and apps file must exist before the daemon asks; the daemon's dir is made by startDaemon, so use a sibling.
  const bin = join(process.env.TMPDIR ?? '/tmp', `fake-smi-${process.pid}-${port}`);
  mkdirSync(bin, { recursive: true });
  bins.push(bin);
  copyFileSync(FAKE_SMI, join(bin, 'nvidia-smi'));
  chmodSync(join(bin, 'nvidia-smi'), 0o755);
  const apps = join(bin, 'apps.csv');
  writeFileSync(apps, '');
  const d = await startDaemon(config, { PATH: `${bin}:${process.env.PATH}`, FAKE_SMI_APPS: apps });
  return { d, apps };
}

describe('the release barrier with a driver that holds on (fake nvidia-smi)', () => {
  it('waits after a kill -9 until the driver no longer lists the dead pid, says how long, and shows the memory by its source', async () => {
    const { d, apps } = await startWithFakeGpu('gpu_ids = "0"\nrestart = "always"\n');
    daemon = d;
    const first = await d.waitForState('g', 'ready');
    writeFileSync(apps, `${first.pid}, ${UUID}, 4096\n`);
    await d.waitFor(() => d.status()[0].gpu?.memory?.[0]?.mib === 4096, 10_000, () => `the nvml figure (last: ${JSON.stringify(d.status()[0].gpu)})`);
    expect(d.status()[0].gpu).toEqual({ devices: [0], memory: [{ gpu: 0, uuid: UUID, mib: 4096, source: 'nvml' }], release: null });
    const killed = Date.now();
    process.kill(first.pid, 'SIGKILL');
    const waiting = await d.waitForState('g', 'waiting', 10_000);
    expect(waiting.state_reason).toBe(`GPU release: the last run's memory is not back yet: pid ${first.pid} holds 4096 MiB on GPU 0`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(d.status()[0].state).toBe('waiting');
    writeFileSync(apps, '');
    const again = await d.waitForState('g', 'ready', 10_000);
    expect(Date.now() - killed).toBeGreaterThanOrEqual(1000);
    expect(again.pid).not.toBe(first.pid);
    expect(again.gpu.release.warning).toBeNull();
    expect(again.gpu.release.waited_ms).toBeGreaterThanOrEqual(900);
    await d.waitFor(() => d.events.some((e) => e.event === 'gpu-released'), 5000, 'the gpu-released event');
  });

  it('starts anyway after gpu_release_timeout_s, with the warning in status', async () => {
    const { d, apps } = await startWithFakeGpu('gpu_ids = "0"\nrestart = "always"\ngpu_release_timeout_s = 1\n');
    daemon = d;
    const first = await d.waitForState('g', 'ready');
    writeFileSync(apps, `${first.pid}, ${UUID}, 4096\n`);
    process.kill(first.pid, 'SIGKILL');
    await d.waitFor(() => d.status()[0].pid !== null && d.status()[0].pid !== first.pid, 10_000, 'the start after the timeout');
    expect(d.status()[0].gpu.release.warning).toBe(`started anyway after 1 s: the last run's memory is not back yet: pid ${first.pid} holds 4096 MiB on GPU 0`);
    expect(d.cli('status').stdout).toContain('g GPU release: started anyway after 1 s');
  });

  it('gpu_ids = "none": no GPU in status, the table says CPU; supervisor gpus lists the GPU', async () => {
    const { d } = await startWithFakeGpu('gpu_ids = "none"\n');
    daemon = d;
    const row = await d.waitForState('g', 'ready');
    expect(row.gpu).toBeNull();
    expect(d.cli('status').stdout).toMatch(/none \(CPU\)/);
    const gpus = JSON.parse(d.cli('gpus', '--json').stdout);
    expect(gpus).toMatchObject({ present: true, gpus: [{ index: 0, uuid: UUID, total_mib: 81920, used_mib: 0, instances: [] }] });
    expect(d.cli('gpus').stdout).toBe('GPU 0 Fake GPU: 0/81920 MiB used\n');
  });
});
