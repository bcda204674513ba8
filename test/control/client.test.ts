import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterEach, describe, expect, test } from 'vitest';
import { sendRequest, streamRequest } from '../../src/control/client.ts';
import { startControlServer } from '../../src/control/server.ts';
import { EXIT, NotRunningError, SupervisorError } from '../../src/errors.ts';
import { makeSocketDir } from './socket-fixtures.ts';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

// A temp socket path, removed after the test.
async function makePath(): Promise<string> {
  const { path, remove } = await makeSocketDir();
  cleanups.push(remove);
  return path;
}

// A fake daemon that answers every line with whatever `reply` returns (nothing: stay silent).
async function startFakeDaemon(path: string, reply: (line: string) => string | undefined | 'close'): Promise<Server> {
  const server = createServer((socket) => {
    socket.setEncoding('utf8');
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') throw err;
    });
    let buffered = '';
    socket.on('data', (text: string) => {
      buffered += text;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const answer = reply(line);
        if (answer === 'close') socket.destroy();
        else if (answer !== undefined) socket.write(answer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve())));
  return server;
}

describe('sendRequest', () => {
  test('a missing socket is NotRunningError, exit code 3', async () => {
    const path = await makePath();
    const err = await sendRequest({ path, cmd: 'status' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotRunningError);
    expect(err).toMatchObject({ exitCode: EXIT.NOT_RUNNING, message: `supervisor daemon is not running (no answer on ${path})` });
  });

  test('a daemon that never answers is a timeout error', async () => {
    const path = await makePath();
    await startFakeDaemon(path, () => undefined);
    const started = Date.now();
    const err = await sendRequest({ path, cmd: 'status', timeoutMs: 100 }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err).toBeInstanceOf(SupervisorError);
    expect(err).toMatchObject({ exitCode: EXIT.FAILED, message: `no reply from the supervisor on ${path} to "status" within 100 ms` });
  });

  test('an ok:false reply becomes a SupervisorError with its message and exit code', async () => {
    const path = await makePath();
    await startFakeDaemon(path, (line) => {
      const { id } = JSON.parse(line) as { id: number };
      return `${JSON.stringify({ v: 1, id, ok: false, error: { message: 'no such instance', exitCode: 2 } })}\n`;
    });
    await expect(sendRequest({ path, cmd: 'stop' })).rejects.toMatchObject({ message: 'no such instance', exitCode: EXIT.USAGE });
  });

  test('an exit code this CLI does not know becomes 1', async () => {
    const path = await makePath();
    await startFakeDaemon(path, (line) => {
      const { id } = JSON.parse(line) as { id: number };
      return `${JSON.stringify({ v: 1, id, ok: false, error: { message: 'odd', exitCode: 77 } })}\n`;
    });
    await expect(sendRequest({ path, cmd: 'x' })).rejects.toMatchObject({ message: 'odd', exitCode: EXIT.FAILED });
  });

  test('a refusal with id null (the daemon could not read the frame) is the answer', async () => {
    const path = await makePath();
    await startFakeDaemon(path, () => `${JSON.stringify({ v: 1, id: null, ok: false, error: { message: 'invalid request: x', exitCode: 1 } })}\n`);
    await expect(sendRequest({ path, cmd: 'x' })).rejects.toMatchObject({ message: 'invalid request: x' });
  });

  test('replies for other ids are ignored; a reply split over writes is reassembled', async () => {
    const path = await makePath();
    await startFakeDaemon(path, (line) => {
      const { id } = JSON.parse(line) as { id: number };
      return `{"v":1,"id":${id + 1000},"ok":true,"result":"not mine"}\n{"v":1,"id":${id},"ok":true,"result":"mine"}\n`;
    });
    expect(await sendRequest({ path, cmd: 'x' })).toBe('mine');
  });

  test('a daemon of another protocol version is reported with both versions', async () => {
    const path = await makePath();
    await startFakeDaemon(path, () => '{"v":2,"id":1,"ok":true,"result":null}\n');
    await expect(sendRequest({ path, cmd: 'x' })).rejects.toMatchObject({
      message: expect.stringContaining('the daemon sent version 2, this client speaks version 1'),
    });
  });

  test('a daemon that closes mid-request is an error, not a hang', async () => {
    const path = await makePath();
    await startFakeDaemon(path, () => 'close');
    await expect(sendRequest({ path, cmd: 'x', timeoutMs: 5000 })).rejects.toMatchObject({
      message: expect.stringContaining('closed the connection before replying'),
    });
  });

  test('a streamed reply read with sendRequest is refused, not misread', async () => {
    const path = await makePath();
    const server = await startControlServer({ path, handle: async () => ({ stream: (async function* () { yield 'x'; })() }) });
    cleanups.push(() => server.close());
    await expect(sendRequest({ path, cmd: 'logs' })).rejects.toMatchObject({ message: expect.stringContaining('answered with a stream') });
  });
});

describe('streamRequest', () => {
  test('a missing socket is NotRunningError', async () => {
    const path = await makePath();
    const iterate = async (): Promise<void> => {
      for await (const _ of streamRequest({ path, cmd: 'logs' })) void _;
    };
    await expect(iterate()).rejects.toBeInstanceOf(NotRunningError);
  });

  test('times out only while waiting for the first frame', async () => {
    const path = await makePath();
    // First frame after 20 ms, then a quiet gap longer than the timeout, then the end (a loaded machine gets margins).
    const server = await startControlServer({
      path,
      handle: async () => ({
        stream: (async function* () {
          await new Promise((resolve) => setTimeout(resolve, 20));
          yield 'a';
          await new Promise((resolve) => setTimeout(resolve, 1500));
          yield 'b';
        })(),
      }),
    });
    cleanups.push(() => server.close());
    const chunks: string[] = [];
    for await (const chunk of streamRequest({ path, cmd: 'logs', timeoutMs: 1000 })) chunks.push(chunk);
    expect(chunks).toEqual(['a', 'b']);

    const silent = await makePath();
    await startFakeDaemon(silent, () => undefined);
    const iterate = async (): Promise<void> => {
      for await (const _ of streamRequest({ path: silent, cmd: 'logs', timeoutMs: 100 })) void _;
    };
    await expect(iterate()).rejects.toMatchObject({ message: expect.stringContaining('within 100 ms') });
  });

  test('a slow reader applies backpressure instead of queueing without bound', async () => {
    const path = await makePath();
    let produced = 0;
    const server = await startControlServer({
      path,
      handle: async (_cmd, _args, { signal }) => ({
        stream: (async function* () {
          while (!signal.aborted) {
            produced++;
            yield 'x'.repeat(1024);
          }
        })(),
      }),
    });
    cleanups.push(() => server.close());
    const iterator = streamRequest({ path, cmd: 'logs' })[Symbol.asyncIterator]();
    await iterator.next();
    // Bounded by the client's queue plus the kernel and Node socket buffers: a few MiB at most, not unbounded.
    // Stalled means no progress over 200 ms; a loaded machine may take a while to fill the buffers.
    let stalled = -1;
    for (let tries = 0; tries < 25 && produced !== stalled; tries++) {
      stalled = produced;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(produced).toBe(stalled);
    expect(produced).toBeLessThan(20_000);
    await iterator.return?.();
  });
});

describe('permissions', () => {
  // As root (the container's only user) the socket's mode cannot be seen failing; run the client as nobody instead.
  test.skipIf(process.getuid?.() !== 0)('a non-root client gets EACCES and is told to run as root', async () => {
    const { dir, remove } = await makeSocketDir();
    cleanups.push(remove);
    await chmod(dir, 0o755); // the directory lets nobody through: only the socket's own 0600 refuses
    const path = join(dir, 's.sock');
    const server = await startControlServer({ path, handle: async () => 'hello' });
    cleanups.push(() => server.close());
    expect(await sendRequest({ path, cmd: 'x' })).toBe('hello'); // negative control: root gets in

    const binDir = join(dir, 'bin');
    await mkdir(binDir, { mode: 0o755 });
    await build({
      entryPoints: [new URL('../../src/control/client.ts', import.meta.url).pathname],
      outfile: join(binDir, 'client.mjs'),
      bundle: true,
      format: 'esm',
      platform: 'node',
      logLevel: 'error',
    });
    const script = join(binDir, 'try.mjs');
    await writeFile(
      script,
      `import { sendRequest } from './client.mjs';
sendRequest({ path: ${JSON.stringify(path)}, cmd: 'x' }).then(
  () => console.log('{"connected":true}'),
  (e) => console.log(JSON.stringify({ message: e.message, exitCode: e.exitCode, code: e.cause?.code })));\n`,
    );
    await chmod(join(binDir, 'client.mjs'), 0o644);
    await chmod(script, 0o644);
    const { stdout } = await promisify(execFile)(process.execPath, [script], { uid: 65534, gid: 65534, cwd: binDir });
    const result = JSON.parse(stdout) as { message: string; exitCode: number; code: string };
    expect(result.code).toBe('EACCES');
    expect(result.exitCode).toBe(EXIT.FAILED);
    expect(result.message).toContain('run this command as root, e.g. `docker exec <container> supervisor ...`');
  });
});
