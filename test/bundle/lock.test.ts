// The install lock: one holder at a time, a waiter is told who holds it, and a
// lock left by a dead process (or by a pid now reused) is taken over.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireLock, isOwnerAlive, readStartTime, type LockOwner } from '../../src/bundle/lock.ts';

let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'lock-'));
  path = join(dir, '.lock');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The pid of a process that has already exited. */
const deadPid = (): number => Number(spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim());
const owner = (o: Partial<LockOwner>): string => JSON.stringify({ pid: 1, start: null, token: 't', at: '2026-01-01T00:00:00Z', ...o });

describe('acquireLock', () => {
  it('takes a free lock, names its owner, and releases only its own', async () => {
    const lock = await acquireLock({ path });
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, start: readStartTime(process.pid), token: lock.owner.token });
    writeFileSync(path, owner({ pid: process.pid, token: 'someone-else' }));
    await lock.release();
    expect(existsSync(path)).toBe(true);
  });

  it('a second installer waits, is told who holds it, and gives up after its timeout', async () => {
    const held = await acquireLock({ path });
    const told: LockOwner[] = [];
    const err = await acquireLock({ path, timeoutMs: 300, pollMs: 20, onWait: (o) => told.push(o) }).catch((e: Error) => e);
    expect(String(err)).toMatch(new RegExp(`another install \\(pid ${process.pid}, since .*\\) holds the lock ${path}; gave up after 0 s`));
    expect(told.map((o) => o.pid)).toEqual([process.pid]);
    await held.release();
    expect(existsSync(path)).toBe(false);
  });

  it('gets the lock as soon as the holder releases it', async () => {
    const held = await acquireLock({ path });
    setTimeout(() => void held.release(), 100);
    const second = await acquireLock({ path, pollMs: 20, timeoutMs: 5000 });
    expect(second.owner.pid).toBe(process.pid);
    await second.release();
  });

  it('takes over a lock whose owner is dead', async () => {
    writeFileSync(path, owner({ pid: deadPid() }));
    const lock = await acquireLock({ path, timeoutMs: 1000 });
    expect(JSON.parse(readFileSync(path, 'utf8')).token).toBe(lock.owner.token);
    await lock.release();
  });

  it('takes over a lock whose pid now belongs to another process (different start time)', async () => {
    writeFileSync(path, owner({ pid: process.pid, start: '1' }));
    const lock = await acquireLock({ path, timeoutMs: 1000 });
    expect(lock.owner.start).not.toBe('1');
    await lock.release();
  });

  it('waits on an unreadable lock while it may still be being written, takes it over once old', async () => {
    writeFileSync(path, '');
    await expect(acquireLock({ path, timeoutMs: 200, pollMs: 20 })).rejects.toThrow(/another install holds the lock/);
    const old = new Date(Date.now() - 60_000);
    utimesSync(path, old, old);
    const lock = await acquireLock({ path, timeoutMs: 1000 });
    await lock.release();
  });

  it('isOwnerAlive', () => {
    expect(isOwnerAlive({ pid: process.pid, start: readStartTime(process.pid) })).toBe(true);
    expect(isOwnerAlive({ pid: process.pid, start: 'other' })).toBe(false);
    expect(isOwnerAlive({ pid: deadPid(), start: null })).toBe(false);
  });
});
