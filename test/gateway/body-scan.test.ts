// The body scanner against JSON.parse, its reference: on thousands of
// generated and mutated bodies fed in random chunks (down to single bytes),
// it accepts exactly what JSON.parse accepts as an object and finds the same
// top-level `model` and `stream`.
import { describe, expect, it } from 'vitest';
import { BodyScanner, MAX_BODY_DEPTH, MAX_MODEL_BYTES } from '../../src/gateway/body-scan.ts';
import { mulberry32 } from '../../tools/tiny-model/tiny-model.ts';

/** Scans `text` in chunks cut at `cuts` (byte offsets); the first error, or the fields. */
function scan(body: Buffer | string, cuts: number[] = []) {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const scanner = new BodyScanner();
  let from = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    const error = scanner.push(bytes.subarray(from, cut));
    if (error) return { error };
    from = cut;
  }
  const error = scanner.end();
  return error ? { error } : { fields: scanner.fields };
}

// What JSON.parse says: the fields, or that it is not an object (null).
function reference(text: string) {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const fields = value as Record<string, unknown>;
  return { model: typeof fields.model === 'string' ? fields.model : undefined, stream: fields.stream === true };
}

const KEYS = ['"model"', '"stream"', '"messages"', '"mod\\u0065l"', '"str\\u0065am"', '"m"', '"é"', '"x\\ny"', '""', '"model "'];
const STRINGS = ['"tiny-a"', '""', '"a\\"b"', '"\\u00e9\\ud83d\\ude00"', '"héllo wörld"', '"\\\\"', '"\\/"', '"tab\\there"', '"claude-sonnet-4-6[1m]"'];
const NUMBERS = ['0', '-0', '1', '-12', '3.25', '1e5', '1E-5', '-0.5e+10', '10'];

function generate(random: () => number, depth = 0): string {
  const pick = <T,>(items: readonly T[]) => items[Math.floor(random() * items.length)];
  const r = random();
  if (depth > 3 || r < 0.35) return pick([...STRINGS, ...NUMBERS, 'true', 'false', 'null']);
  const n = Math.floor(random() * 4);
  const ws = () => pick(['', '', ' ', '\n  ', '\t', '\r\n']);
  if (r < 0.55) return `[${ws()}${Array.from({ length: n }, () => generate(random, depth + 1)).join(`,${ws()}`)}${ws()}]`;
  return `{${ws()}${Array.from({ length: n }, () => `${pick(KEYS)}${ws()}:${ws()}${generate(random, depth + 1)}`).join(`,${ws()}`)}${ws()}}`;
}

function mutate(text: string, random: () => number): string {
  const pieces = ['{', '}', '[', ']', '"', ':', ',', '\\', '-', '.', 'e', '0', '1', 'tru', 'nul', ' ', '\u0001', '\n', 'x', '\\u12', '\\q', 'é'];
  const i = Math.floor(random() * (text.length + 1));
  const op = Math.floor(random() * 3);
  if (op === 0) return text.slice(0, i) + text.slice(i + 1 + Math.floor(random() * 3));
  if (op === 1) return text.slice(0, i) + pieces[Math.floor(random() * pieces.length)] + text.slice(i);
  return text.slice(0, i);
}

describe('BodyScanner', () => {
  it('agrees with JSON.parse on 6000 generated and mutated bodies, in random chunks', () => {
    const random = mulberry32(20261202);
    let accepted = 0;
    let rejected = 0;
    for (let n = 0; n < 6000; n++) {
      let text = `{${['"model":', '"stream":', '"a":'][n % 3]}${generate(random)},"messages":${generate(random)}${n % 2 ? ',"stream":true' : ''}}`;
      if (n % 3 !== 0) text = mutate(text, random);
      if (n % 7 === 0) text = generate(random);
      const bytes = Buffer.from(text);
      const cuts = n % 5 === 0 ? Array.from({ length: bytes.length }, (_, i) => i) : Array.from({ length: 3 }, () => Math.floor(random() * bytes.length));
      const got = scan(bytes, cuts);
      const want = reference(text);
      if (want === null) {
        expect(got.error, `#${n} ${JSON.stringify(text)}`).toEqual(expect.any(String));
        rejected++;
      } else {
        expect(got, `#${n} ${JSON.stringify(text)}`).toEqual({ fields: want });
        accepted++;
      }
    }
    // Negative and positive controls: both kinds were really exercised.
    expect(accepted).toBeGreaterThan(1500);
    expect(rejected).toBeGreaterThan(1500);
  });

  it('top-level fields only; last duplicate wins; escaped keys count; non-string model is absent', () => {
    expect(scan('{"messages":[{"model":"inner","stream":true}],"model":"outer"}')).toEqual({ fields: { model: 'outer', stream: false } });
    expect(scan('{"model":"a","model":"b","stream":true,"stream":1}')).toEqual({ fields: { model: 'b', stream: false } });
    expect(scan('{"model":"a","model":5}')).toEqual({ fields: { model: undefined, stream: false } });
    expect(scan('{"mod\\u0065l":"esc\\u0061ped","\\u0073tream":true}')).toEqual({ fields: { model: 'escaped', stream: true } });
    const multibyte = Buffer.from('{"model":"qwén-😀"}');
    expect(scan(multibyte, Array.from({ length: multibyte.length }, (_, i) => i))).toEqual({ fields: { model: 'qwén-😀', stream: false } });
  });

  it('clear messages: not an object, empty, truncated, garbage, control characters, too deep, long model', () => {
    expect(scan('[1,2]')).toEqual({ error: 'request body must be a JSON object' });
    expect(scan('')).toEqual({ error: 'request body is empty (expected a JSON object)' });
    expect(scan('{"model": ')).toEqual({ error: 'request body is not valid JSON: it ends at byte 10 before the object is complete' });
    expect(scan('{"model":"a"} x')).toEqual({ error: 'request body is not valid JSON: unexpected "x" at byte 15 (expected nothing after the JSON object)' });
    expect(scan('{"a":01}')).toEqual({ error: 'request body is not valid JSON: unexpected "1" at byte 7 (expected "," or "}")' });
    expect(scan('{"a":"x\ny"}').error).toBe('request body is not valid JSON: unescaped control character (byte 0x0a) in a string at byte 8');
    expect(scan(`{"a":${'['.repeat(MAX_BODY_DEPTH)}`)).toEqual({ error: `request body is nested deeper than ${MAX_BODY_DEPTH} levels` });
    expect(scan(`{"a":${'['.repeat(MAX_BODY_DEPTH - 2)}${']'.repeat(MAX_BODY_DEPTH - 2)}}`)).toEqual({ fields: { model: undefined, stream: false } });
    expect(scan(`{"model":"${'m'.repeat(MAX_MODEL_BYTES + 1)}"}`)).toEqual({ error: `request body's "model" is longer than ${MAX_MODEL_BYTES} bytes` });
  });

  it('a 30 MB body of "[" fails within the first chunk; once failed, it stays failed', () => {
    const scanner = new BodyScanner();
    const chunk = Buffer.alloc(65536, '[');
    expect(scanner.push(chunk)).toBe('request body must be a JSON object');
    expect(scanner.push(Buffer.from('{}'))).toBe('request body must be a JSON object');
    const nested = new BodyScanner();
    expect(nested.push(Buffer.concat([Buffer.from('{"a":'), chunk]))).toBe(`request body is nested deeper than ${MAX_BODY_DEPTH} levels`);
  });
});
