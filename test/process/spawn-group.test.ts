// spawnGroup: the exit is seen at the exit even while an escaped descendant
// holds the output pipes (issue 9, fault 1), the drain after it is bounded,
// and no signal ever goes to the bare pid once it was reaped.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { isSupervisorError } from '../../src/errors.ts';
import { isAlive, readProcStatSync } from '../../src/process/proc.ts';
import { sendSignal } from '../../src/process/signal.ts';
import { spawnGroup } from '../../src/process/spawn-group.ts';

let dir: string;
const leftovers: number[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spawn-group-'));
});
afterEach(async () => {
  for (const pid of leftovers.splice(0)) sendSignal(pid, 'SIGKILL');
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

const env = { PATH: process.env.PATH };

describe('spawnGroup', () => {
  it('starts the program as the leader of its own group, with exactly the environment given', async () => {
    const child = await spawnGroup({ file: 'sh', args: ['-c', 'echo "$ONLY_THIS:$HOME"; sleep 5'], env: { ...env, ONLY_THIS: 'x' } });
    leftovers.push(child.pid);
    expect(readProcStatSync(child.pid)?.pgrp).toBe(child.pid);
    const line = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString())));
    expect(line).toBe('x:\n');
    expect(child.signal('SIGTERM')).toBe(true);
    expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('resolves exited at the exit while a setsid grandchild keeps the pipes open; the drain gives up after its bound', async () => {
    const pidFile = join(dir, 'grandchild.pid');
    // The grandchild inherits stdout and stderr and leaves the group and session.
    const child = await spawnGroup({ file: 'sh', args: ['-c', `setsid sh -c 'echo $$ > ${pidFile}; exec sleep 1000' & sleep 0.3; echo last line; exit 3`], env });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    const started = Date.now();
    expect(await child.exited).toEqual({ code: 3, signal: null });
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    leftovers.push(grandchild);
    expect(isAlive(grandchild)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5000);
    const drainStarted = Date.now();
    expect(await child.drainOutput({ ms: 200, afterwards: 'close' })).toBe(false);
    expect(Date.now() - drainStarted).toBeGreaterThanOrEqual(190);
    expect(output).toBe('last line\n');
    expect(child.stdout.destroyed).toBe(true);
  });

  it('drains to the end when the pipes close with the exit', async () => {
    const child = await spawnGroup({ file: 'sh', args: ['-c', 'i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done'], env });
    let lines = 0;
    child.stdout.on('data', (d: Buffer) => (lines += d.toString().split('\n').length - 1));
    await child.exited;
    expect(await child.drainOutput({ ms: 5000, afterwards: 'close' })).toBe(true);
    expect(lines).toBe(2000);
  });

  it('keeps draining while output still arrives after the exit (a descendant writing its last lines), then ends with the pipes', async () => {
    // The leader exits at once; a background descendant keeps the pipe and writes for ~400 ms, far past the 100 ms silence bound.
    const child = await spawnGroup({ file: 'sh', args: ['-c', '(for i in $(seq 40); do echo line $i; sleep 0.01; done) & exit 0'], env });
    let lines = 0;
    child.stdout.on('data', (d: Buffer) => (lines += d.toString().split('\n').length - 1));
    await child.exited;
    expect(await child.drainOutput({ ms: 100, afterwards: 'close' })).toBe(true);
    expect(lines).toBe(40);
  });

  it('signals the group, never the bare pid (the leader leads a session, so it cannot leave its group)', async () => {
    const child = await spawnGroup({ file: 'sh', args: ['-c', 'exit 0'], env });
    await child.exited;
    const kill = vi.spyOn(process, 'kill');
    expect(child.signal('SIGKILL')).toBe(false);
    expect(kill.mock.calls.map(([target]) => target)).toEqual([-child.pid]);
  });

  it('rejects with a SpawnError that names the program and the errno', async () => {
    const failure = await spawnGroup({ file: join(dir, 'missing'), env }).catch((err: unknown) => err);
    expect(isSupervisorError(failure)).toBe(true);
    expect(failure).toMatchObject({ errno: 'ENOENT', message: expect.stringContaining(`cannot run ${join(dir, 'missing')}: no such file`) });
  });
});
