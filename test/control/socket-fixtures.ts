// Test fixtures for the control socket: short temp socket paths, and a raw
// connection that sends arbitrary bytes and collects reply frames.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A fresh temp dir with a socket path inside; Unix socket paths must stay under 108 bytes. */
export async function makeSocketDir(): Promise<{ dir: string; path: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'ctl-'));
  return { dir, path: join(dir, 's.sock'), remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A reply frame as the test sees it. */
export type Frame = Record<string, unknown> & { id: number | null; ok: boolean };

/** A raw client connection: writes anything, parses each reply line, notices when the daemon closes. */
export interface RawConnection {
  socket: Socket;
  frames: Frame[];
  closed: Promise<void>;
  send(data: string | Buffer): void;
  /** Resolves once `count` frames have arrived in all (rejects if the socket closes first). */
  waitForFrames(count: number, timeoutMs?: number): Promise<Frame[]>;
  /** Resolves once the daemon has closed the connection (rejects if it is still open after timeoutMs). */
  waitForClose(timeoutMs?: number): Promise<void>;
  close(): void;
}

/** Opens a raw connection to the control socket. */
export function openRawConnection(path: string): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const frames: Frame[] = [];
    const waiters = new Set<() => void>();
    let buffered = '';
    let isClosed = false;
    const closed = new Promise<void>((done) =>
      socket.once('close', () => {
        isClosed = true;
        for (const wake of waiters) wake();
        done();
      }),
    );
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      buffered += text;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        frames.push(JSON.parse(buffered.slice(0, newline)) as Frame);
        buffered = buffered.slice(newline + 1);
      }
      for (const wake of waiters) wake();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // The daemon may close on us while we still write (EPIPE/ECONNRESET): that is what some tests provoke.
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    socket.once('connect', () =>
      resolve({
        socket,
        frames,
        closed,
        send: (data) => {
          if (!socket.destroyed) socket.write(data);
        },
        waitForFrames: (count, timeoutMs = 5000) =>
          new Promise((done, fail) => {
            const check = (): void => {
              if (frames.length >= count) finish(() => done(frames));
              else if (isClosed) finish(() => fail(new Error(`socket closed after ${frames.length} of ${count} frames`)));
            };
            const timer = setTimeout(() => finish(() => fail(new Error(`got ${frames.length} of ${count} frames`))), timeoutMs);
            const finish = (settle: () => void): void => {
              clearTimeout(timer);
              waiters.delete(check);
              settle();
            };
            waiters.add(check);
            check();
          }),
        waitForClose: (timeoutMs = 5000) =>
          new Promise((done, fail) => {
            const timer = setTimeout(() => fail(new Error(`the connection is still open after ${timeoutMs} ms (${frames.length} frames so far)`)), timeoutMs);
            void closed.then(() => {
              clearTimeout(timer);
              done();
            });
          }),
        close: () => socket.destroy(),
      }),
    );
  });
}

/** Polls until `check` returns true, failing after timeoutMs. */
export async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Counts this process's open file descriptors (a connection closed on both ends holds none). */
export async function countFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

/** Runs a full V8 GC (exposed at runtime), so RSS readings are not just garbage waiting to be collected. */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}
