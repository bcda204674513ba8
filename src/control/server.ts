// The daemon's end of the control socket: accepts CLI connections, reads
// newline-delimited JSON requests (protocol.ts), runs each through one handler
// and writes the reply. A bad frame or a failing handler costs one error reply,
// never the daemon, and no client can crowd out another (serveConnection).
// Only root can connect: the socket is 0600 in a directory only root may write
// to (socket-file.ts checks it, and what is at the path, before listening).
// Over 250 lines because the socket file's lifecycle (listen, chmod, unlink)
// and the per-connection bounds only make sense read together.

import { chmod, unlink } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { isSupervisorError, SupervisorError } from '../errors.ts';
import {
  createFrameReader,
  encodeFrame,
  makeErrorReply,
  MAX_FRAME_BYTES,
  parseRequest,
  PROTOCOL_VERSION,
  type ControlReply,
  type ControlRequest,
} from './protocol.ts';
import { prepareSocketPath } from './socket-file.ts';
import { silentLog, type Log } from '../logging/log.ts';

/** What a handler gets besides the command: aborted when the client disconnects or the server closes. */
export interface RequestContext {
  signal: AbortSignal;
}

/** Runs one command. Throw a SupervisorError to refuse it; return `{ stream }` to stream the reply. */
export type ControlHandler = (cmd: string, args: Record<string, unknown>, ctx: RequestContext) => Promise<unknown>;

/**
 * A handler's streamed answer (`logs -f`): each string becomes a chunk frame (one over ~170K characters is cut
 * into several, so chunk boundaries mean nothing to the reader). Producers should watch ctx.signal.
 */
export interface StreamResult {
  stream: AsyncIterable<string>;
}

/** Options of startControlServer. */
export interface ControlServerOptions {
  path: string;
  handle: ControlHandler;
  log?: Log;
}

/** A listening control server. */
export interface ControlServer {
  readonly path: string;
  /** Stops listening, aborts in-flight requests, ends connections and removes the socket file. */
  close(): Promise<void>;
}

/** Connections beyond this are dropped at accept: with MAX_FRAME_BYTES each, this bounds buffered input. */
const MAX_CONNECTIONS = 256;
/** Requests one connection may have running at once; the CLI sends one, so more means a runaway client. */
const MAX_IN_FLIGHT_PER_CONNECTION = 32;
/** Replies a client may leave unread before the server stops reading its requests. */
const MAX_UNREAD_REPLY_BYTES = 1024 * 1024;
/**
 * Frames one connection may have handled in one turn of the event loop before the others get theirs: a turn then
 * costs well under a millisecond, and the CLI's one request never waits for a second turn. No more than may be in
 * flight, so a client that pipelines quick requests in one write gets them all answered, a turn's worth at a time.
 */
const FRAMES_PER_TURN = MAX_IN_FLIGHT_PER_CONNECTION;
/**
 * Invalid frames one connection may send before it is closed. The CLI sends none; a person typing at socat sees
 * their first mistakes answered; a flood of garbage costs this many replies instead of one per line.
 */
const MAX_INVALID_FRAMES = 16;
/** How long an ended connection may take to close before it is destroyed (flushes the last reply first). */
const CLOSE_GRACE_MS = 1000;
/**
 * How long a connection that broke the bounds is held (not read, no end-of-file yet) before it is closed. A client
 * that reconnects as soon as it is closed, as a flood in a shell loop does, then costs the daemon one connection
 * per client per this long instead of thousands a second; the reply saying why reaches it at once.
 */
const HANG_UP_LINGER_MS = 1000;
/** UTF-16 units per chunk frame: 6 bytes each at worst, plus the envelope, stays under MAX_FRAME_BYTES. */
const CHUNK_PIECE_UNITS = Math.floor((MAX_FRAME_BYTES - 100) / 6);
/** Errnos of a peer that went away; expected, logged at debug only. */
const PEER_GONE_ERRNOS = new Set(['EPIPE', 'ECONNRESET']);

/** One accepted connection and the requests it has running. */
interface Connection {
  socket: Socket;
  inFlight: Set<AbortController>;
  /** Frames that could not be read so far. */
  invalidFrames: number;
  /** Set once the server hangs up on it. */
  closing: boolean;
}

/** Starts listening on `path` once it is safe (socket-file.ts); refuses when another daemon answers there. */
export async function startControlServer({ path, handle, log = silentLog }: ControlServerOptions): Promise<ControlServer> {
  await prepareSocketPath(path);

  const connections = new Set<Connection>();
  const server = createServer((socket) => {
    const conn: Connection = { socket, inFlight: new Set(), invalidFrames: 0, closing: false };
    connections.add(conn);
    socket.once('close', () => {
      connections.delete(conn);
      abortAll(conn);
    });
    serveConnection({ conn, handle, log });
  });
  server.maxConnections = MAX_CONNECTIONS;
  server.on('drop', () => log.warn({ maxConnections: MAX_CONNECTIONS }, 'control connection refused: too many connections'));

  await listenOn({ server, path });
  try {
    await chmod(path, 0o600);
  } catch (err) {
    server.close();
    throw new SupervisorError(`cannot restrict the control socket ${path} to root: ${(err as Error).message}`, { cause: err });
  }

  let closing: Promise<void> | undefined;
  return {
    path,
    close() {
      closing ??= closeServer({ server, connections, path });
      return closing;
    },
  };
}

/** server.listen as a promise; EADDRINUSE here means another daemon won a start race. */
function listenOn({ server, path }: { server: Server; path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EADDRINUSE') reject(new SupervisorError(`another supervisor is already running on ${path}`, { cause: err }));
      else reject(new SupervisorError(`cannot listen on the control socket ${path}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(path, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Closes the listener and every connection, then removes the socket file. */
async function closeServer({ server, connections, path }: { server: Server; connections: Set<Connection>; path: string }): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const conn of connections) {
    abortAll(conn);
    endConnection(conn.socket);
  }
  await closed;
  // libuv already unlinks the socket on close; this covers the case where it could not.
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Aborts every request a connection has running. */
function abortAll(conn: Connection): void {
  for (const controller of conn.inFlight) controller.abort();
  conn.inFlight.clear();
}

/** Half-closes a socket so queued replies flush, and destroys it if the peer does not close in time. */
function endConnection(socket: Socket): void {
  if (socket.destroyed) return;
  socket.end();
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Writes one frame unless the peer is gone; false tells a streaming writer to wait for 'drain'. */
function writeFrame(socket: Socket, frame: ControlReply): boolean {
  if (socket.destroyed || !socket.writable) return true;
  return socket.write(encodeFrame(frame));
}

/**
 * Reads frames from one connection and answers each, a bounded share at a time: at most FRAMES_PER_TURN frames per
 * turn of the event loop (so one client's flood cannot hold up another's `status`), and no reading at all while the
 * frames read so far wait for that turn or while the client leaves more than MAX_UNREAD_REPLY_BYTES of replies unread.
 */
function serveConnection({ conn, handle, log }: { conn: Connection; handle: ControlHandler; log: Log }): void {
  const { socket } = conn;
  // Each in-flight reply may wait for 'drain' at once; that many listeners is by design, not a leak.
  socket.setMaxListeners(MAX_IN_FLIGHT_PER_CONNECTION + 8);
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== undefined && PEER_GONE_ERRNOS.has(err.code)) log.debug({ err }, 'control client went away');
    else log.warn({ err }, 'control connection failed');
  });
  const reader = createFrameReader();
  let budget = FRAMES_PER_TURN;
  let waitingForDrain = false;

  // The budget comes back on the next turn (scheduled when a turn spends the first of it); a starved reader goes on.
  const refill = (): void => {
    const starved = budget === 0;
    budget = FRAMES_PER_TURN;
    if (starved) pump();
  };
  // Reading resumes once the client has taken our replies.
  const waitForReader = (): void => {
    socket.pause();
    if (waitingForDrain) return;
    waitingForDrain = true;
    socket.once('drain', () => {
      waitingForDrain = false;
      pump();
    });
  };
  const pump = (): void => {
    // Corked: the replies of one turn leave in one write, not one syscall each.
    socket.cork();
    try {
      for (;;) {
        if (conn.closing || socket.destroyed) {
          // Hung up: the rest of its input is never read, so it need not be held until the socket is gone.
          reader.discard();
          return;
        }
        if (socket.writableLength > MAX_UNREAD_REPLY_BYTES) {
          waitForReader();
          return;
        }
        if (budget === 0) {
          socket.pause(); // refill() goes on next turn
          return;
        }
        const line = reader.next();
        if (line === null) break;
        if (budget === FRAMES_PER_TURN) setImmediate(refill);
        budget--;
        handleFrame({ conn, line, handle, log });
      }
      if (reader.overflowed) hangUp(conn, `invalid request: frame longer than ${MAX_FRAME_BYTES} bytes`);
      else socket.resume();
    } finally {
      socket.uncork();
    }
  };
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    pump();
  });
}

/** Answers one frame: an error reply if it cannot be read (past MAX_INVALID_FRAMES, a hang-up), a refusal past the in-flight cap, else runs it. */
function handleFrame({ conn, line, handle, log }: { conn: Connection; line: string; handle: ControlHandler; log: Log }): void {
  const parsed = parseRequest(line);
  if (!parsed.ok) {
    if (++conn.invalidFrames > MAX_INVALID_FRAMES) {
      hangUp(conn, `too many invalid requests on one connection (more than ${MAX_INVALID_FRAMES}); closing it`);
      return;
    }
    writeFrame(conn.socket, makeErrorReply({ id: parsed.id, ...parsed.error }));
    return;
  }
  if (conn.inFlight.size >= MAX_IN_FLIGHT_PER_CONNECTION) {
    const message = `too many requests in flight on one connection (at most ${MAX_IN_FLIGHT_PER_CONNECTION})`;
    writeFrame(conn.socket, makeErrorReply({ id: parsed.request.id, message }));
    return;
  }
  void runRequest({ conn, request: parsed.request, handle, log });
}

/** Says why, then closes a connection that broke the protocol's bounds; nothing it sends after that is read. */
function hangUp(conn: Connection, message: string): void {
  const { socket } = conn;
  writeFrame(socket, makeErrorReply({ id: null, message }));
  conn.closing = true;
  abortAll(conn);
  socket.pause();
  // Held a while, unread and without an end-of-file, before it is closed: see HANG_UP_LINGER_MS.
  const timer = setTimeout(() => socket.destroy(), HANG_UP_LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/** Runs one request through the handler and writes its reply (or streams it); never rejects. */
async function runRequest({ conn, request, handle, log }: {
  conn: Connection;
  request: ControlRequest;
  handle: ControlHandler;
  log: Log;
}): Promise<void> {
  const { socket } = conn;
  const { id, cmd } = request;
  const controller = new AbortController();
  conn.inFlight.add(controller);
  try {
    const value = await handle(cmd, request.args, { signal: controller.signal });
    if (isStreamResult(value)) {
      await pipeStream({ socket, id, stream: value.stream, signal: controller.signal, log });
      return;
    }
    const frame = encodeFrame({ v: PROTOCOL_VERSION, id, ok: true, result: value ?? null });
    if (Buffer.byteLength(frame) > MAX_FRAME_BYTES + 1) throw new Error(`reply to "${cmd}" is longer than ${MAX_FRAME_BYTES} bytes`);
    // Still counted in flight while it waits, so a client that does not read gets refusals, not a growing buffer.
    if (socket.writableLength > MAX_UNREAD_REPLY_BYTES && (await waitForDrain({ socket, signal: controller.signal })) === 'aborted') return;
    if (controller.signal.aborted) return;
    if (!socket.destroyed && socket.writable) socket.write(frame);
  } catch (err) {
    if (controller.signal.aborted) return;
    writeFrame(socket, makeErrorReply({ id, ...describeFailure({ err, cmd, log }) }));
  } finally {
    conn.inFlight.delete(controller);
  }
}

/** Turns a handler's failure into a reply: SupervisorErrors as they are, anything else as a logged internal error. */
function describeFailure({ err, cmd, log }: { err: unknown; cmd: string; log: Log }): { message: string; exitCode: number } {
  if (isSupervisorError(err)) return { message: err.message, exitCode: err.exitCode };
  log.error({ err, cmd }, 'control handler failed');
  const message = err instanceof Error ? err.message : String(err);
  return { message: `internal error: ${message}`, exitCode: 1 };
}

/** Waits until the socket's write buffer empties, or the request is aborted (the client left: no drain comes). */
function waitForDrain({ socket, signal }: { socket: Socket; signal: AbortSignal }): Promise<'drained' | 'aborted'> {
  if (signal.aborted) return Promise.resolve('aborted');
  return new Promise((resolve) => {
    const onDrain = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve('drained');
    };
    const onAbort = (): void => {
      socket.off('drain', onDrain);
      resolve('aborted');
    };
    socket.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** True for a handler result that asks for a streamed reply. */
function isStreamResult(value: unknown): value is StreamResult {
  if (typeof value !== 'object' || value === null) return false;
  const stream = (value as { stream?: unknown }).stream;
  return typeof stream === 'object' && stream !== null && typeof (stream as AsyncIterable<string>)[Symbol.asyncIterator] === 'function';
}

/** Sends each item of a stream as a chunk frame, then an end frame; stops at once when the client goes. */
async function pipeStream({ socket, id, stream, signal, log }: {
  socket: Socket;
  id: number;
  stream: AsyncIterable<string>;
  signal: AbortSignal;
  log: Log;
}): Promise<void> {
  const iterator = stream[Symbol.asyncIterator]();
  if (signal.aborted) {
    // The client left while the handler was still preparing the stream.
    stopIterator({ iterator, log });
    return;
  }
  // Settles when the request is aborted, so a producer waiting for its next item cannot hold the request open.
  const aborted = new Promise<'aborted'>((resolve) => {
    if (signal.aborted) resolve('aborted');
    else signal.addEventListener('abort', () => resolve('aborted'), { once: true });
  });
  let finished = false;
  try {
    for (;;) {
      const next = iterator.next();
      const step = await Promise.race([next, aborted]);
      if (step === 'aborted') {
        // The pending item may still fail; nobody awaits it any more, so note it here instead of crashing.
        next.catch((err: unknown) => log.debug({ err }, 'stream producer failed after the client left'));
        return;
      }
      if (step.done) {
        finished = true;
        break;
      }
      for (const chunk of splitChunk(String(step.value))) {
        // Backpressure: a client that reads slowly must not make the daemon buffer its whole log.
        if (!writeFrame(socket, { v: PROTOCOL_VERSION, id, ok: true, chunk }) && (await waitForDrain({ socket, signal })) === 'aborted') return;
      }
    }
  } finally {
    if (!finished) stopIterator({ iterator, log });
  }
  writeFrame(socket, { v: PROTOCOL_VERSION, id, ok: true, end: true });
}

/** Cuts a chunk into pieces whose frames fit MAX_FRAME_BYTES even if every character is escaped (\uXXXX, 6 bytes). */
function* splitChunk(chunk: string): Generator<string> {
  if (chunk.length <= CHUNK_PIECE_UNITS) {
    yield chunk;
    return;
  }
  for (let start = 0; start < chunk.length; ) {
    let end = Math.min(start + CHUNK_PIECE_UNITS, chunk.length);
    // Never split a surrogate pair: each half alone would be re-encoded as U+FFFD.
    const last = chunk.charCodeAt(end - 1);
    if (end < chunk.length && last >= 0xd800 && last <= 0xdbff) end--;
    yield chunk.slice(start, end);
    start = end;
  }
}

/** Asks a stream's producer to clean up, without waiting: it may see this only once its current await settles. */
function stopIterator({ iterator, log }: { iterator: AsyncIterator<string>; log: Log }): void {
  Promise.resolve(iterator.return?.()).catch((err: unknown) => log.warn({ err }, 'stream producer failed while stopping'));
}
