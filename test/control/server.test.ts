import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readFile, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { sendRequest, streamRequest } from '../../src/control/client.ts';
import { startControlServer, type ControlHandler, type ControlServer } from '../../src/control/server.ts';
import { EXIT, NotRunningError, SupervisorError, UsageError } from '../../src/errors.ts';
import { CLI } from '../support/daemon.ts';
import { collectGarbage, countFds, makeSocketDir, openRawConnection, waitUntil } from './socket-fixtures.ts';
import { silentLog } from '../../src/logging/log.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// Starts a server on a fresh temp socket and registers its cleanup.
async function start(handle: ControlHandler, log?: Parameters<typeof startControlServer>[0]['log']): Promise<ControlServer & { dir: string }> {
  const { dir, path, remove } = await makeSocketDir();
  cleanups.push(remove);
  const server = await startControlServer({ path, handle, log });
  cleanups.push(() => server.close());
  return Object.assign(server, { dir });
}

// Live JS heap plus buffers, after a full GC: what the process holds on to, unlike RSS, which rarely shrinks.
function getRetainedBytes(): number {
  collectGarbage();
  const { heapUsed, external, arrayBuffers } = process.memoryUsage();
  return heapUsed + external + arrayBuffers;
}

// A socket file left behind by a daemon that died: bound, then its listener gone without unlink.
async function makeStaleSocket(path: string): Promise<void> {
  const dead = createServer();
  await new Promise<void>((resolve) => dead.listen(path, resolve));
  // Close the fd without the unlink libuv would do: move the file aside, close, put it back.
  const aside = `${path}.x`;
  await rename(path, aside);
  await new Promise<void>((resolve) => dead.close(() => resolve()));
  await rename(aside, path);
}

// A handler with a few commands the tests need.
const handle: ControlHandler = async (cmd, args, { signal }) => {
  switch (cmd) {
    case 'echo':
      return args;
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, Number(args.ms)));
      return { slept: args.ms };
    case 'usage':
      throw new UsageError('unknown instance "x"');
    case 'bug':
      throw new TypeError('boom');
    case 'undefined':
      return undefined;
    case 'big':
      await new Promise((resolve) => setTimeout(resolve, 1));
      return 'x'.repeat(256 * 1024);
    case 'huge':
      return 'x'.repeat(2 * 1024 * 1024);
    case 'bigint':
      return { n: 1n };
    case 'wait-abort':
      return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
    default:
      throw new SupervisorError(`unknown command "${cmd}"`, { exitCode: EXIT.USAGE });
  }
};

describe('control server', () => {
  test('round trip through the client', async () => {
    const server = await start(handle);
    expect(await sendRequest({ path: server.path, cmd: 'echo', args: { a: 1, s: 'é' } })).toEqual({ a: 1, s: 'é' });
    expect(await sendRequest({ path: server.path, cmd: 'undefined' })).toBeNull();
  });

  test('several requests in flight on one connection, replies matched by id', async () => {
    const server = await start(handle);
    const conn = await openRawConnection(server.path);
    // All three in one write; the slowest goes first, so replies come back out of order.
    conn.send(
      [
        { v: 1, id: 1, cmd: 'sleep', args: { ms: 150 } },
        { v: 1, id: 2, cmd: 'sleep', args: { ms: 50 } },
        { v: 1, id: 3, cmd: 'echo', args: { x: 3 } },
      ]
        .map((f) => `${JSON.stringify(f)}\n`)
        .join(''),
    );
    const frames = await conn.waitForFrames(3);
    expect(frames.map((f) => f.id)).toEqual([3, 2, 1]);
    expect(frames.find((f) => f.id === 1)).toEqual({ v: 1, id: 1, ok: true, result: { slept: 150 } });
    conn.close();
  });

  test('handler errors: SupervisorError keeps message and exit code; anything else is a logged internal error', async () => {
    const logged: unknown[] = [];
    const log = { ...silentLog, error: (obj: object) => void logged.push(obj) };
    const server = await start(handle, log);
    const usage = await sendRequest({ path: server.path, cmd: 'usage' }).catch((e: unknown) => e);
    expect(usage).toBeInstanceOf(SupervisorError);
    expect(usage).toMatchObject({ message: 'unknown instance "x"', exitCode: EXIT.USAGE });

    const bug = await sendRequest({ path: server.path, cmd: 'bug' }).catch((e: unknown) => e);
    expect(bug).toMatchObject({ message: 'internal error: boom', exitCode: EXIT.FAILED });
    expect(logged[0]).toEqual(expect.objectContaining({ cmd: 'bug', err: expect.any(TypeError) }));

    // A result over the frame limit is refused the same way.
    const huge = await sendRequest({ path: server.path, cmd: 'huge' }).catch((e: unknown) => e);
    expect(huge).toMatchObject({ exitCode: EXIT.FAILED, message: 'internal error: reply to "huge" is longer than 1048576 bytes' });

    // A result JSON cannot hold is a handler bug too, not a dead connection.
    const bigint = await sendRequest({ path: server.path, cmd: 'bigint' }).catch((e: unknown) => e);
    expect(bigint).toMatchObject({ exitCode: EXIT.FAILED, message: expect.stringMatching(/^internal error: .*BigInt/) });
  });

  test('garbage frames get error replies and the connection keeps serving', async () => {
    const server = await start(handle);
    const conn = await openRawConnection(server.path);
    conn.send('this is not json\n');
    conn.send('{"v":2,"id":9,"cmd":"echo","args":{}}\n');
    conn.send('{"v":1,"id":10,"args":{}}\n');
    conn.send('{"v":1,"id":11,"cmd":"echo","args":"x"}\n');
    conn.send(Buffer.concat([randomBytes(64).map((b) => (b === 0x0a ? 0x20 : b)), Buffer.from('\n')]));
    conn.send('{"v":1,"id":12,"cmd":"echo","args":{"still":"here"}}\n');
    const frames = await conn.waitForFrames(6);
    expect(frames.slice(0, 5).map((f) => [f.id, f.ok])).toEqual([
      [null, false],
      [9, false],
      [10, false],
      [11, false],
      [null, false],
    ]);
    expect(frames[1]).toMatchObject({ error: { message: expect.stringContaining('client sent version 2, the daemon speaks version 1') } });
    expect(frames[5]).toEqual({ v: 1, id: 12, ok: true, result: { still: 'here' } });
    conn.close();
  });

  test('a line over 1 MiB gets an error reply and its connection is closed; the daemon keeps serving', async () => {
    const server = await start(handle);
    const conn = await openRawConnection(server.path);
    conn.send(Buffer.alloc(2 * 1024 * 1024, 0x41));
    const [frame] = await conn.waitForFrames(1);
    expect(frame).toMatchObject({ id: null, ok: false, error: { message: expect.stringContaining('frame longer than 1048576 bytes') } });
    await conn.closed;
    expect(await sendRequest({ path: server.path, cmd: 'echo', args: { ok: 1 } })).toEqual({ ok: 1 });
  });

  test('a client that disconnects mid-request aborts the handler signal', async () => {
    let aborted = false;
    const server = await start(async (_cmd, _args, { signal }) => {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
      aborted = true;
      return null;
    });
    const conn = await openRawConnection(server.path);
    conn.send('{"v":1,"id":1,"cmd":"wait","args":{}}\n');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(aborted).toBe(false);
    conn.close();
    await waitUntil(() => aborted);
  });

  test('creates the socket directory 0700 and the socket 0600', async () => {
    const { dir, remove } = await makeSocketDir();
    cleanups.push(remove);
    const path = join(dir, 'run', 's.sock');
    const server = await startControlServer({ path, handle });
    cleanups.push(() => server.close());
    expect((await stat(join(dir, 'run'))).mode & 0o777).toBe(0o700);
    const info = await stat(path);
    expect(info.isSocket()).toBe(true);
    expect(info.mode & 0o777).toBe(0o600);
  });

  test('replaces a stale socket file nobody listens on', async () => {
    const { path, remove } = await makeSocketDir();
    cleanups.push(remove);
    await makeStaleSocket(path);
    expect((await stat(path)).isSocket()).toBe(true);
    await expect(sendRequest({ path, cmd: 'echo' })).rejects.toBeInstanceOf(NotRunningError);

    const server = await startControlServer({ path, handle });
    cleanups.push(() => server.close());
    expect(await sendRequest({ path, cmd: 'echo', args: { fresh: true } })).toEqual({ fresh: true });
  });

  test('refuses to start a second server on a live socket, and leaves the first one serving', async () => {
    const first = await start(handle);
    const second = await startControlServer({ path: first.path, handle }).catch((e: unknown) => e);
    expect(second).toBeInstanceOf(SupervisorError);
    expect((second as Error).message).toBe(`another supervisor is already running on ${first.path}`);
    expect(await sendRequest({ path: first.path, cmd: 'echo', args: { first: 1 } })).toEqual({ first: 1 });
  });

  test('close() stops listening, aborts in-flight requests, ends connections and removes the socket', async () => {
    const { path, remove } = await makeSocketDir();
    cleanups.push(remove);
    const server = await startControlServer({ path, handle });
    const pending = sendRequest({ path, cmd: 'wait-abort' }).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await server.close();
    expect(await pending).toBeInstanceOf(SupervisorError);
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(sendRequest({ path, cmd: 'echo' })).rejects.toMatchObject({ exitCode: EXIT.NOT_RUNNING });
    await server.close(); // idempotent
  });

  test('a client that never reads is no longer read once its unread replies pass 1 MiB, not an ever-growing buffer', async () => {
    const server = await start(handle);
    const conn = await openRawConnection(server.path);
    conn.socket.pause(); // read nothing for now
    const before = getRetainedBytes();
    // 20 batches of 32 requests for 256 KiB each: 160 MiB of replies if the server buffered them all.
    let id = 0;
    for (let batch = 0; batch < 20; batch++) {
      conn.send(Array.from({ length: 32 }, () => `{"v":1,"id":${id++},"cmd":"big","args":{}}\n`).join(''));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // At most the 32 in flight (each holding its reply) and the 1 MiB of unread replies.
    expect(getRetainedBytes() - before).toBeLessThan(24 * 1024 * 1024);
    conn.socket.resume();
    const frames = await conn.waitForFrames(id, 20_000);
    const results = frames.filter((f) => f.ok).length;
    const refused = frames.filter((f) => !f.ok && JSON.stringify(f).includes('too many requests in flight')).length;
    expect(results + refused).toBe(id);
    conn.close();
  });

  test('a flood of bad lines gets 16 error replies and one saying why, then the connection is closed (issue 9)', async () => {
    const server = await start(handle);
    const conn = await openRawConnection(server.path);
    conn.socket.pause(); // the flood's sender need not read for the server to stop answering it
    const before = getRetainedBytes();
    // 1 M bad lines: ~110 MB of error replies if the server answered each one.
    const piece = Buffer.from('x\n'.repeat(32 * 1024));
    for (let i = 0; i < 32; i++) conn.send(piece);
    conn.socket.resume();
    await conn.waitForClose();
    expect(getRetainedBytes() - before).toBeLessThan(16 * 1024 * 1024);
    expect(conn.frames).toHaveLength(17);
    expect(conn.frames.slice(0, 16).every((f) => f.ok === false && f.id === null)).toBe(true);
    expect(conn.frames[16]).toMatchObject({ id: null, ok: false, error: { message: 'too many invalid requests on one connection (more than 16); closing it' } });
    expect(await sendRequest({ path: server.path, cmd: 'echo', args: { alive: 1 } })).toEqual({ alive: 1 });
  });

  test('100 flooding clients that never read are all closed, and memory stays flat (issue 9: 55 -> 408 MB)', async () => {
    const server = await start(handle);
    const fds = await countFds();
    const before = getRetainedBytes();
    // Each client sends 256 K empty lines (bad frames) without reading; returns how many replies each got in the end.
    const flood = async (): Promise<number[]> => {
      const lines = Buffer.alloc(256 * 1024, 0x0a);
      const clients = await Promise.all(Array.from({ length: 100 }, () => openRawConnection(server.path)));
      for (const client of clients) {
        client.socket.pause();
        client.send(lines);
      }
      // The server closes each one; a paused client notices once it reads.
      for (const client of clients) client.socket.resume();
      await Promise.all(clients.map((client) => client.waitForClose(10_000)));
      return clients.map((client) => client.frames.length);
    };
    expect(new Set(await flood())).toEqual(new Set([17]));
    // Once the server's ends are closed too, memory comes back (Node frees its socket buffers a turn or two later).
    await waitUntil(async () => (await countFds()) <= fds);
    await waitUntil(() => getRetainedBytes() - before < 8 * 1024 * 1024);
    expect(await sendRequest({ path: server.path, cmd: 'echo', args: { alive: 1 } })).toEqual({ alive: 1 });
  });

  test("one write of 1000 requests is answered a turn's worth at a time, and another client's request goes between", async () => {
    // Counts turns of the event loop (one check phase each), so a handler can tell when it ran.
    let turn = 0;
    let ticker = setImmediate(function tick() {
      turn++;
      ticker = setImmediate(tick);
    });
    cleanups.push(async () => clearImmediate(ticker));
    const server = await start(async (_cmd, args) => ({ who: args.who, turn }));
    const flooder = await openRawConnection(server.path);
    const other = await openRawConnection(server.path);
    const count = 1000;
    flooder.send(Array.from({ length: count }, (_, id) => `{"v":1,"id":${id},"cmd":"stamp","args":{"who":"flooder"}}\n`).join(''));
    other.send('{"v":1,"id":0,"cmd":"stamp","args":{"who":"other"}}\n');
    const [answer] = await other.waitForFrames(1);
    const frames = await flooder.waitForFrames(count);
    // None refused: never more in one turn than may be in flight.
    expect(frames.filter((f) => !f.ok)).toEqual([]);
    const turns = frames.map((f) => (f.result as { turn: number }).turn);
    expect(new Set(turns).size).toBeGreaterThanOrEqual(count / 32);
    // The other client was answered while the flood was still being worked through.
    expect((answer.result as { turn: number }).turn).toBeLessThan(Math.max(...turns));
    flooder.close();
    other.close();
  });

  test('refuses more than 32 requests in flight on one connection', async () => {
    const server = await start(handle);
    const conn = await openRawConnection(server.path);
    const lines = Array.from({ length: 33 }, (_, i) => `{"v":1,"id":${i},"cmd":"sleep","args":{"ms":100}}\n`);
    conn.send(lines.join(''));
    const frames = await conn.waitForFrames(33);
    expect(frames[0]).toMatchObject({ id: 32, ok: false, error: { message: expect.stringContaining('too many requests') } });
    expect(frames.slice(1).every((f) => f.ok)).toBe(true);
    conn.close();
  });
});

describe('streamed replies', () => {
  test('sends each chunk, then end', async () => {
    const server = await start(async () => ({
      stream: (async function* () {
        yield 'one\n';
        yield 'two\n';
        yield 'three\n';
      })(),
    }));
    const chunks: string[] = [];
    for await (const chunk of streamRequest({ path: server.path, cmd: 'logs', args: { follow: true } })) chunks.push(chunk);
    expect(chunks).toEqual(['one\n', 'two\n', 'three\n']);

    const conn = await openRawConnection(server.path);
    conn.send('{"v":1,"id":4,"cmd":"logs","args":{}}\n');
    const frames = await conn.waitForFrames(4);
    expect(frames.at(-1)).toEqual({ v: 1, id: 4, ok: true, end: true });
    conn.close();
  });

  test('a chunk too big for one frame is cut into several that join back to it', async () => {
    // 1.5 M characters: emoji (surrogate pairs, so a cut could land mid-pair) and control characters (6 bytes escaped).
    const big = '😀\u0001é'.repeat(375_000);
    const server = await start(async () => ({ stream: (async function* () { yield big; })() }));
    const chunks: string[] = [];
    for await (const chunk of streamRequest({ path: server.path, cmd: 'logs' })) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join('') === big).toBe(true);
  });

  test('a producer that fails mid-stream ends it with an error frame', async () => {
    const server = await start(async () => ({
      stream: (async function* () {
        yield 'first';
        throw new SupervisorError('log file vanished');
      })(),
    }));
    const chunks: string[] = [];
    const failure = await (async () => {
      for await (const chunk of streamRequest({ path: server.path, cmd: 'logs' })) chunks.push(chunk);
    })().catch((e: unknown) => e);
    expect(chunks).toEqual(['first']);
    expect(failure).toMatchObject({ message: 'log file vanished', exitCode: EXIT.FAILED });
  });

  test('a client that stops reading aborts the stream and its producer is stopped', async () => {
    let producerStopped = false;
    let signalAborted = false;
    const server = await start(async (_cmd, _args, { signal }) => {
      signal.addEventListener('abort', () => {
        signalAborted = true;
      });
      return {
        stream: (async function* () {
          try {
            for (let i = 0; !signal.aborted; i++) {
              yield `tick ${i}\n`;
              await new Promise((resolve) => setTimeout(resolve, 5));
            }
          } finally {
            producerStopped = true;
          }
        })(),
      };
    });
    const seen: string[] = [];
    for await (const chunk of streamRequest({ path: server.path, cmd: 'logs', args: { follow: true } })) {
      seen.push(chunk);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(['tick 0\n', 'tick 1\n', 'tick 2\n']);
    await waitUntil(() => signalAborted && producerStopped);
  });

  test('a producer blocked forever does not keep the request alive after the client leaves', async () => {
    let signalAborted = false;
    const server = await start(async (_cmd, _args, { signal }) => {
      signal.addEventListener('abort', () => {
        signalAborted = true;
      });
      return {
        stream: (async function* () {
          yield 'only';
          await new Promise(() => undefined); // never settles, ignores the signal
        })(),
      };
    });
    for await (const chunk of streamRequest({ path: server.path, cmd: 'logs' })) {
      expect(chunk).toBe('only');
      break;
    }
    await waitUntil(() => signalAborted);
    // The server still answers, and closes cleanly (afterEach) with the stuck producer around.
    const again: string[] = [];
    for await (const chunk of streamRequest({ path: server.path, cmd: 'logs' })) {
      again.push(chunk);
      break;
    }
    expect(again).toEqual(['only']);
  });
});

describe('socket path hygiene', () => {
  // A fresh temp dir with `name` inside it, and the socket path in that.
  async function makeDir(name: string, mode: number): Promise<{ dir: string; path: string }> {
    const { dir, remove } = await makeSocketDir();
    cleanups.push(remove);
    const inner = join(dir, name);
    await mkdir(inner);
    await chmod(inner, mode); // not mkdir's mode: the umask would mask the bits under test
    return { dir: inner, path: join(inner, 's.sock') };
  }

  // Starting must fail with this message, leave nothing listening, and change nothing at the path.
  async function expectRefused(path: string, message: RegExp): Promise<void> {
    const failure = await startControlServer({ path, handle }).then(
      async (server) => {
        await server.close();
        return 'started';
      },
      (err: unknown) => err,
    );
    expect(failure).toBeInstanceOf(SupervisorError);
    expect(failure).toMatchObject({ exitCode: EXIT.FAILED, message: expect.stringMatching(message) });
  }

  test('an existing directory keeps its mode', async () => {
    const { dir: shared, path } = await makeDir('shared', 0o755);
    const server = await startControlServer({ path, handle });
    cleanups.push(() => server.close());
    expect((await stat(shared)).mode & 0o777).toBe(0o755);
  });

  test.each([
    ['0777', 0o777],
    ['0770 (group-writable)', 0o770],
    ['1777 (sticky, like /tmp)', 0o1777],
    ['0702 (others may write)', 0o702],
  ])('refuses a socket directory of mode %s, naming it and its mode', async (label, mode) => {
    const { dir, path } = await makeDir('open', mode);
    await expectRefused(path, new RegExp(`^refusing the control socket directory ${dir}: its mode ${label.slice(0, 4)} lets group or others write to it`));
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  test.skipIf(process.geteuid?.() !== 0)("refuses a socket directory that belongs to another user (here: nobody's)", async () => {
    const { dir, path } = await makeDir('theirs', 0o700);
    await chown(dir, 65534, 65534);
    await expectRefused(path, new RegExp(`^refusing the control socket directory ${dir}: it belongs to uid 65534, not to this daemon \\(uid 0\\)`));
  });

  test('a regular file at the socket path is refused, and kept', async () => {
    const { path, remove } = await makeSocketDir();
    cleanups.push(remove);
    await writeFile(path, 'leftover');
    await expectRefused(path, new RegExp(`^${path} is a regular file, not a socket: refusing to remove it`));
    expect(await readFile(path, 'utf8')).toBe('leftover');
  });

  test('a symlink at the socket path is refused and not followed, even to a stale socket', async () => {
    const { dir, path, remove } = await makeSocketDir();
    cleanups.push(remove);
    const stale = join(dir, 'stale.sock');
    await makeStaleSocket(stale);
    await symlink(stale, path);
    await expectRefused(path, new RegExp(`^${path} is a symlink \\(to "${stale}"\\), not a socket`));
    expect((await lstat(path)).isSymbolicLink()).toBe(true);
    expect((await lstat(stale)).isSocket()).toBe(true);
  });

  test('the built daemon refuses too: `supervisor run` exits 1 with one line and no stack', async () => {
    const { dir, path } = await makeDir('open', 0o777);
    const run = spawnSync(process.execPath, [CLI, 'run'], { env: { ...process.env, SUPERVISOR_SOCKET: path }, encoding: 'utf8', timeout: 20_000 });
    expect(run.status).toBe(EXIT.FAILED);
    expect(run.stderr).toBe(`supervisor: refusing the control socket directory ${dir}: its mode 0777 lets group or others write to it, so they could replace the socket; run chmod go-w ${dir}, or set SUPERVISOR_SOCKET to a path in a private directory\n`);
  });

  test('a directory at the socket path is refused, and kept', async () => {
    const { path, remove } = await makeSocketDir();
    cleanups.push(remove);
    await mkdir(path);
    await writeFile(join(path, 'inside'), 'x');
    await expectRefused(path, new RegExp(`^${path} is a directory, not a socket`));
    expect(await readFile(join(path, 'inside'), 'utf8')).toBe('x');
  });
});
