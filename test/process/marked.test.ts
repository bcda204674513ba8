import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findProcessesWithEnv, sweepProcessesWithEnv, waitUntilGone } from '../../src/process/marked.ts';
import { isAlive } from '../../src/process/proc.ts';
import { signalGroup } from '../../src/process/signal.ts';

const FAKE_SERVER = new URL('../fixtures/fake-server.mjs', import.meta.url).pathname;
const MARKER = 'INFER_DEV_INSTANCE';

let dir: string;
const leftovers: number[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'marked-'));
});

afterEach(async () => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  await rm(dir, { recursive: true, force: true });
});

function spawnTracked(args: string[], opts: { detached?: boolean; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  const child = spawn(process.execPath, args, { stdio: 'ignore', ...opts });
  if (child.pid === undefined) throw new Error('spawn failed');
  leftovers.push(child.pid);
  return child;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function readPidFile(path: string): Promise<number | undefined> {
  try {
    const text = await readFile(path, 'utf8');
    return text.endsWith('\n') ? Number(text) : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

const SLEEPER = ['-e', 'setInterval(()=>{},1e6)'];

describe('findProcessesWithEnv / sweepProcessesWithEnv', () => {
  it('finds and kills a setsid grandchild that escaped the process group', async () => {
    const value = `test-${process.pid}-${Date.now()}`;
    const pidFile = join(dir, 'grandchild.pid');
    const server = spawnTracked([FAKE_SERVER, '--silent', '--setsid-grandchild', pidFile], {
      detached: true,
      env: { ...process.env, [MARKER]: value },
    });
    const grandchild = await waitFor('grandchild pid file', () => readPidFile(pidFile));
    leftovers.push(grandchild);

    // Stopping the group leaves the grandchild running: it has its own session.
    expect(signalGroup(server.pid!, 'SIGKILL')).toBe(true);
    await exited(server);
    expect(isAlive(grandchild)).toBe(true);

    expect(await findProcessesWithEnv({ [MARKER]: value })).toEqual([grandchild]);
    expect(await sweepProcessesWithEnv({ [MARKER]: value })).toEqual([grandchild]);
    await waitFor('grandchild to die', () => (isAlive(grandchild) ? undefined : true));
    expect(await findProcessesWithEnv({ [MARKER]: value })).toEqual([]);
    expect(await sweepProcessesWithEnv({ [MARKER]: value })).toEqual([]);
  });

  it('matches name=value exactly and skips processes it cannot read', async () => {
    const procRoot = join(dir, 'proc');
    const environs: Record<string, string> = {
      '101': `PATH=/bin\0${MARKER}=glm\0HOME=/root\0`,
      '102': `${MARKER}=glm2\0`,
      '103': `X${MARKER}=glm\0`,
      '104': `${MARKER}=gl\0`,
      '105': `${MARKER}=glm`, // last entry without a trailing NUL
      [String(process.pid)]: `${MARKER}=glm\0`, // ourselves: skipped
    };
    for (const [pid, environ] of Object.entries(environs)) {
      await mkdir(join(procRoot, pid), { recursive: true });
      await writeFile(join(procRoot, pid, 'environ'), environ);
    }
    await mkdir(join(procRoot, '106'), { recursive: true }); // vanished: no environ (ENOENT)
    await mkdir(join(procRoot, 'self'), { recursive: true });
    await writeFile(join(procRoot, 'self', 'environ'), `${MARKER}=glm\0`);

    const found = await findProcessesWithEnv({ [MARKER]: 'glm' }, { procRoot });
    expect(found.sort((a, b) => a - b)).toEqual([101, 105]);
  });
});

describe('waitUntilGone', () => {
  it('returns at once with nothing left for dead pids, and the living ones after the timeout', async () => {
    const child = spawnTracked(SLEEPER);
    const dead = spawnTracked(['-e', '']);
    await exited(dead);
    const started = Date.now();
    expect(await waitUntilGone([dead.pid!], 5000)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await waitUntilGone([child.pid!, dead.pid!], 100)).toEqual([child.pid]);
    child.kill('SIGKILL');
    expect(await waitUntilGone([child.pid!], 5000)).toEqual([]);
  });
});
