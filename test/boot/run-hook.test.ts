import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runHook } from '../../src/boot/run-hook.ts';
import { waitUntilGone } from '../../src/process/marked.ts';
import { isAlive } from '../../src/process/proc.ts';
import { makeCollectingLog, makeTempRoot, removeTempRoot, writeScript } from './boot-fixtures.ts';

let root: string;
let ran: string;
const strays: number[] = [];

beforeEach(async () => {
  root = await makeTempRoot('run-hook');
  ran = join(root, 'ran.log');
});

afterEach(async () => {
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }
  await removeTempRoot(root);
});

const readRan = async () => (await readFile(ran, 'utf8').catch(() => '')).split('\n').filter(Boolean);
const waitForFile = async (path: string) => {
  for (let i = 0; i < 200; i += 1) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (text.trim()) return text.trim();
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no ${path}`);
};

describe('runHook', () => {
  it('logs stdout and stderr line by line under the hook name, a last partial line too', async () => {
    const path = await writeScript(join(root, 'talk'), '#!/bin/sh\necho one\necho two >&2\nprintf "three\\r\\nfour"\n');
    const { log, lines } = makeCollectingLog();
    const result = await runHook({ path, name: 'stage-2/on-every-run.d/talk', log });
    expect(result.ok).toBe(true);
    const output = lines.filter((l) => l.fields.event === 'hook-output');
    expect(output.map((l) => l.message).sort()).toEqual(
      ['[stage-2/on-every-run.d/talk] one', '[stage-2/on-every-run.d/talk] two', '[stage-2/on-every-run.d/talk] three', '[stage-2/on-every-run.d/talk] four'].sort(),
    );
    expect(output.find((l) => l.message.endsWith('two'))?.fields.stream).toBe('stderr');
  });

  it('passes the given environment', async () => {
    const path = await writeScript(join(root, 'env'), `#!/bin/sh\necho "$GREETING" > '${ran}'\n`);
    await runHook({ path, name: 'env', env: { PATH: process.env.PATH, GREETING: 'hello' } });
    expect(await readRan()).toEqual(['hello']);
  });

  it('kills a hook that runs past its timeout, with the children in its group', async () => {
    const pidFile = join(root, 'child.pid');
    const path = await writeScript(join(root, 'slow'), `#!/bin/sh\nsleep 30 &\necho $! > '${pidFile}'\nwait\n`);
    const started = Date.now();
    // 2 s: time for this test to see the grandchild alive before the timeout kills it, even when loaded.
    const resultPromise = runHook({ path, name: 'slow', timeoutMs: 2000, killGraceMs: 2000 });
    const childPid = Number(await waitForFile(pidFile));
    strays.push(childPid);
    // Negative control: the grandchild ran before the timeout, so "gone" below means killed.
    expect(isAlive(childPid)).toBe(true);
    const result = await resultPromise;
    expect(result).toMatchObject({ ok: false, timedOut: true, signal: 'SIGTERM', message: 'timed out after 2 s, stopped with SIGTERM' });
    expect(Date.now() - started).toBeLessThan(4000);
    // SIGKILL is delivered asynchronously: the grandchild must be gone soon after, not at this instant.
    expect(await waitUntilGone([childPid], 2000)).toEqual([]);
  });

  it('SIGKILLs a timed-out hook that ignores SIGTERM once the grace is over', async () => {
    const path = await writeScript(join(root, 'stubborn'), `#!/bin/sh\ntrap '' TERM\necho ready\nsleep 30\n`);
    const started = Date.now();
    // 1 s: the shell must have set its trap before SIGTERM comes, even when loaded.
    const result = await runHook({ path, name: 'stubborn', timeoutMs: 1000, killGraceMs: 300 });
    expect(result).toMatchObject({ ok: false, timedOut: true, signal: 'SIGKILL', message: 'timed out after 1 s, stopped with SIGKILL after 0.3 s grace' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1300);
    expect(Date.now() - started).toBeLessThan(3500);
  });

  it('does not wait for a daemon the hook started, which keeps its output pipe open', async () => {
    const pidFile = join(root, 'daemon.pid');
    const path = await writeScript(join(root, 'starts-daemon'), `#!/bin/sh\nsleep 30 &\necho $! > '${pidFile}'\necho started\n`);
    const started = Date.now();
    const result = await runHook({ path, name: 'starts-daemon' });
    strays.push(Number(await waitForFile(pidFile)));
    expect(result).toMatchObject({ ok: true, exitCode: 0 });
    expect(Date.now() - started).toBeLessThan(1500);
    // Not a timeout: what a successful hook started keeps running.
    expect(isAlive(strays[0])).toBe(true);
  });

  it('reports a hook killed by a signal', async () => {
    const path = await writeScript(join(root, 'suicide'), '#!/bin/sh\nkill -SEGV $$\n');
    const result = await runHook({ path, name: 'suicide' });
    expect(result).toMatchObject({ ok: false, signal: 'SIGSEGV', message: 'killed by SIGSEGV' });
  });
});
