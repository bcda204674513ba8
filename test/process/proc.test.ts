// /proc listings: against this machine's /proc, and against a fixture tree for
// the fallback taken on kernels without /proc/<pid>/task/<tid>/children.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listOwnChildren } from '../../src/pid1/proc-children.ts';
import { isAlive, listDescendants, parseProcStat, readProcStatSync } from '../../src/process/proc.ts';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function startTree(): ChildProcess {
  // sh with two sleeps below it.
  const child = spawn('sh', ['-c', 'sleep 5 & sleep 5 & echo started; wait'], { stdio: ['ignore', 'pipe', 'ignore'], detached: true });
  cleanups.push(() => process.kill(-child.pid!, 'SIGKILL'));
  return child;
}

const started = (child: ChildProcess) => new Promise((resolve) => child.stdout!.once('data', resolve));

describe('listOwnChildren and listDescendants on /proc', () => {
  it('lists our child, and below it the grandchildren', async () => {
    const child = startTree();
    await started(child);
    expect(listOwnChildren()).toContain(child.pid);
    const below = listDescendants({ pid: child.pid! });
    expect(below).toHaveLength(2);
    expect(listDescendants({ pid: process.pid })).toEqual(expect.arrayContaining([child.pid, ...below]));
  });
});

describe('without CONFIG_PROC_CHILDREN (fixture /proc)', () => {
  /** A fake procfs: self/task/<tid> without `children`, and <pid>/stat lines. */
  function fakeProc(stats: Record<number, string>): string {
    const root = mkdtempSync(join(tmpdir(), 'fake-proc-'));
    cleanups.push(() => rmSync(root, { recursive: true, force: true }));
    mkdirSync(join(root, 'self/task/7'), { recursive: true });
    for (const [pid, stat] of Object.entries(stats)) {
      mkdirSync(join(root, pid));
      writeFileSync(join(root, pid, 'stat'), stat);
    }
    return root;
  }

  it('falls back to the ppid in every stat; comm may hold spaces and parentheses', () => {
    const me = process.pid;
    const procRoot = fakeProc({
      101: `101 (sleep) Z ${me} 101 101 0 -1`,
      102: `102 (odd ) name)) S ${me} 102 102 0 -1`,
      103: `103 (grandchild) S 101 101 101 0 -1`,
      104: `104 (stranger) S 1 104 104 0 -1`,
    });
    expect(listOwnChildren({ procRoot }).sort()).toEqual([101, 102]);
    expect(listDescendants({ procRoot, pid: me }).sort()).toEqual([101, 102, 103]);
  });
});

describe('parseProcStat', () => {
  it('reads state, ppid, pgrp and the start time, with spaces and parentheses in comm', () => {
    const fields = Array.from({ length: 49 }, (_, i) => String(i + 3));
    fields[0] = 'S';
    const text = `4242 (we (ird) name) ${fields.join(' ')}`;
    expect(parseProcStat(text)).toEqual({ pid: 4242, comm: 'we (ird) name', state: 'S', ppid: 4, pgrp: 5, startTime: 22 });
  });

  it('is null for text that is no stat line, and has a NaN start time for a short one', () => {
    expect(parseProcStat('garbage')).toBeNull();
    expect(parseProcStat('1 (init)')).toBeNull();
    expect(parseProcStat('7 (x) S 1 7 7 0')?.startTime).toBeNaN();
  });

  it('parses this process as /proc shows it', () => {
    const stat = readProcStatSync(process.pid);
    expect(stat).toMatchObject({ pid: process.pid, ppid: process.ppid, state: expect.stringMatching(/^[RS]$/) });
    expect(stat!.startTime).toBeGreaterThan(0);
    // A child starts after us.
    expect(readProcStatSync(process.ppid)!.startTime).toBeLessThanOrEqual(stat!.startTime);
  });
});

describe('isAlive', () => {
  it('is true for ourselves and false for a reaped child', async () => {
    expect(isAlive(process.pid)).toBe(true);
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('exit', resolve));
    expect(isAlive(child.pid!)).toBe(false);
  });

  it('counts a zombie as dead (state Z in /proc/pid/stat)', () => {
    const procRoot = mkdtempSync(join(tmpdir(), 'fake-proc-'));
    cleanups.push(() => rmSync(procRoot, { recursive: true, force: true }));
    mkdirSync(join(procRoot, String(process.pid)), { recursive: true });
    writeFileSync(join(procRoot, String(process.pid), 'stat'), `${process.pid} (node (x) y) Z 1 1 1 0`);
    expect(isAlive(process.pid, { procRoot })).toBe(false);
    // Negative control: the same file with state S is alive.
    writeFileSync(join(procRoot, String(process.pid), 'stat'), `${process.pid} (node (x) y) S 1 1 1 0`);
    expect(isAlive(process.pid, { procRoot })).toBe(true);
  });
});
