// The CLI's end of the control socket: one connection per request. It sits on
// the `supervisor status` path, so it loads only node:net, errors.ts and
// protocol.ts (which imports nothing); test/control/client-imports.test.ts checks that.

import { connect, type Socket } from 'node:net';
import { EXIT, NotRunningError, SupervisorError, type ExitCode } from '../errors.ts';
import {
  createFrameSplitter,
  encodeFrame,
  MAX_FRAME_BYTES,
  parseReply,
  PROTOCOL_VERSION,
  type ControlReply,
  type ReplyError,
} from './protocol.ts';

/** How long a request waits for its reply unless the caller says otherwise; commands that wait on a model pass more. */
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** Chunks a streamed reply may queue before the client stops reading the socket (the daemon then waits too). */
const MAX_QUEUED_CHUNKS = 256;

/** Options of sendRequest and streamRequest. */
export interface RequestOptions {
  path: string;
  cmd: string;
  args?: Record<string, unknown>;
  /** sendRequest: until the reply; streamRequest: until the first frame (a followed log may be quiet for hours). */
  timeoutMs?: number;
}

let lastRequestId = 0;

/** Sends one command and resolves with its result; every failure is a SupervisorError the CLI can print. */
export function sendRequest({ path, cmd, args = {}, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS }: RequestOptions): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let settled = false;
    // Settles once; later replies, errors and the close that follows destroy() are ignored.
    const finish = (settle: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      settle();
    };
    const socket = openRequest({
      path,
      cmd,
      args,
      onReply: (reply) => {
        if (!reply.ok) finish(() => reject(makeReplyError(reply.error)));
        else if ('result' in reply) finish(() => resolve(reply.result));
        else finish(() => reject(new SupervisorError(`"${cmd}" answered with a stream; this command cannot read one`)));
      },
      onFail: (err) => finish(() => reject(err)),
    });
    const timer = setTimeout(() => finish(() => reject(makeTimeoutError({ path, cmd, timeoutMs }))), timeoutMs);
  });
}

/** Sends one command whose reply is streamed (`logs -f`) and yields each chunk; breaking out of the loop disconnects. */
export async function* streamRequest({
  path,
  cmd,
  args = {},
  timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
}: RequestOptions): AsyncGenerator<string, void, undefined> {
  const queue: string[] = [];
  let ended = false;
  let failure: SupervisorError | undefined;
  let wake: (() => void) | undefined;
  // Wakes the consumer loop when a frame or a failure arrives.
  const notify = (): void => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  const socket = openRequest({
    path,
    cmd,
    args,
    onReply: (reply) => {
      if (ended || failure) return;
      clearTimeout(timer);
      if (!reply.ok) failure = makeReplyError(reply.error);
      else if ('chunk' in reply) {
        queue.push(reply.chunk);
        if (queue.length >= MAX_QUEUED_CHUNKS) socket.pause();
      } else ended = true; // the end frame, or a plain result: either way nothing more comes
      notify();
    },
    onFail: (err) => {
      if (ended || failure) return;
      failure = err;
      notify();
    },
  });
  const timer = setTimeout(() => {
    failure ??= makeTimeoutError({ path, cmd, timeoutMs });
    socket.destroy();
    notify();
  }, timeoutMs);
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk !== undefined) {
        if (socket.isPaused() && queue.length < MAX_QUEUED_CHUNKS / 2) socket.resume();
        yield chunk;
        continue;
      }
      if (failure) throw failure;
      if (ended) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

/** Connects, sends the request once connected and passes each reply frame for it (or for no id) to onReply. */
function openRequest({ path, cmd, args, onReply, onFail }: {
  path: string;
  cmd: string;
  args: Record<string, unknown>;
  onReply: (reply: ControlReply) => void;
  onFail: (err: SupervisorError) => void;
}): Socket {
  const id = ++lastRequestId;
  // Encode before connecting, so args that JSON cannot hold fail here, synchronously.
  const frame = encodeFrame({ v: PROTOCOL_VERSION, id, cmd, args });
  if (Buffer.byteLength(frame) > MAX_FRAME_BYTES + 1) throw new SupervisorError(`request "${cmd}" is longer than ${MAX_FRAME_BYTES} bytes`);

  let connected = false;
  const socket = connect(path);
  const splitter = createFrameSplitter({
    onFrame: (line) => {
      const parsed = parseReply(line);
      if (!parsed.ok) return onFail(new SupervisorError(`invalid reply from the supervisor on ${path}: ${parsed.message}`));
      // id null: the daemon could not read our frame at all, and this connection carries only our request.
      if (parsed.reply.id === id || parsed.reply.id === null) onReply(parsed.reply);
    },
    onOverflow: () => onFail(new SupervisorError(`a reply from the supervisor on ${path} is longer than ${MAX_FRAME_BYTES} bytes`)),
  });
  socket.once('connect', () => {
    connected = true;
    socket.write(frame);
  });
  socket.on('data', (chunk: Buffer) => splitter.push(chunk));
  socket.on('error', (err: NodeJS.ErrnoException) => onFail(connected ? makeLostError({ path, err }) : makeConnectError({ path, err })));
  socket.once('close', () => onFail(new SupervisorError(`the supervisor on ${path} closed the connection before replying`)));
  return socket;
}

/** Maps a failed connect to what the user should do: start the daemon, or become root. */
function makeConnectError({ path, err }: { path: string; err: NodeJS.ErrnoException }): SupervisorError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new NotRunningError(path, err);
    case 'EACCES':
    case 'EPERM':
      return new SupervisorError(
        `permission denied on the control socket ${path}: only root may talk to the supervisor; ` +
          'run this command as root, e.g. `docker exec <container> supervisor ...`',
        { cause: err },
      );
    default:
      return new SupervisorError(`cannot connect to the supervisor on ${path}: ${err.message}`, { cause: err });
  }
}

/** A connection that broke after connect: the daemon died or closed it mid-request. */
function makeLostError({ path, err }: { path: string; err: NodeJS.ErrnoException }): SupervisorError {
  return new SupervisorError(`lost the connection to the supervisor on ${path}: ${err.message}`, { cause: err });
}

/** A request that got no reply in time. */
function makeTimeoutError({ path, cmd, timeoutMs }: { path: string; cmd: string; timeoutMs: number }): SupervisorError {
  return new SupervisorError(`no reply from the supervisor on ${path} to "${cmd}" within ${timeoutMs} ms`);
}

/** Rebuilds the daemon's refusal with its exit code; an exit code this CLI does not know becomes FAILED. */
function makeReplyError({ message, exitCode }: ReplyError): SupervisorError {
  const known = (Object.values(EXIT) as number[]).includes(exitCode);
  return new SupervisorError(message, { exitCode: known ? (exitCode as ExitCode) : EXIT.FAILED });
}
