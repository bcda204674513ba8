// /proc listings: against this machine's /proc, and against a fixture tree for
// the fallback taken on kernels without /proc/<pid>/task/<tid>/children.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listDescendants, listOwnChildren } from '../../src/pid1/proc-children.ts';

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
