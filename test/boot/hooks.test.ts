import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { getHookDir, getMarkerPath, listHooks, runHookDir, runStageHooks } from '../../src/boot/hooks.ts';
import { makeCollectingLog, makeHookBody, makeTempRoot, removeTempRoot, writeScript } from './boot-fixtures.ts';

let root: string;
let hooksDir: string;
let stateDir: string;
let ran: string;

beforeEach(async () => {
  root = await makeTempRoot('hooks');
  hooksDir = join(root, 'hooks');
  stateDir = join(root, 'state');
  ran = join(root, 'ran.log');
});

afterEach(async () => {
  await removeTempRoot(root);
});

const readRan = async () => (await readFile(ran, 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('listHooks / runHookDir', () => {
  it('runs executables in lexical (byte) order, skips non-executables with a warning and ignores dotfiles', async () => {
    const dir = getHookDir(hooksDir, 'stage-1', 'on-every-run');
    await writeScript(join(dir, '2-a'), makeHookBody(ran, '2-a'));
    await writeScript(join(dir, '10-b'), makeHookBody(ran, '10-b'));
    await writeScript(join(dir, '20-c'), makeHookBody(ran, '20-c'));
    await writeScript(join(dir, 'README'), 'not a hook', 0o644);
    await writeScript(join(dir, '.hidden'), makeHookBody(ran, 'hidden'));
    await mkdir(join(dir, 'subdir'));
    expect((await listHooks(dir)).map((e) => [e.name, e.problem])).toEqual([
      ['10-b', null],
      ['2-a', null],
      ['20-c', null],
      ['README', 'not executable (chmod +x it to run it)'],
      ['subdir', 'a directory, not a hook'],
    ]);
    const { log, lines } = makeCollectingLog();
    const results = await runHookDir({ dir, label: 'stage-1/on-every-run.d', log });
    expect(await readRan()).toEqual(['10-b', '2-a', '20-c']);
    expect(results.map((r) => [r.name, r.ok, r.skipped])).toEqual([
      ['stage-1/on-every-run.d/10-b', true, false],
      ['stage-1/on-every-run.d/2-a', true, false],
      ['stage-1/on-every-run.d/20-c', true, false],
      ['stage-1/on-every-run.d/README', false, true],
      ['stage-1/on-every-run.d/subdir', false, true],
    ]);
    expect(lines.find((l) => l.level === 'warn')?.message).toBe('hook stage-1/on-every-run.d/README skipped: not executable (chmod +x it to run it)');
  });

  it('treats a missing directory as no hooks', async () => {
    expect(await runHookDir({ dir: join(root, 'nope'), label: 'x' })).toEqual([]);
  });

  it('reports a failing hook and still runs the next one', async () => {
    const dir = join(hooksDir, 'd');
    await writeScript(join(dir, '1-fails'), makeHookBody(ran, '1-fails', 'sleep 0.3; echo "disk full" >&2; exit 3'));
    await writeScript(join(dir, '2-runs'), makeHookBody(ran, '2-runs'));
    const results = await runHookDir({ dir, label: 'd' });
    expect(await readRan()).toEqual(['1-fails', '2-runs']);
    expect(results[0]).toMatchObject({ name: 'd/1-fails', ok: false, exitCode: 3, signal: null, timedOut: false, message: 'exit code 3: disk full' });
    expect(results[1]).toMatchObject({ ok: true, exitCode: 0 });
    // The hook took its 0.3 s, and the next one started after it ended.
    expect(results[0].durationMs).toBeGreaterThanOrEqual(290);
    expect(results[1].startedAt).toBeGreaterThanOrEqual(results[0].startedAt + results[0].durationMs);
  });

  it('stops at the first failure when asked (SUPERVISOR_ON_BOOT_ERROR=exit)', async () => {
    const dir = join(hooksDir, 'd');
    await writeScript(join(dir, '1-fails'), makeHookBody(ran, '1-fails', 'exit 1'));
    await writeScript(join(dir, '2-skipped'), makeHookBody(ran, '2-skipped'));
    const results = await runHookDir({ dir, label: 'd', stopOnFailure: true });
    expect(results.map((r) => r.name)).toEqual(['d/1-fails']);
    expect(await readRan()).toEqual(['1-fails']);
  });
});

describe('runStageHooks first-run marker', () => {
  const firstRun = () => runStageHooks({ hooksDir, stateDir, stage: 'stage-1', kind: 'on-first-run' });

  it('writes no marker when a first-run hook fails, so it runs again; then marks success and skips afterwards', async () => {
    const dir = getHookDir(hooksDir, 'stage-1', 'on-first-run');
    await writeScript(join(dir, '10-ok'), makeHookBody(ran, '10-ok'));
    await writeScript(join(dir, '20-flaky'), makeHookBody(ran, '20-flaky', 'exit 1'));
    const marker = getMarkerPath(stateDir, 'stage-1');

    const first = await firstRun();
    expect(first.marker).toMatchObject({ state: 'not-written', message: 'marker not written: stage-1/on-first-run.d/20-flaky failed; first-run hooks run again at the next start' });
    await expect(readFile(marker)).rejects.toMatchObject({ code: 'ENOENT' });

    const second = await firstRun();
    expect(second.marker?.state).toBe('not-written');
    expect(await readRan()).toEqual(['10-ok', '20-flaky', '10-ok', '20-flaky']);

    await writeScript(join(dir, '20-flaky'), makeHookBody(ran, '20-flaky', 'exit 0'));
    const third = await firstRun();
    expect(third.marker?.state).toBe('written');
    const written = JSON.parse(await readFile(marker, 'utf8'));
    expect(written).toMatchObject({ version: 1, stage: 'stage-1', hooks: ['stage-1/on-first-run.d/10-ok', 'stage-1/on-first-run.d/20-flaky'] });
    expect(Number.isNaN(Date.parse(written.completed_at))).toBe(false);

    const fourth = await firstRun();
    expect(fourth.results).toEqual([]);
    expect(fourth.marker).toMatchObject({ state: 'present' });
    expect(fourth.marker?.message).toContain(written.completed_at);
    expect(await readRan()).toHaveLength(6);
  });

  it('every-run hooks run each time and never touch a marker', async () => {
    await writeScript(join(getHookDir(hooksDir, 'stage-2', 'on-every-run'), 'every'), makeHookBody(ran, 'every'));
    for (let i = 0; i < 3; i += 1) {
      const report = await runStageHooks({ hooksDir, stateDir, stage: 'stage-2', kind: 'on-every-run' });
      expect(report.marker).toBeNull();
    }
    expect(await readRan()).toEqual(['every', 'every', 'every']);
    await expect(readFile(getMarkerPath(stateDir, 'stage-2'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('counts a hand-edited, unreadable marker as present', async () => {
    await writeScript(join(getHookDir(hooksDir, 'stage-1', 'on-first-run'), 'x'), makeHookBody(ran, 'x'));
    await mkdir(stateDir, { recursive: true });
    await writeFile(getMarkerPath(stateDir, 'stage-1'), 'stage-1 is initialized');
    const report = await firstRun();
    expect(report.marker?.message).toContain('unreadable JSON');
    expect(await readRan()).toEqual([]);
  });
});
