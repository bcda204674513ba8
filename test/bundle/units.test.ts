// Unit tests of the installer's small pure parts: tar header offsets, format
// detection, zip-bomb limits, zip entry classification, the space budget,
// progress output, verify helpers and error messages.
import { describe, expect, it } from 'vitest';
import { formatArchiveProblem, truncateUtf8 } from '../../src/bundle/archive-error.ts';
import { detectFormat, formatFromName, isTarHeader } from '../../src/bundle/detect-format.ts';
import { classifyZipEntry } from '../../src/bundle/extract-zip.ts';
import { formatBar, formatEta, formatLine, makeProgress } from '../../src/bundle/progress.ts';
import { formatBytes, SpaceBudget } from '../../src/bundle/space-budget.ts';
import { parseNumber, parsePaxSize, TarOffsets } from '../../src/bundle/tar-offsets.ts';
import { makeLibraryPath, pickVersionLine } from '../../src/bundle/verify.ts';
import { findZipBomb, MAX_ZIP_RATIO } from '../../src/bundle/zip-limits.ts';
import { gzip, makeTar, makeZip, type TarSpec } from './support/archives.ts';

describe('TarOffsets', () => {
  const specs: TarSpec[] = [
    { name: 'top/', type: '5' },
    { name: 'top/README', data: Buffer.alloc(1000, 0x61) },
    { name: `top/${'long-name-'.repeat(12)}.so`, data: Buffer.alloc(700, 0x62) },
    { name: 'top/bin/l', type: '2', linkname: 'x' },
    { name: 'top/bin/h', type: '1', linkname: 'top/README' },
    { name: 'top/p', data: Buffer.alloc(513), pax: { comment: 'pax before a file' } },
  ];
  // Where each member's own header is: after the members before it and its own pax header.
  const expected = (() => {
    let at = 0;
    return specs.map((spec) => {
      const alone = makeTar([spec], { end: false });
      const body = spec.data ? Math.ceil(spec.data.length / 512) * 512 : 0;
      const offset = at + alone.length - 512 - body;
      at += alone.length;
      return offset;
    });
  })();
  const tar = makeTar(specs);

  for (const chunk of [1, 7, 512, 1000, tar.length]) {
    it(`finds every filesystem header, fed ${chunk} byte(s) at a time`, () => {
      const walker = new TarOffsets();
      for (let i = 0; i < tar.length; i += chunk) walker.push(tar.subarray(i, i + chunk));
      const found = [];
      for (let p = walker.take(); p; p = walker.take()) found.push(p);
      expect(found.map((p) => p.offset)).toEqual(expected);
      expect(found.map((p) => p.type)).toEqual(['5', '0', '0', '2', '1', '0']);
      expect(walker.takeIgnored()).toBeUndefined();
    });
  }

  it('honours a pax size record and reports types node-tar skips', () => {
    const big = makeTar([{ name: 'f', data: Buffer.alloc(2048) }], { end: false });
    // Claim 100 bytes in the header but 2048 in a pax record: the walker must skip 2048.
    const pax = makeTar([{ name: 'g', data: Buffer.alloc(0), pax: { size: '2048' } }], { end: false }).subarray(0, 1024);
    const header = makeTar([{ name: 'f', data: Buffer.alloc(100) }]).subarray(0, 512);
    const sparse = makeTar([{ name: 'sparse', type: 'S', data: Buffer.alloc(10) }]);
    const walker = new TarOffsets();
    walker.push(Buffer.concat([pax, header, big.subarray(512), sparse]));
    expect(walker.take()?.offset).toBe(1024);
    expect(walker.take()).toBeUndefined();
    expect(walker.takeIgnored()).toMatchObject({ offset: 1024 + 512 + 2048, type: 'S', rawName: 'sparse' });
  });

  it('a name field that ends inside a character is shown without the broken character (issue 9)', () => {
    // 99 × "a" and the first byte of "é" (0xc3 0xa9): the field is full, its last character cut in two.
    const archive = makeTar([{ name: `${'a'.repeat(99)}b`, type: 'S', data: Buffer.alloc(10) }]);
    archive[99] = 0xc3;
    let sum = 8 * 0x20;
    for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += archive[i];
    archive.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    const walker = new TarOffsets();
    walker.push(archive);
    expect(walker.takeIgnored()).toMatchObject({ type: 'S', rawName: 'a'.repeat(99) });
  });

  it('parses octal and base-256 numbers and pax size records', () => {
    expect(parseNumber(Buffer.from('00000001750\0'))).toBe(1000);
    const b256 = Buffer.alloc(12);
    b256[0] = 0x80;
    b256.writeUIntBE(8 * 1024 ** 3, 6, 6);
    expect(parseNumber(b256)).toBe(8 * 1024 ** 3);
    expect(parsePaxSize('20 path=a/long/name\n16 size=123456\n')).toBe(123456);
    expect(parsePaxSize('20 path=a/long/name\n')).toBeUndefined();
  });
});

describe('detectFormat', () => {
  const tar = makeTar([{ name: 'bin/llama-server', data: Buffer.from('x') }]);
  const cases: Array<[string, Buffer, string]> = [
    ['tar', tar, 'tar'],
    ['gzip', gzip(tar), 'tar.gz'],
    ['zip', makeZip([{ name: 'a', data: Buffer.from('x') }]), 'zip'],
    ['empty zip', makeZip([]), 'zip'],
    ['empty file', Buffer.alloc(0), 'an empty file'],
    ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]), 'xz-compressed data (.tar.xz)'],
    ['bzip2', Buffer.from('BZh91AY&SY'), 'bzip2-compressed data (.tar.bz2)'],
    ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0]), 'zstd-compressed data (.tar.zst)'],
    ['7z', Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0, 4]), 'a 7-Zip archive'],
    ['rar', Buffer.from('Rar!\x1a\x07\x01\x00', 'latin1'), 'a RAR archive'],
    ['ELF', Buffer.from('\x7fELF\x02\x01\x01', 'latin1'), 'an ELF executable, not an archive'],
    ['HTML', Buffer.from('\n  <!DOCTYPE html><html><body>404</body></html>'), 'an HTML page (a failed download?)'],
    ['text', Buffer.from('hello world, this is not an archive'), 'an unknown format (first bytes 68 65 6c 6c 6f 20 77 6f)'],
  ];
  for (const [label, head, expected] of cases) {
    it(label, () => {
      const result = detectFormat(head.subarray(0, 512));
      expect(result.ok ? result.format : result.what).toBe(expected);
    });
  }

  it('a v7 tar header (no ustar magic) is recognised by its checksum; a corrupted one is not', () => {
    const v7 = Buffer.from(tar.subarray(0, 512));
    v7.fill(0, 257, 265);
    let sum = 0;
    v7.fill(0x20, 148, 156);
    for (const b of v7) sum += b;
    v7.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    expect(isTarHeader(v7)).toBe(true);
    v7[0] ^= 1;
    expect(isTarHeader(v7)).toBe(false);
  });

  it('formatFromName', () => {
    expect(['a.tar', 'a.TAR.GZ', 'a.tgz', 'a.zip', 'a.tar.xz'].map(formatFromName)).toEqual(['tar', 'tar.gz', 'tar.gz', 'zip', null]);
  });
});

describe('findZipBomb', () => {
  const entry = (name: string, compressedSize: number, uncompressedSize: number, localHeaderOffset: number) => ({ name, compressedSize, uncompressedSize, localHeaderOffset, nameLength: name.length });

  it('accepts ordinary entries, and any ratio below 1 MiB', () => {
    expect(findZipBomb([entry('a', 100, 400, 0), entry('zeros', 10, 1000_000, 200)])).toBeNull();
  });

  it(`refuses an entry expanding more than ${MAX_ZIP_RATIO} times`, () => {
    expect(findZipBomb([entry('bomb', 10_000, 2_000_000_000, 0)])).toMatchObject({ entry: 'bomb', offset: 0, reason: expect.stringMatching(/expands 200000 times .* refused as a zip bomb/) });
  });

  it('refuses many small entries that expand too much in all', () => {
    const many = Array.from({ length: 200 }, (_, i) => entry(`f${i}`, 100, 99_999, i * 200));
    expect(findZipBomb(many)?.reason).toMatch(/the entries expand 1000 times in all/);
  });

  it('refuses overlapping entries', () => {
    expect(findZipBomb([entry('a', 1000, 1000, 0), entry('b', 10, 10, 500)])).toMatchObject({ entry: 'b', reason: expect.stringMatching(/overlaps the data of entry "a"/) });
  });
});

describe('classifyZipEntry', () => {
  const unix = (mode: number, fileName = 'x') => ({ versionMadeBy: (3 << 8) | 30, externalFileAttributes: (mode << 16) >>> 0, fileName });
  it('reads the Unix mode of Unix and macOS archives', () => {
    expect(classifyZipEntry(unix(0o100755))).toEqual({ kind: 'file', mode: 0o755, unix: true });
    expect(classifyZipEntry(unix(0o040700, 'd/'))).toEqual({ kind: 'directory', mode: 0o700, unix: true });
    expect(classifyZipEntry(unix(0o120777))).toMatchObject({ kind: 'symlink' });
    expect(classifyZipEntry(unix(0o020644))).toMatchObject({ kind: 'device' });
    expect(classifyZipEntry(unix(0o060644))).toMatchObject({ kind: 'device' });
    expect(classifyZipEntry(unix(0o010644))).toMatchObject({ kind: 'fifo' });
    expect(classifyZipEntry(unix(0o140644))).toMatchObject({ kind: 'socket' });
    expect(classifyZipEntry(unix(0o000755, 'd/'))).toMatchObject({ kind: 'directory', mode: 0o755 });
    expect(classifyZipEntry({ ...unix(0o100644), versionMadeBy: (19 << 8) | 30 })).toMatchObject({ kind: 'file', unix: true });
  });
  it('without Unix modes (MS-DOS host), files are 0644 and directories 0755', () => {
    expect(classifyZipEntry({ versionMadeBy: 20, externalFileAttributes: 0x20, fileName: 'bin/llama-server' })).toEqual({ kind: 'file', mode: 0o644, unix: false });
    expect(classifyZipEntry({ versionMadeBy: 20, externalFileAttributes: 0x10, fileName: 'bin' })).toEqual({ kind: 'directory', mode: 0o755, unix: false });
  });
});

describe('SpaceBudget and formatBytes', () => {
  it('refuses the entry that goes over, and keeps counting without it', () => {
    const budget = new SpaceBudget({ free: 1000, where: '/soft/app/llama-cpp.d' });
    expect(budget.take(600)).toBeNull();
    expect(budget.take(500)).toBe('the archive expands to more than 1.1 KiB but only 1000 bytes is free on /soft/app/llama-cpp.d');
    expect(budget.take(400)).toBeNull();
    expect(budget.used).toBe(1000);
  });
  it('formats sizes', () => {
    expect([0, 1023, 1024, 5 * 1024 ** 2 + 1, 3 * 1024 ** 3].map(formatBytes)).toEqual(['0 bytes', '1023 bytes', '1.0 KiB', '5.0 MiB', '3.0 GiB']);
  });
});

describe('progress', () => {
  it('formats the bar and the plain line', () => {
    const state = { label: 'extracting', done: 120 * 1024 ** 2, total: 480 * 1024 ** 2, elapsedMs: 3000 };
    expect(formatBar({ ...state, width: 8 })).toBe('extracting [##......] 120.0 MiB / 480.0 MiB  40.0 MiB/s  0:09 left');
    expect(formatLine(state)).toBe('extracting: 120.0 MiB of 480.0 MiB (25%), 40.0 MiB/s, about 9 s left');
    expect(formatEta(NaN)).toBe('-:--');
    expect(formatEta(125)).toBe('2:05');
  });

  it('off a TTY: one line per interval, none for a step that finishes sooner', () => {
    let now = 0;
    const out: string[] = [];
    const progress = makeProgress({ write: (t) => out.push(t), tty: false, now: () => now, lineIntervalMs: 5000 });
    const quick = progress.start('hashing', 100);
    now = 1000;
    quick.update(100);
    quick.finish();
    expect(out).toEqual([]);
    const slow = progress.start('extracting', 1000);
    for (let i = 1; i <= 12; i++) {
      now += 1000;
      slow.update(i * 80);
    }
    slow.finish();
    expect(out).toEqual(['install-pkg: extracting: 400 bytes of 1000 bytes (40%), 80 bytes/s, about 8 s left\n', 'install-pkg: extracting: 800 bytes of 1000 bytes (80%), 80 bytes/s, about 3 s left\n']);
  });

  it('on a TTY: redraws in place and ends the line', () => {
    let now = 0;
    const out: string[] = [];
    const task = makeProgress({ write: (t) => out.push(t), tty: true, now: () => now, barWidth: 4 }).start('copying', 1024);
    now = 50;
    task.update(100);
    now = 200;
    task.update(512);
    task.finish();
    expect(out).toEqual([
      '\rcopying [##..] 512 bytes / 1.0 KiB  2.5 KiB/s  0:00 left\x1b[K',
      '\rcopying [####] 1.0 KiB / 1.0 KiB  5.0 KiB/s  0:00 left\x1b[K',
      '\n',
    ]);
  });
});

describe('verify helpers', () => {
  it('LD_LIBRARY_PATH: the package bin first, inherited entries kept unless they point into an install', () => {
    expect(makeLibraryPath({ binDir: '/s/stage/bin', inherited: '/usr/local/nvidia/lib64:/soft/app/llama-cpp/bin::/soft/app/llama-cpp.d/abc/bin:/opt/x', excludeDirs: ['/soft/app/llama-cpp', '/soft/app/llama-cpp.d'] })).toBe(
      '/s/stage/bin:/usr/local/nvidia/lib64:/opt/x',
    );
    expect(makeLibraryPath({ binDir: '/b', inherited: undefined, excludeDirs: [] })).toBe('/b');
  });
  it('picks the version line', () => {
    expect(pickVersionLine('ggml_cuda_init: found 1 CUDA devices\nversion: 4000 (abc)\nbuilt with gcc\n')).toBe('version: 4000 (abc)');
    expect(pickVersionLine('llama-server Version 1.2\n')).toBe('llama-server Version 1.2');
    expect(pickVersionLine('\n b1234\n')).toBe('b1234');
  });
});

describe('formatArchiveProblem', () => {
  it('says what and where, leaving out what is unknown', () => {
    expect(formatArchiveProblem({ archive: 'a.tar', problem: 'absolute path', entry: '/etc/x', offset: 1536 })).toBe('a.tar: entry "/etc/x" (header at offset 1536): absolute path');
    expect(formatArchiveProblem({ archive: 'a.tgz', problem: 'corrupt', offset: 99, offsetKind: 'compressed byte' })).toBe('a.tgz: at compressed byte offset 99: corrupt');
    expect(formatArchiveProblem({ archive: 'a.zip', problem: 'bad layout' })).toBe('a.zip: bad layout');
  });

  it('cuts a long entry name between characters and gives its length (issue 9)', () => {
    const name = `bin/${'é'.repeat(150)}`; // 304 bytes
    expect(formatArchiveProblem({ archive: 'a.tar', problem: 'too long', entry: name, offset: 0 })).toBe(`a.tar: entry "bin/${'é'.repeat(62)}…" (304 bytes, header at offset 0): too long`);
    expect(formatArchiveProblem({ archive: 'a.zip', problem: 'too long', entry: name })).toBe(`a.zip: entry "bin/${'é'.repeat(62)}…" (304 bytes): too long`);
  });
});

describe('truncateUtf8', () => {
  it('keeps whole characters only: 1-, 2-, 3- and 4-byte ones, and surrogate pairs', () => {
    expect(truncateUtf8('abc', 3)).toBe('abc');
    expect(truncateUtf8('abcd', 3)).toBe('abc…');
    expect(truncateUtf8('éééé', 5)).toBe('éé…'); // 5 bytes: two whole "é", not half a third one
    expect(truncateUtf8('€€', 5)).toBe('€…');
    expect(truncateUtf8('a😀b', 4)).toBe('a…'); // the emoji is 4 bytes: kept whole or not at all
    expect(truncateUtf8('a😀b', 5)).toBe('a😀…');
    for (let max = 0; max < 12; max++) expect(truncateUtf8('é😀€aé😀', max)).not.toMatch(/\uFFFD|[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });
});
