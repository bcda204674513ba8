import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RotatingLog } from '../../src/supervise/log-writer.ts';

let dir: string;
const logs: RotatingLog[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'log-writer-'));
});

afterEach(async () => {
  await Promise.all(logs.splice(0).map((log) => log.close()));
  await rm(dir, { recursive: true, force: true });
});

async function openLog(opts: Partial<ConstructorParameters<typeof RotatingLog>[0]> & { maxBytes: number; keep: number }) {
  const log = new RotatingLog({ file: join(dir, 'logs', 'inst.log'), ...opts });
  logs.push(log);
  await log.open();
  return log;
}

/** The log's files oldest first: file.N … file.1, file. */
async function readLogSet(file: string): Promise<{ names: string[]; contents: Buffer[] }> {
  const base = file.split('/').at(-1)!;
  const present = await readdir(join(file, '..'));
  const rotated = present
    .filter((n) => n.startsWith(`${base}.`))
    .map((n) => Number(n.slice(base.length + 1)))
    .sort((a, b) => b - a);
  const names = [...rotated.map((i) => `${base}.${i}`), base].filter((n) => present.includes(n));
  const contents = await Promise.all(names.map((n) => readFile(join(file, '..', n))));
  return { names, contents };
}

/** Deterministic pseudo-random numbers, so failures reproduce. */
function makeRandom(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

function makeLines({ count, minLen, maxLen, seed }: { count: number; minLen: number; maxLen: number; seed: number }): string[] {
  const random = makeRandom(seed);
  return Array.from({ length: count }, (_, i) => {
    const head = `line ${i} `;
    const len = minLen + Math.floor(random() * (maxLen - minLen + 1));
    return `${head}${'abcdefghij'.repeat(30).slice(0, Math.max(0, len - head.length - 1))}\n`;
  });
}

describe('RotatingLog rotation', () => {
  it('keeps every byte in order across many rotations and never splits a line', async () => {
    const maxBytes = 4000;
    const lines = makeLines({ count: 2000, minLen: 20, maxLen: 180, seed: 7 });
    const input = lines.join('');
    // keep is large enough to hold everything (each rotation renames every kept file, so not larger).
    const log = await openLog({ maxBytes, keep: 100 });
    // No awaits between writes: chunks pile up and get coalesced.
    for (const line of lines) log.write(Buffer.from(line));
    await log.flush();

    const { names, contents } = await readLogSet(log.file);
    expect(names.length).toBeGreaterThan(40);
    expect(Buffer.concat(contents).toString()).toBe(input);
    expect(log.bytesWritten).toBe(Buffer.byteLength(input));
    const lineCount = contents.map((c) => c.toString().split('\n').length - 1).reduce((a, b) => a + b);
    expect(lineCount).toBe(lines.length);
    for (const content of contents) {
      expect(content.length).toBeLessThanOrEqual(maxBytes);
      expect(content.at(-1)).toBe(0x0a);
    }
    // Cutting at the last fitting line end wastes less than one line per file.
    for (const content of contents.slice(0, -1)) expect(content.length).toBeGreaterThan(maxBytes - 180);
  });

  it('keeps only `keep` rotated files, holding exactly a line-aligned suffix of the input', async () => {
    const lines = makeLines({ count: 3000, minLen: 10, maxLen: 120, seed: 11 });
    const input = lines.join('');
    const log = await openLog({ maxBytes: 2000, keep: 3 });
    for (const line of lines) log.write(Buffer.from(line));
    await log.flush();

    const { names, contents } = await readLogSet(log.file);
    expect(names).toEqual(['inst.log.3', 'inst.log.2', 'inst.log.1', 'inst.log']);
    const kept = Buffer.concat(contents).toString();
    expect(input.endsWith(kept)).toBe(true);
    expect(input.length - kept.length === 0 || input[input.length - kept.length - 1] === '\n').toBe(true);
    expect(kept.length).toBeGreaterThan(3 * 1500);
  });

  it('is byte-exact when chunks split lines at random places', async () => {
    const lines = makeLines({ count: 1500, minLen: 5, maxLen: 300, seed: 3 });
    const input = Buffer.from(lines.join(''));
    const random = makeRandom(5);
    const log = await openLog({ maxBytes: 3001, keep: 100 });
    let written = 0;
    for (let offset = 0; offset < input.length; ) {
      const size = 1 + Math.floor(random() * 400);
      log.write(input.subarray(offset, offset + size));
      offset += size;
      // Sometimes let the writer catch up, so batches differ in size.
      if (random() < 0.1) await log.flush();
      written++;
    }
    await log.flush();
    const { contents } = await readLogSet(log.file);
    expect(written).toBeGreaterThan(100);
    expect(Buffer.concat(contents).equals(input)).toBe(true);
    expect(contents.length).toBeGreaterThan(40);
    for (const content of contents) expect(content.length).toBeLessThanOrEqual(3001);
  });

  it('cuts a line longer than maxBytes at the size limit', async () => {
    const log = await openLog({ maxBytes: 100, keep: 10 });
    const long = `${'x'.repeat(250)}\n`;
    log.write(Buffer.from('short\n'));
    log.write(Buffer.from(long));
    log.write(Buffer.from('after\n'));
    await log.flush();
    const { contents } = await readLogSet(log.file);
    expect(contents.map((c) => c.toString())).toEqual([
      'short\n',
      'x'.repeat(100),
      'x'.repeat(100),
      `${'x'.repeat(50)}\nafter\n`,
    ]);
  });

  it('with keep 0 truncates instead of keeping rotated files', async () => {
    const log = await openLog({ maxBytes: 10, keep: 0 });
    for (let i = 0; i < 20; i++) log.write(Buffer.from(`${i}abcdef\n`));
    await log.flush();
    const { names, contents } = await readLogSet(log.file);
    expect(names).toEqual(['inst.log']);
    expect(contents[0].toString()).toBe('19abcdef\n');
  });

  it('continues an existing file and rotates it when full', async () => {
    const file = join(dir, 'inst.log');
    await writeFile(file, 'old line one\nold partial');
    const log = new RotatingLog({ file, maxBytes: 30, keep: 2 });
    logs.push(log);
    await log.open();
    log.write(Buffer.from('-continued\nnew\n'));
    await log.flush();
    const { contents } = await readLogSet(file);
    // The file ended mid-line, so the writer filled it to the limit before rotating.
    expect(Buffer.concat(contents).toString()).toBe('old line one\nold partial-continued\nnew\n');
    expect(contents[0].length).toBe(30);
  });
});

describe('RotatingLog tail and records', () => {
  it('returns the last n lines, the last one possibly partial', async () => {
    const log = await openLog({ maxBytes: 1_000_000, keep: 1 });
    log.write(Buffer.from('one\ntwo\r\nthr'));
    log.write(Buffer.from('ee\nfour\nfiv'));
    expect(log.tail(2)).toEqual(['four', 'fiv']);
    expect(log.tail(10)).toEqual(['one', 'two', 'three', 'four', 'fiv']);
    expect(log.tail(0)).toEqual([]);
  });

  it('keeps only the last tailBytes, without a broken character at the front', async () => {
    const log = await openLog({ maxBytes: 1_000_000, keep: 1, tailBytes: 16 });
    log.write(Buffer.from('a long first line that falls off\n'));
    log.write(Buffer.from('ééé\nend\n'));
    // 'ééé\nend\n' is 11 bytes; the other 5 are ' off\n' from the first line.
    expect(log.tail(5)).toEqual([' off', 'ééé', 'end']);
    log.write(Buffer.from(`${'z'.repeat(40)}\nlast`));
    expect(log.tail(5)).toEqual(['z'.repeat(11), 'last']);
    log.write(Buffer.from('€'.repeat(10)));
    // 30 bytes in, the last 16 start one byte into a 3-byte character: that character is dropped.
    expect(log.tail(1)).toEqual(['€'.repeat(5)]);
  });

  it('appendRecord puts supervisor lines on their own line and does not touch lastWriteAt', async () => {
    let t = 1000;
    const log = await openLog({ maxBytes: 1_000_000, keep: 1, now: () => t });
    expect(log.lastWriteAt).toBeNull();
    log.write(Buffer.from('loading model'));
    t = 2000;
    log.appendRecord('[supervisor] exited with code 1');
    log.appendRecord('[supervisor] restarting in 1000 ms\n');
    expect(log.lastWriteAt).toBe(1000);
    await log.flush();
    expect(await readFile(log.file, 'utf8')).toBe(
      'loading model\n[supervisor] exited with code 1\n[supervisor] restarting in 1000 ms\n',
    );
    expect(log.tail(1)).toEqual(['[supervisor] restarting in 1000 ms']);
  });
});

/** What tail(n) must say after `input` went in: its last tailBytes, lines as tail() splits them. */
function expectedTail(input: Buffer, tailBytes: number, n: number): string[] {
  let kept = input.subarray(Math.max(0, input.length - tailBytes));
  if (input.length > tailBytes) {
    let skip = 0;
    while (skip < kept.length && skip < 3 && (kept[skip] & 0xc0) === 0x80) skip++;
    kept = kept.subarray(skip);
  }
  const lines = kept.toString('utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines.slice(-n).map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
}

describe('RotatingLog tail across batches', () => {
  it('matches the last tailBytes of the input whether chunks are queued, being written or written', async () => {
    const tailBytes = 100;
    const log = await openLog({ maxBytes: 700, keep: 80, tailBytes });
    const random = makeRandom(17);
    const parts: Buffer[] = [];
    for (let i = 0; i < 400; i++) {
      // Chunks from 1 byte to several times tailBytes, some with multi-byte characters.
      const size = random() < 0.2 ? 150 + Math.floor(random() * 300) : 1 + Math.floor(random() * 30);
      const text = Array.from({ length: size }, () => (random() < 0.1 ? '\n' : random() < 0.1 ? 'é' : 'k')).join('');
      const chunk = Buffer.from(text);
      parts.push(chunk);
      log.write(chunk);
      const input = Buffer.concat(parts);
      expect(log.tail(1000)).toEqual(expectedTail(input, tailBytes, 1000));
      if (random() < 0.05) await log.flush();
      else if (random() < 0.1) await new Promise((resolve) => setImmediate(resolve));
    }
    await log.flush();
    const input = Buffer.concat(parts);
    expect(log.tail(1000)).toEqual(expectedTail(input, tailBytes, 1000));
    expect(Buffer.concat((await readLogSet(log.file)).contents).equals(input)).toBe(true);
  });

  it('copies a batch bigger than tailBytes only in part, and holds no chunk once it is written', async () => {
    const log = await openLog({ maxBytes: 1_000_000, keep: 1, tailBytes: 9 });
    const first = Buffer.from('aaaa\nbbbb\n');
    const second = Buffer.from('cccc\ndd');
    log.write(first);
    log.write(second);
    expect(log.tail(3)).toEqual(['b', 'cccc', 'dd']);
    await log.flush();
    // The ring holds copies: changing a written chunk changes neither the tail nor the file.
    first.fill('x');
    second.fill('y');
    expect(log.tail(3)).toEqual(['b', 'cccc', 'dd']);
    expect(await readFile(log.file, 'utf8')).toBe('aaaa\nbbbb\ncccc\ndd');
  });

  it('with tailBytes 0 keeps no tail', async () => {
    const log = await openLog({ maxBytes: 1000, keep: 1, tailBytes: 0 });
    log.write(Buffer.from('one\ntwo\n'));
    expect(log.tail(5)).toEqual([]);
    await log.flush();
    expect(log.tail(5)).toEqual([]);
    expect(await readFile(log.file, 'utf8')).toBe('one\ntwo\n');
  });

  it('keeps the order in the tail when close() finds chunks still queued', async () => {
    const log = new RotatingLog({ file: join(dir, 'never-opened.log'), maxBytes: 1000, keep: 1 });
    logs.push(log);
    log.write(Buffer.from('queued one\n'));
    log.write(Buffer.from('queued two\n'));
    const closed = log.close();
    log.write(Buffer.from('after close\n'));
    expect(log.tail(3)).toEqual(['queued one', 'queued two', 'after close']);
    await closed;
    expect(log.tail(3)).toEqual(['queued one', 'queued two', 'after close']);
    expect(log.bytesDropped).toBe(log.bytesWritten);
  });

  it('keeps the order in the tail when close() comes while a batch is being written', async () => {
    const log = await openLog({ maxBytes: 1000, keep: 1 });
    log.write(Buffer.from('in flight\n'));
    log.write(Buffer.from('queued\n'));
    const closed = log.close();
    log.write(Buffer.from('after close\n'));
    expect(log.tail(3)).toEqual(['in flight', 'queued', 'after close']);
    await closed;
    expect(log.tail(3)).toEqual(['in flight', 'queued', 'after close']);
    expect(await readFile(log.file, 'utf8')).toBe('in flight\nqueued\n');
  });
});

describe('RotatingLog batches of many chunks', () => {
  it('cuts at the last fitting line end even when it lies chunks back, byte by byte', async () => {
    const lines = makeLines({ count: 150, minLen: 3, maxLen: 40, seed: 23 });
    const input = Buffer.from(lines.join(''));
    const log = new RotatingLog({ file: join(dir, 'inst.log'), maxBytes: 97, keep: 100 });
    logs.push(log);
    // One byte per chunk, all queued before open() so they form one batch: every cut search walks back across chunks.
    for (let i = 0; i < input.length; i++) log.write(input.subarray(i, i + 1));
    await log.open();
    await log.flush();
    const { contents } = await readLogSet(log.file);
    expect(Buffer.concat(contents).equals(input)).toBe(true);
    for (const content of contents) {
      expect(content.length).toBeLessThanOrEqual(97);
      expect(content.at(-1)).toBe(0x0a);
    }
    for (const content of contents.slice(0, -1)) expect(content.length).toBeGreaterThan(97 - 40);
  });

  it('cuts a line longer than maxBytes at the limit when it arrives in small chunks', async () => {
    const log = new RotatingLog({ file: join(dir, 'inst.log'), maxBytes: 100, keep: 10 });
    logs.push(log);
    const input = Buffer.from(`short\n${'x'.repeat(250)}\nafter\n`);
    // Queued before open(): one batch, the long line spread over 7-byte chunks.
    for (let i = 0; i < input.length; i += 7) log.write(input.subarray(i, i + 7));
    await log.open();
    await log.flush();
    const { contents } = await readLogSet(log.file);
    expect(contents.map((c) => c.toString())).toEqual(['short\n', 'x'.repeat(100), 'x'.repeat(100), `${'x'.repeat(50)}\nafter\n`]);
  });

  it('writes a batch of more chunks than one writev takes (IOV_MAX) in order', async () => {
    const log = new RotatingLog({ file: join(dir, 'inst.log'), maxBytes: 1_000_000, keep: 1 });
    logs.push(log);
    const chunks = Array.from({ length: 5000 }, (_, i) => Buffer.from(`${i}\n`));
    for (const chunk of chunks) log.write(chunk);
    await log.open();
    await log.flush();
    expect((await readFile(log.file)).equals(Buffer.concat(chunks))).toBe(true);
  });
});

describe('RotatingLog backpressure, errors and closing', () => {
  it('returns false above the high-water mark and emits drain once written', async () => {
    const log = await openLog({ maxBytes: 1_000_000, keep: 1, highWaterBytes: 1000 });
    expect(log.write(Buffer.alloc(400, 'a'))).toBe(true);
    const drained = new Promise<void>((resolve) => log.once('drain', resolve));
    expect(log.write(Buffer.alloc(700, 'b'))).toBe(false);
    expect(log.write(Buffer.alloc(10, 'c'))).toBe(false);
    await drained;
    expect(log.write(Buffer.from('\n'))).toBe(true);
    await log.flush();
    expect((await stat(log.file)).size).toBe(1111);
  });

  it('queues writes made before open() and writes them once open', async () => {
    const log = new RotatingLog({ file: join(dir, 'deep', 'er', 'x.log'), maxBytes: 100, keep: 1 });
    logs.push(log);
    log.write(Buffer.from('early\n'));
    await log.open();
    log.write(Buffer.from('late\n'));
    await log.flush();
    expect(await readFile(log.file, 'utf8')).toBe('early\nlate\n');
  });

  it('on a full disk emits one error per errno, never throws, and keeps the tail', async () => {
    // /dev/full fails every write with ENOSPC. maxBytes is far away, so it is never rotated.
    const log = new RotatingLog({ file: '/dev/full', maxBytes: 2 ** 40, keep: 1 });
    logs.push(log);
    const errors: NodeJS.ErrnoException[] = [];
    log.on('error', (err) => errors.push(err));
    await log.open();
    for (let i = 0; i < 50; i++) {
      log.write(Buffer.from(`line ${i}\n`));
      if (i % 10 === 0) await log.flush();
    }
    await log.flush();
    expect(errors.map((e) => e.code)).toEqual(['ENOSPC']);
    expect(log.tail(2)).toEqual(['line 48', 'line 49']);
    expect(log.bytesDropped).toBe(log.bytesWritten);
  });

  it('survives fs errors with no error listener', async () => {
    const log = new RotatingLog({ file: '/dev/full', maxBytes: 2 ** 40, keep: 1 });
    logs.push(log);
    await log.open();
    log.write(Buffer.from('lost\n'));
    await log.flush();
    expect(log.tail(1)).toEqual(['lost']);
  });

  it('rejects open() when the directory cannot be made, and later writes stay quiet', async () => {
    const blocker = join(dir, 'not-a-dir');
    await writeFile(blocker, 'x');
    const log = new RotatingLog({ file: join(blocker, 'inst.log'), maxBytes: 100, keep: 1 });
    logs.push(log);
    const errors: unknown[] = [];
    log.on('error', (err) => errors.push(err));
    // mkdir -p over a regular file fails with EEXIST (open alone would say ENOTDIR).
    await expect(log.open()).rejects.toMatchObject({ code: 'EEXIST' });
    expect(log.write(Buffer.from('still here\n'))).toBe(true);
    await log.flush();
    expect(errors).toEqual([]); // EEXIST was already reported by open()
    expect(log.tail(1)).toEqual(['still here']);
    expect(log.bytesDropped).toBe(11);
  });

  it('close() flushes, and later writes reach only the tail', async () => {
    const log = await openLog({ maxBytes: 1000, keep: 1 });
    log.write(Buffer.from('before close\n'));
    await Promise.all([log.close(), log.close()]);
    log.write(Buffer.from('after close\n'));
    expect(await readFile(log.file, 'utf8')).toBe('before close\n');
    expect(log.tail(1)).toEqual(['after close']);
    expect(log.bytesDropped).toBe(12);
  });

  it('validates its options', () => {
    expect(() => new RotatingLog({ file: 'x', maxBytes: 0, keep: 1 })).toThrow(
      /maxBytes must be an integer >= 1, received 0/,
    );
    expect(() => new RotatingLog({ file: 'x', maxBytes: 10, keep: -1 })).toThrow(/keep must be an integer >= 0/);
    expect(() => new RotatingLog({ file: 'x', maxBytes: 10, keep: 1.5 })).toThrow(/keep/);
  });
});

describe('RotatingLog throughput', () => {
  it('writes 32 MiB of small chunks through rotations in reasonable time', async () => {
    const maxBytes = 4 * 1024 * 1024;
    const log = await openLog({ maxBytes, keep: 3 });
    const line = Buffer.from(`${'0123456789'.repeat(12)}\n`);
    const chunk = Buffer.concat(Array.from({ length: 32 }, () => line)); // 3872 bytes, whole lines
    const total = 32 * 1024 * 1024;
    const started = Date.now();
    let sent = 0;
    while (sent < total) {
      if (!log.write(chunk)) await new Promise((resolve) => log.once('drain', resolve));
      sent += chunk.length;
    }
    await log.flush();
    const seconds = (Date.now() - started) / 1000;
    const { names, contents } = await readLogSet(log.file);
    expect(names).toEqual(['inst.log.3', 'inst.log.2', 'inst.log.1', 'inst.log']);
    for (const content of contents) {
      expect(content.length).toBeLessThanOrEqual(maxBytes);
      expect(content.length % line.length).toBe(0);
    }
    // Generous: a loaded 2-core machine does well over 50 MiB/s; this only catches pathologies.
    expect(seconds).toBeLessThan(30);
  });
});
