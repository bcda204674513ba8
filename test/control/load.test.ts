// The daemon under load and abuse: 100 concurrent CLI clients while garbage
// clients connect, spew and vanish. Afterwards no fd may be left open and
// memory must not creep up from round to round.

import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { sendRequest, streamRequest } from '../../src/control/client.ts';
import { startControlServer, type ControlServer } from '../../src/control/server.ts';
import { collectGarbage, countFds, makeSocketDir, waitUntil } from './socket-fixtures.ts';

const CLIENTS = 100;
const REQUESTS_PER_CLIENT = 3;
const GARBAGE_CLIENTS = 40;
const ROUNDS = 10;
/** Rounds run before the RSS baseline is taken: lets V8 and Node grow their pools to steady state. */
const WARMUP_ROUNDS = 3;
/** fds a test process may legitimately open meanwhile (libuv, vitest's own IPC): well below one per client. */
const FD_SLACK = 5;
/** "Material" growth: rounds differ by ~10 MiB of noise; a 64 KiB leak per connection (~450 a round) adds ~200 MiB over 7 rounds. */
const RSS_GROWTH_LIMIT = 48 * 1024 * 1024;

let server: ControlServer;
let path: string;
let removeDir: () => Promise<void>;

beforeAll(async () => {
  ({ path, remove: removeDir } = await makeSocketDir());
  server = await startControlServer({
    path,
    handle: async (cmd, args, { signal }) => {
      if (cmd === 'echo') return args;
      if (cmd === 'sleep') {
        await new Promise((resolve) => setTimeout(resolve, Number(args.ms)));
        return { slept: args.ms };
      }
      if (cmd === 'logs') {
        return {
          stream: (async function* () {
            for (let i = 0; !signal.aborted; i++) {
              yield `line ${i}\n`;
              await new Promise((resolve) => setTimeout(resolve, 1));
            }
          })(),
        };
      }
      throw new Error(`unexpected ${cmd}`);
    },
  });
});

afterAll(async () => {
  await server.close();
  await removeDir();
});

/** How long a garbage client waits for its socket to close; past it, the daemon failed to hang up. */
const GARBAGE_CLOSE_TIMEOUT_MS = 5000;

// One misbehaving client; `kind` picks how it misbehaves. Resolves when its socket is closed.
function runGarbageClient(kind: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`garbage client of kind ${kind % 6}: the daemon did not close the connection`));
    }, GARBAGE_CLOSE_TIMEOUT_MS);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') reject(err);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume(); // read and drop replies
    socket.once('connect', () => {
      switch (kind % 6) {
        case 0: // connect and leave
          socket.destroy();
          break;
        case 1: // random bytes, some of them newlines, then leave at once
          socket.write(randomBytes(4096));
          socket.destroy();
          break;
        case 2: // half a frame, then leave
          socket.write('{"v":1,"id":1,"cmd":"ec');
          setTimeout(() => socket.destroy(), 5);
          break;
        case 3: // a line over the 1 MiB limit: the daemon answers and closes
          socket.write(Buffer.alloc(1100 * 1024, 0x61));
          break;
        case 4: // a real request, then leave before the reply
          socket.write('{"v":1,"id":1,"cmd":"sleep","args":{"ms":20}}\n');
          setTimeout(() => socket.destroy(), 5);
          break;
        case 5: // invalid JSON and a wrong version, wait for the replies, then leave
          socket.write('not json\n{"v":9,"id":2,"cmd":"x","args":{}}\n');
          setTimeout(() => socket.destroy(), 20);
          break;
      }
    });
  });
}

// One well-behaved CLI client doing a few requests in a row.
async function runClient(n: number): Promise<void> {
  for (let i = 0; i < REQUESTS_PER_CLIENT; i++) {
    const args = { n, i, pad: 'x'.repeat(512) };
    const result = i === 1 ? await sendRequest({ path, cmd: 'sleep', args: { ms: 5 } }) : await sendRequest({ path, cmd: 'echo', args });
    expect(result).toEqual(i === 1 ? { slept: 5 } : args);
  }
}

// A `logs -f` client that reads a few lines and leaves.
async function runFollower(): Promise<void> {
  let seen = 0;
  for await (const _ of streamRequest({ path, cmd: 'logs' })) if (++seen === 5) break;
}

// One round: all clients at once, garbage and followers mixed in.
async function runRound(): Promise<void> {
  await Promise.all([
    ...Array.from({ length: CLIENTS }, (_, n) => runClient(n)),
    ...Array.from({ length: GARBAGE_CLIENTS }, (_, n) => runGarbageClient(n)),
    ...Array.from({ length: 5 }, () => runFollower()),
  ]);
}

test('100 concurrent clients among garbage clients leave no fds behind and no memory growth', async () => {
  const baselineFds = await countFds();
  let baselineRss = 0;
  const rssByRound: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    await runRound();
    // Every connection of the round must be closed on the server side too, not just ours.
    await waitUntil(async () => (await countFds()) <= baselineFds + FD_SLACK);
    collectGarbage();
    const rss = process.memoryUsage().rss;
    rssByRound.push(Math.round(rss / 1024 / 1024));
    if (round === WARMUP_ROUNDS) baselineRss = rss;
  }
  expect(await countFds()).toBeLessThanOrEqual(baselineFds + FD_SLACK);
  const growth = process.memoryUsage().rss - baselineRss;
  expect(growth, `RSS by round (MiB): ${rssByRound.join(', ')}`).toBeLessThan(RSS_GROWTH_LIMIT);
  // The daemon still serves after all that.
  expect(await sendRequest({ path, cmd: 'echo', args: { after: true } })).toEqual({ after: true });
});
