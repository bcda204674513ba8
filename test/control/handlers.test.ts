// The daemon's command table, through the built daemon's socket: a command name
// that happens to be a member of Object.prototype is an unknown command like
// any other (issue 9: "constructor" answered ok, "hasOwnProperty" was an
// internal error with a logged stack).
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { sendRequest } from '../../src/control/client.ts';
import { EXIT } from '../../src/errors.ts';
import { startDaemon, type DaemonHandle } from '../support/daemon.ts';

let daemon: DaemonHandle;

beforeAll(async () => {
  // No config: the command table is all this needs.
  daemon = await startDaemon('', {}, { withConfig: false });
});

afterAll(async () => {
  await daemon?.stop();
});

describe('command lookup', () => {
  test.each(['constructor', '__proto__', 'hasOwnProperty', 'toString', 'valueOf', 'isPrototypeOf'])(
    '"%s" is an unknown command (exit 2), not a member of Object.prototype',
    async (cmd) => {
      const failure = await sendRequest({ path: daemon.socket, cmd }).then(
        (result: unknown) => ({ answered: result }),
        (err: unknown) => err,
      );
      expect(failure).toMatchObject({ exitCode: EXIT.USAGE, message: expect.stringMatching(new RegExp(`^unknown command "${cmd}" \\(known: ping, status,`)) });
    },
  );

  test('nothing was logged as a handler failure, and a real command still answers', async () => {
    expect(await sendRequest({ path: daemon.socket, cmd: 'ping' })).toMatchObject({ pid: daemon.process.pid });
    expect(daemon.events.filter((e) => e.msg === 'control handler failed')).toEqual([]);
  });
});
