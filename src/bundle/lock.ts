// One install at a time: a lock file created with O_EXCL that names its owner
// (pid, the process start time, a token). A second installer waits for it.
// A lock whose owner is dead, or whose pid now belongs to another process
// (different start time), is stale and taken over: renamed away first, so of
// two installers that both find it stale only one removes it.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { SupervisorError } from '../errors.ts';

/** Who holds a lock. */
export interface LockOwner {
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot), to tell a reused pid. */
  start: string | null;
  token: string;
  at: string;
}

export interface LockOptions {
  path: string;
  /** Give up after this long (default 30 min: a big bundle on a slow disk). */
  timeoutMs?: number;
  pollMs?: number;
  /** Called once when the lock is busy, with its holder. */
  onWait?: (owner: LockOwner) => void;
  signal?: AbortSignal;
}

export interface LockHandle {
  owner: LockOwner;
  release(): Promise<void>;
}

const DEFAULT_TIMEOUT_MS = 30 * 60_000;
const DEFAULT_POLL_MS = 200;
/** An empty or unreadable lock younger than this may be one being written right now. */
const UNREADABLE_GRACE_MS = 5_000;

/** The start time of a process (field 22 of /proc/PID/stat), or null if unknown. */
export function readStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** True if the lock's owner still runs (same pid and the same start time). */
export function isOwnerAlive(owner: Pick<LockOwner, 'pid' | 'start'>): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const start = readStartTime(owner.pid);
  return owner.start === null || start === null || start === owner.start;
}

/** Waits for and takes the lock. */
export async function acquireLock({ path, timeoutMs = DEFAULT_TIMEOUT_MS, pollMs = DEFAULT_POLL_MS, onWait, signal }: LockOptions): Promise<LockHandle> {
  const owner: LockOwner = { pid: process.pid, start: readStartTime(process.pid), token: randomBytes(8).toString('hex'), at: new Date().toISOString() };
  const text = `${JSON.stringify(owner)}\n`;
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    try {
      const handle = await open(path, 'wx', 0o644);
      try {
        await handle.writeFile(text);
      } finally {
        await handle.close();
      }
      return { owner, release: () => releaseLock(path, owner.token) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = await readLock(path);
    if (held === 'gone') continue;
    if (held === 'stale' || (held !== 'young' && !isOwnerAlive(held.owner))) {
      await takeOverStale(path, held === 'stale' ? null : held.raw);
      continue;
    }
    if (held !== 'young' && !told) {
      told = true;
      onWait?.(held.owner);
    }
    if (Date.now() >= deadline) {
      const who = held === 'young' ? 'another install' : `another install (pid ${held.owner.pid}, since ${held.owner.at})`;
      throw new SupervisorError(`${who} holds the lock ${path}; gave up after ${Math.round(timeoutMs / 1000)} s`);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    signal?.throwIfAborted();
  }
}

type Held = { owner: LockOwner; raw: string } | 'gone' | 'stale' | 'young';

async function readLock(path: string): Promise<Held> {
  let raw: string;
  let mtimeMs: number;
  try {
    [raw, mtimeMs] = await Promise.all([readFile(path, 'utf8'), stat(path).then((s) => s.mtimeMs)]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const owner = JSON.parse(raw) as LockOwner;
    if (Number.isInteger(owner.pid) && owner.pid > 0) return { owner, raw };
  } catch {
    // not JSON: half written, or garbage
  }
  return Date.now() - mtimeMs > UNREADABLE_GRACE_MS ? 'stale' : 'young';
}

// Moves a stale lock away; if what was moved is no longer the stale lock (taken meanwhile), puts it back.
async function takeOverStale(path: string, staleRaw: string | null): Promise<void> {
  const aside = `${path}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(path, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readFile(aside, 'utf8');
  if (staleRaw !== null && moved !== staleRaw) {
    await link(aside, path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
  }
  await unlink(aside);
}

async function releaseLock(path: string, token: string): Promise<void> {
  try {
    const owner = JSON.parse(await readFile(path, 'utf8')) as LockOwner;
    if (owner.token === token) await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
