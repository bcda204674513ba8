// The control socket's wire format: one JSON object per line ("\n"-delimited).
// This module imports nothing, so the CLI's client can load it for free; it is
// over 250 lines because the frame types, the line reader and both parsers are
// one format, and splitting it would only add imports to the CLI's start.
//
//   request  {"v":1,"id":7,"cmd":"status","args":{}}
//   reply    {"v":1,"id":7,"ok":true,"result":...}
//            {"v":1,"id":7,"ok":false,"error":{"message":"...","exitCode":1}}
//   stream   {"v":1,"id":7,"ok":true,"chunk":"..."} ... {"v":1,"id":7,"ok":true,"end":true}
//
// A reply to a frame that could not be read has `"id": null`.

/** Bumped on any incompatible change; both sides refuse frames of another version. */
export const PROTOCOL_VERSION = 1;

/** Longest frame either side accepts, in bytes, newline excluded: bounds per-connection memory. */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** The exit code sent with protocol errors (EXIT.FAILED; kept literal so this file imports nothing). */
const PROTOCOL_ERROR_EXIT_CODE = 1;

/** A command sent by the CLI. */
export interface ControlRequest {
  v: typeof PROTOCOL_VERSION;
  id: number;
  cmd: string;
  args: Record<string, unknown>;
}

/** What a failed request carries back: a message for people and the CLI's exit code. */
export interface ReplyError {
  message: string;
  exitCode: number;
}

/** The one reply to a plain request. */
export interface ResultReply {
  v: typeof PROTOCOL_VERSION;
  id: number;
  ok: true;
  result: unknown;
}

/** A failed request, or (id null) a frame that could not be read. */
export interface ErrorReply {
  v: typeof PROTOCOL_VERSION;
  id: number | null;
  ok: false;
  error: ReplyError;
}

/** One piece of a streamed reply (`logs -f`). */
export interface ChunkReply {
  v: typeof PROTOCOL_VERSION;
  id: number;
  ok: true;
  chunk: string;
}

/** The last frame of a streamed reply. */
export interface EndReply {
  v: typeof PROTOCOL_VERSION;
  id: number;
  ok: true;
  end: true;
}

/** Every frame the daemon sends. */
export type ControlReply = ResultReply | ErrorReply | ChunkReply | EndReply;

/** parseRequest's answer: the request, or why the frame was refused (with its id when one could be read). */
export type ParsedRequest =
  | { ok: true; request: ControlRequest }
  | { ok: false; id: number | null; error: ReplyError };

/** parseReply's answer: the reply, or why it is not one. */
export type ParsedReply = { ok: true; reply: ControlReply } | { ok: false; message: string };

/** Serializes one frame; throws (TypeError) for values JSON cannot hold, such as BigInt or cycles. */
export function encodeFrame(frame: ControlRequest | ControlReply): string {
  return `${JSON.stringify(frame)}\n`;
}

/** Builds the error reply to a request (or, with id null, to an unreadable frame). */
export function makeErrorReply({ id, message, exitCode = PROTOCOL_ERROR_EXIT_CODE }: {
  id: number | null;
  message: string;
  exitCode?: number;
}): ErrorReply {
  return { v: PROTOCOL_VERSION, id, ok: false, error: { message, exitCode } };
}

/** A byte stream cut into lines on demand: push() what arrived, then next() until it returns null. */
export interface FrameReader {
  push(chunk: Buffer): void;
  /** The next complete line, decoded as UTF-8, without its "\n"; null when more input is needed or after an overflow. */
  next(): string | null;
  /** True once a line grew past the limit; all input after it is ignored. */
  readonly overflowed: boolean;
  /** Drops what is held and ignores all further input (the daemon is hanging up on the connection). */
  discard(): void;
}

/**
 * Cuts a byte stream into lines one at a time, so the daemon can stop between two frames of one chunk and let
 * other connections run. A chunk may hold part of a frame or several, and a UTF-8 character may span chunks.
 * Input pushed is held until next() has taken it: call next() until it returns null before pushing more.
 */
export function createFrameReader({ maxFrameBytes = MAX_FRAME_BYTES }: { maxFrameBytes?: number } = {}): FrameReader {
  // Unscanned input: the first chunk from `offset` on, then whole chunks.
  const chunks: Buffer[] = [];
  let offset = 0;
  // The start of an unfinished line, copied out of the chunks it came in.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let overflowed = false;

  let stopped = false;

  // Drops what is held and ignores all input from now on.
  const stop = (): void => {
    stopped = true;
    chunks.length = 0;
    pending = [];
    pendingBytes = 0;
  };
  const overflow = (): null => {
    overflowed = true;
    stop();
    return null;
  };

  const next = (): string | null => {
    while (!stopped && chunks.length > 0) {
      const chunk = chunks[0];
      const newline = chunk.indexOf(0x0a, offset);
      if (newline === -1) {
        const rest = chunk.subarray(offset);
        chunks.shift();
        offset = 0;
        pendingBytes += rest.length;
        if (pendingBytes > maxFrameBytes) return overflow();
        // Copy, so a small tail does not pin the socket's whole 64 KiB read buffer.
        if (rest.length > 0) pending.push(Buffer.from(rest));
        continue;
      }
      const piece = chunk.subarray(offset, newline);
      offset = newline + 1;
      if (offset === chunk.length) {
        chunks.shift();
        offset = 0;
      }
      if (pendingBytes + piece.length > maxFrameBytes) return overflow();
      const line = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
      pending = [];
      pendingBytes = 0;
      return line.toString('utf8');
    }
    return null;
  };

  return {
    push(chunk) {
      if (!stopped && chunk.length > 0) chunks.push(chunk);
    },
    next,
    discard: stop,
    get overflowed() {
      return overflowed;
    },
  };
}

/** Options of createFrameSplitter. */
export interface FrameSplitterOptions {
  /** Called once per complete line, decoded as UTF-8, without its "\n". */
  onFrame: (line: string) => void;
  /** Called once when a line grows past maxFrameBytes; the splitter ignores all input after it. */
  onOverflow: () => void;
  maxFrameBytes?: number;
}

/** A FrameReader that hands every line of a chunk over at once (the client: it reads one daemon, no one to be fair to). */
export function createFrameSplitter({ onFrame, onOverflow, maxFrameBytes = MAX_FRAME_BYTES }: FrameSplitterOptions): {
  push: (chunk: Buffer) => void;
} {
  const reader = createFrameReader({ maxFrameBytes });
  let reported = false;
  const push = (chunk: Buffer): void => {
    reader.push(chunk);
    for (let line = reader.next(); line !== null; line = reader.next()) onFrame(line);
    if (reader.overflowed && !reported) {
      reported = true;
      onOverflow();
    }
  };
  return { push };
}

/** True for a non-null, non-array object: the only shape a frame or `args` may have. */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** True for an id a frame may carry: a non-negative safe integer. */
function isFrameId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Validates one request line; every refusal names what was wrong, so a broken client can be fixed. */
export function parseRequest(line: string): ParsedRequest {
  const refuse = (message: string, id: number | null = null): ParsedRequest => ({
    ok: false,
    id,
    error: { message: `invalid request: ${message}`, exitCode: PROTOCOL_ERROR_EXIT_CODE },
  });
  let frame: unknown;
  try {
    frame = JSON.parse(line);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return refuse('not valid JSON');
  }
  if (!isPlainObject(frame)) return refuse('expected a JSON object');
  // Echo the id whenever it is readable, so the sender can match the refusal to its request.
  const id = isFrameId(frame.id) ? frame.id : null;
  if (frame.v !== PROTOCOL_VERSION) {
    const theirs = frame.v === undefined ? 'no version' : `version ${JSON.stringify(frame.v)}`;
    return refuse(`protocol version mismatch: the client sent ${theirs}, the daemon speaks version ${PROTOCOL_VERSION}`, id);
  }
  if (id === null) return refuse('"id" must be a non-negative integer');
  if (typeof frame.cmd !== 'string' || frame.cmd === '') return refuse('missing "cmd" (a non-empty string)', id);
  if (!isPlainObject(frame.args)) return refuse('"args" must be an object', id);
  return { ok: true, request: { v: PROTOCOL_VERSION, id, cmd: frame.cmd, args: frame.args } };
}

/** Validates one reply line; used by the client, so a daemon bug shows up as a clear error. */
export function parseReply(line: string): ParsedReply {
  let frame: unknown;
  try {
    frame = JSON.parse(line);
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
    return { ok: false, message: 'not valid JSON' };
  }
  if (!isPlainObject(frame)) return { ok: false, message: 'expected a JSON object' };
  if (frame.v !== PROTOCOL_VERSION) {
    return {
      ok: false,
      message: `protocol version mismatch: the daemon sent version ${JSON.stringify(frame.v)}, this client speaks version ${PROTOCOL_VERSION}`,
    };
  }
  if (frame.ok === false) {
    const error = frame.error;
    if (!(frame.id === null || isFrameId(frame.id)) || !isPlainObject(error) || typeof error.message !== 'string') {
      return { ok: false, message: 'malformed error reply' };
    }
    const exitCode = Number.isSafeInteger(error.exitCode) ? (error.exitCode as number) : PROTOCOL_ERROR_EXIT_CODE;
    return { ok: true, reply: makeErrorReply({ id: frame.id, message: error.message, exitCode }) };
  }
  if (frame.ok !== true || !isFrameId(frame.id)) return { ok: false, message: 'expected "ok" and an integer "id"' };
  if (typeof frame.chunk === 'string') return { ok: true, reply: { v: PROTOCOL_VERSION, id: frame.id, ok: true, chunk: frame.chunk } };
  if (frame.end === true) return { ok: true, reply: { v: PROTOCOL_VERSION, id: frame.id, ok: true, end: true } };
  return { ok: true, reply: { v: PROTOCOL_VERSION, id: frame.id, ok: true, result: frame.result } };
}
