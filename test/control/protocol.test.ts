import { describe, expect, test } from 'vitest';
import {
  createFrameReader,
  createFrameSplitter,
  encodeFrame,
  MAX_FRAME_BYTES,
  parseReply,
  parseRequest,
  PROTOCOL_VERSION,
} from '../../src/control/protocol.ts';

// Feeds chunks through a splitter and returns what it saw.
function split(chunks: Buffer[], maxFrameBytes?: number): { lines: string[]; overflows: number } {
  const lines: string[] = [];
  let overflows = 0;
  const splitter = createFrameSplitter({ onFrame: (l) => lines.push(l), onOverflow: () => overflows++, maxFrameBytes });
  for (const chunk of chunks) splitter.push(chunk);
  return { lines, overflows };
}

describe('createFrameSplitter', () => {
  test('joins a frame split across chunks and splits several frames in one chunk', () => {
    const { lines } = split([Buffer.from('{"a":'), Buffer.from('1}\n{"b":2}\n{"c"'), Buffer.from(':3}\n')]);
    expect(lines).toEqual(['{"a":1}', '{"b":2}', '{"c":3}']);
  });

  test('keeps a multi-byte UTF-8 character that spans two chunks intact', () => {
    const bytes = Buffer.from('"é€😀"\n');
    const chunks = [...bytes].map((b) => Buffer.from([b])); // one byte per chunk
    expect(split(chunks).lines).toEqual(['"é€😀"']);
  });

  test('holds an unterminated tail until its newline arrives', () => {
    expect(split([Buffer.from('{"a":1}')]).lines).toEqual([]);
  });

  test('a line of exactly the limit passes; one byte more overflows once and ends the stream', () => {
    expect(split([Buffer.from(`${'x'.repeat(16)}\n`)], 16)).toEqual({ lines: ['x'.repeat(16)], overflows: 0 });
    expect(split([Buffer.from('x'.repeat(10)), Buffer.from(`${'x'.repeat(7)}\nok\n`)], 16)).toEqual({ lines: [], overflows: 1 });
    // Overflow without any newline: noticed as soon as the pending bytes pass the limit.
    expect(split([Buffer.alloc(MAX_FRAME_BYTES + 1, 0x41)])).toEqual({ lines: [], overflows: 1 });
  });
});

describe('createFrameReader', () => {
  test('hands out one line per next(), across chunks, and null until a line is complete', () => {
    const reader = createFrameReader();
    reader.push(Buffer.from('a\nb\n\nc'));
    expect([reader.next(), reader.next(), reader.next(), reader.next()]).toEqual(['a', 'b', '', null]);
    reader.push(Buffer.from('d\ne'));
    expect([reader.next(), reader.next()]).toEqual(['cd', null]);
  });

  test('discard() drops what is held and ignores later input', () => {
    const reader = createFrameReader();
    reader.push(Buffer.from('a\nb\npart'));
    expect(reader.next()).toBe('a');
    reader.discard();
    reader.push(Buffer.from('ial\nz\n'));
    expect(reader.next()).toBeNull();
    expect(reader.overflowed).toBe(false);
  });
});

describe('parseRequest', () => {
  test('accepts a well-formed request', () => {
    expect(parseRequest('{"v":1,"id":7,"cmd":"status","args":{"x":1}}')).toEqual({
      ok: true,
      request: { v: 1, id: 7, cmd: 'status', args: { x: 1 } },
    });
  });

  test.each([
    ['bad JSON', '{"v":1,', null, 'not valid JSON'],
    ['not an object', '[1,2]', null, 'expected a JSON object'],
    ['wrong version', '{"v":2,"id":3,"cmd":"status","args":{}}', 3, 'the client sent version 2, the daemon speaks version 1'],
    ['no version', '{"id":3,"cmd":"status","args":{}}', 3, 'the client sent no version, the daemon speaks version 1'],
    ['bad id', '{"v":1,"id":-1,"cmd":"status","args":{}}', null, '"id" must be a non-negative integer'],
    ['missing cmd', '{"v":1,"id":4,"args":{}}', 4, 'missing "cmd"'],
    ['empty cmd', '{"v":1,"id":4,"cmd":"","args":{}}', 4, 'missing "cmd"'],
    ['args an array', '{"v":1,"id":5,"cmd":"status","args":[]}', 5, '"args" must be an object'],
    ['args missing', '{"v":1,"id":5,"cmd":"status"}', 5, '"args" must be an object'],
  ])('refuses %s with a specific message', (_name, line, id, message) => {
    const parsed = parseRequest(line);
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.id).toBe(id);
    expect(parsed.error.message).toContain(message);
    expect(parsed.error.exitCode).toBe(1);
  });
});

describe('encodeFrame and parseReply', () => {
  test('round-trip every reply kind', () => {
    const replies = [
      { v: PROTOCOL_VERSION, id: 1, ok: true, result: { a: [1, 'é'] } },
      { v: PROTOCOL_VERSION, id: 2, ok: false, error: { message: 'no', exitCode: 2 } },
      { v: PROTOCOL_VERSION, id: null, ok: false, error: { message: 'bad frame', exitCode: 1 } },
      { v: PROTOCOL_VERSION, id: 3, ok: true, chunk: 'line\n' },
      { v: PROTOCOL_VERSION, id: 3, ok: true, end: true },
    ] as const;
    for (const reply of replies) {
      const line = encodeFrame(reply);
      expect(line.endsWith('\n')).toBe(true);
      expect(line.slice(0, -1)).not.toContain('\n'); // a chunk's own newline is escaped
      expect(parseReply(line.slice(0, -1))).toEqual({ ok: true, reply });
    }
  });

  test('refuses a reply of another version, naming both', () => {
    expect(parseReply('{"v":2,"id":1,"ok":true,"result":null}')).toEqual({
      ok: false,
      message: 'protocol version mismatch: the daemon sent version 2, this client speaks version 1',
    });
  });

  test('encodeFrame throws for values JSON cannot hold', () => {
    expect(() => encodeFrame({ v: 1, id: 1, ok: true, result: 1n })).toThrow(TypeError);
  });
});
