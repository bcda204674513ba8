// The pure entry checks, case by case: names, types, parents, duplicates,
// symlink targets (escapes through other links, loops, ordering tricks),
// hardlinks, and the final check against a nested package root.
import { describe, expect, it } from 'vitest';
import { EntryTree, isWithin, MAX_LINK_HOPS, MAX_PATH_DEPTH, normalizeEntryPath, type EntryHeader, type EntryKind } from '../../src/bundle/entry-policy.ts';

describe('normalizeEntryPath', () => {
  const cases: Array<[string, string | RegExp]> = [
    ['bin/llama-server', 'bin/llama-server'],
    ['./bin/./llama-server', 'bin/llama-server'],
    ['bin//lib/', 'bin/lib'],
    ['.', ''],
    ['./', ''],
    ['//', /absolute path/],
    ['...', '...'],
    ['..a/b..', '..a/b..'],
    ['é/ü.so', 'é/ü.so'],
    ['', /empty name/],
    // Linux limits are bytes, not characters: "é" is 2 bytes, "😀" 4.
    ['a'.repeat(4097), /^name is 4097 bytes, longer than the 4096 a path may have \(PATH_MAX\)$/],
    [Array(21).fill('é'.repeat(100)).join('/'), /^name is 4220 bytes, longer than the 4096 a path may have \(PATH_MAX\)$/],
    [Array(17).fill('a'.repeat(240)).join('/'), Array(17).fill('a'.repeat(240)).join('/')],
    [`bin/${'a'.repeat(255)}`, `bin/${'a'.repeat(255)}`],
    [`bin/${'a'.repeat(256)}`, /^a path component is 256 bytes, longer than the 255 a file name may have \(NAME_MAX\)$/],
    [`bin/${'é'.repeat(127)}`, `bin/${'é'.repeat(127)}`],
    [`${'é'.repeat(128)}/x`, /^a path component is 256 bytes, longer than the 255/],
    [`lib/${'😀'.repeat(64)}.so`, /^a path component is 259 bytes, longer than the 255/],
    ['bin/a\0b', /NUL byte/],
    ['bin\\llama-server', /backslash/],
    ['/etc/passwd', /^absolute path$/],
    ['C:/Windows', /drive letter/],
    ['c:x', /drive letter/],
    ['..', /"\.\." component/],
    ['../outside', /"\.\." component/],
    ['bin/../../outside', /"\.\." component/],
    ['bin/..', /"\.\." component/],
    [Array(MAX_PATH_DEPTH).fill('d').join('/'), Array(MAX_PATH_DEPTH).fill('d').join('/')],
    [Array(MAX_PATH_DEPTH + 1).fill('d').join('/'), /deeper than 64 levels/],
  ];
  for (const [name, expected] of cases) {
    it(`${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name)} → ${expected}`, () => {
      const result = normalizeEntryPath(name);
      if (typeof expected === 'string') expect(result).toEqual({ ok: true, path: expected });
      else {
        expect(result.ok).toBe(false);
        expect(!result.ok && result.reason).toMatch(expected);
      }
    });
  }
});

const file = (name: string): EntryHeader => ({ name, kind: 'file' });
const dir = (name: string): EntryHeader => ({ name, kind: 'directory' });
const symlink = (name: string, target: string): EntryHeader => ({ name, kind: 'symlink', linkTarget: target });
const hardlink = (name: string, target: string): EntryHeader => ({ name, kind: 'hardlink', linkTarget: target });

/** Adds all but the last entry (each must pass), then returns the verdict on the last. */
function lastVerdict(...headers: EntryHeader[]) {
  const tree = new EntryTree();
  for (const h of headers.slice(0, -1)) expect(tree.add(h), h.name).toMatchObject({ ok: true });
  return tree.add(headers[headers.length - 1]);
}

function expectRefused(reason: RegExp, ...headers: EntryHeader[]): void {
  const verdict = lastVerdict(...headers);
  expect(verdict.ok).toBe(false);
  expect(!verdict.ok && verdict.reason).toMatch(reason);
}

describe('EntryTree.add: types', () => {
  const refused: Array<[EntryKind, string | undefined, RegExp]> = [
    ['device', 'CharacterDevice', /^device node \(CharacterDevice\) entries are not allowed/],
    ['device', 'BlockDevice', /^device node \(BlockDevice\) entries are not allowed/],
    ['fifo', 'FIFO', /^FIFO \(FIFO\) entries are not allowed/],
    ['socket', undefined, /^socket entries are not allowed/],
    ['unsupported', 'SparseFile', /unsupported entry type SparseFile/],
  ];
  for (const [kind, typeName, reason] of refused) {
    it(`${kind} ${typeName ?? ''} is refused`, () => expectRefused(reason, { name: 'bin/x', kind, typeName }));
  }

  it('the root directory entry is skipped; anything else at the root is refused', () => {
    expect(lastVerdict(dir('./'))).toEqual({ ok: true, path: '', skip: true });
    expectRefused(/a regular file in place of the archive root/, file('.'));
    expectRefused(/a symlink in place of the archive root/, symlink('./', 'x'));
  });

  it('files, directories, symlinks and hardlinks are accepted with their normalized path', () => {
    expect(lastVerdict(file('./bin/llama-server'))).toEqual({ ok: true, path: 'bin/llama-server' });
    expect(lastVerdict(dir('bin/'))).toEqual({ ok: true, path: 'bin' });
    expect(lastVerdict(symlink('bin/libggml.so', 'libggml.so.0'))).toEqual({ ok: true, path: 'bin/libggml.so' });
    expect(lastVerdict(file('bin/a'), hardlink('bin/b', 'bin/a'))).toEqual({ ok: true, path: 'bin/b' });
  });
});

describe('EntryTree.add: parents and duplicates', () => {
  it('a directory seen twice is a repeat, not an error', () => {
    expect(lastVerdict(dir('bin'), dir('bin/'))).toEqual({ ok: true, path: 'bin', repeat: true });
    expect(lastVerdict(file('bin/x'), dir('bin'))).toEqual({ ok: true, path: 'bin', repeat: true });
  });

  const duplicates: Array<[string, EntryHeader, EntryHeader, RegExp]> = [
    ['file twice', file('bin/x'), file('bin/x'), /duplicate entry: bin\/x was already extracted as a regular file/],
    ['file over a directory', dir('bin'), file('bin'), /already extracted as a directory/],
    ['directory over a file', file('bin'), dir('bin'), /already extracted as a regular file/],
    ['file over a symlink', symlink('bin/x', 'y'), file('bin/x'), /already extracted as a symlink/],
    ['symlink over a file', file('bin/x'), symlink('bin/x', 'y'), /already extracted as a regular file/],
    ['file over an implicit parent', file('lib/x'), file('lib'), /already extracted as a directory/],
    ['hardlink over a file', file('a'), hardlink('a', 'a'), /duplicate entry/],
  ];
  for (const [label, first, second, reason] of duplicates) it(label, () => expectRefused(reason, first, second));

  it('nothing is written through a symlink, however deep', () => {
    expectRefused(/would be written through the symlink lib \(-> "bin"\)/, dir('bin'), symlink('lib', 'bin'), file('lib/x'));
    expectRefused(/would be written through the symlink a\/l/, symlink('a/l', '.'), file('a/l/b/c'));
    expectRefused(/would be written through the symlink l/, symlink('l', 'd'), dir('l/sub'));
    expectRefused(/would be written through the symlink l/, symlink('l', 'd'), symlink('l/x', 'y'));
    expectRefused(/would be written through the symlink l/, file('f'), symlink('l', 'd'), hardlink('l/h', 'f'));
  });

  it('nothing is written under a file', () => {
    expectRefused(/its parent bin\/llama-server is a file/, file('bin/llama-server'), file('bin/llama-server/x'));
  });
});

describe('EntryTree.add: symlink targets', () => {
  it('relative targets inside the archive are fine, chains included', () => {
    expect(lastVerdict(file('bin/libggml.so.0.23.0'), symlink('bin/libggml.so.0', 'libggml.so.0.23.0'), symlink('bin/libggml.so', 'libggml.so.0')).ok).toBe(true);
    expect(lastVerdict(symlink('bin/x', '../lib/y')).ok).toBe(true);
    expect(lastVerdict(symlink('bin/x', './y')).ok).toBe(true);
    expect(lastVerdict(symlink('a/b/c', '../../d')).ok).toBe(true);
    expect(lastVerdict(symlink('d', '.'), symlink('e', 'd/d/d/x')).ok).toBe(true);
  });

  const refused: Array<[string, EntryHeader[], RegExp]> = [
    ['no target', [symlink('x', '')], /symlink without a target/],
    ['NUL in the target', [symlink('x', 'a\0b')], /NUL byte/],
    ['a target longer than PATH_MAX', [symlink('x', 'd/'.repeat(2049))], /^symlink target is 4098 bytes, longer than the 4096 a path may have \(PATH_MAX\)$/],
    ['absolute target', [symlink('bin/x', '/etc/passwd')], /symlink target "\/etc\/passwd" is an absolute path/],
    ['".." from the root', [symlink('x', '../outside')], /resolves outside the archive/],
    ['".." from a subdirectory', [symlink('bin/x', '../../outside')], /resolves outside the archive/],
    ['down then up past the root', [symlink('bin/x', 'a/b/../../../../x')], /resolves outside the archive/],
    ['through a link to the root', [symlink('d', '.'), symlink('e', 'd/../x')], /symlink target "d\/\.\.\/x" resolves outside the archive/],
    ['through a link that climbs', [symlink('bin/up', '..'), symlink('bin/x', 'up/../y')], /resolves outside the archive/],
    ['a loop through links seen before', [symlink('a', 'b'), symlink('b', 'c'), symlink('c', 'a'), symlink('d', 'a')], /symlink target "a" is a symlink loop/],
  ];
  for (const [label, headers, reason] of refused) {
    it(label, () => expectRefused(reason, ...headers));
  }

  it(`a chain longer than ${MAX_LINK_HOPS} links counts as a loop`, () => {
    const chain = Array.from({ length: MAX_LINK_HOPS + 1 }, (_, i) => symlink(`l${i}`, `l${i + 1}`));
    expectRefused(/symlink loop/, ...chain.reverse(), symlink('start', 'l0'));
  });
});

describe('EntryTree.add: hardlinks', () => {
  const refused: Array<[string, EntryHeader[], RegExp]> = [
    ['no target', [hardlink('x', '')], /hardlink without a target/],
    ['to nothing seen before', [hardlink('x', 'bin/later')], /hardlink target "bin\/later" is not an earlier entry/],
    ['to a directory', [dir('bin'), hardlink('x', 'bin')], /is a directory; a hardlink must point to a regular file/],
    ['to a symlink', [symlink('l', 'y'), hardlink('x', 'l')], /is a symlink/],
    ['to an absolute path', [hardlink('x', '/etc/shadow')], /hardlink target "\/etc\/shadow": absolute path/],
    ['out of the archive', [hardlink('x', '../outside/secret')], /hardlink target "\.\.\/outside\/secret": path contains a "\.\." component/],
    ['to an implicit directory', [file('a/b'), hardlink('x', 'a')], /is a directory/],
  ];
  for (const [label, headers, reason] of refused) it(label, () => expectRefused(reason, ...headers));
});

describe('EntryTree.checkLinks (the complete tree)', () => {
  it('catches a link that escapes only through a link added after it', () => {
    const tree = new EntryTree();
    expect(tree.add(symlink('a', 'b/../x')).ok).toBe(true);
    expect(tree.add(symlink('b', '.')).ok).toBe(true);
    const { problems } = tree.checkLinks('');
    expect(problems.map((p) => [p.link.path, p.reason])).toEqual([['a', 'symlink target "b/../x" resolves outside the package root']]);
  });

  it('catches a two-link loop (each link alone resolved while the other did not exist yet)', () => {
    const tree = new EntryTree();
    expect(tree.add(symlink('a', 'b')).ok).toBe(true);
    expect(tree.add(symlink('b', 'a')).ok).toBe(true);
    expect(tree.checkLinks('').problems.map((p) => p.reason)).toEqual(['symlink target "b" is a symlink loop', 'symlink target "a" is a symlink loop']);
  });

  it('catches a self link (a loop only once it exists)', () => {
    const tree = new EntryTree();
    expect(tree.add(symlink('bin/a', 'a')).ok).toBe(true);
    expect(tree.checkLinks('').problems[0].reason).toMatch(/symlink loop/);
  });

  it('with a nested root, a link may not leave the top folder even to come back in', () => {
    const tree = new EntryTree();
    for (const h of [dir('top/bin'), file('top/bin/y'), symlink('top/bin/x', '../../top/bin/y'), symlink('top/bin/ok', '../bin/y')]) expect(tree.add(h).ok).toBe(true);
    expect(tree.checkLinks('').problems).toEqual([]);
    const { problems } = tree.checkLinks('top');
    expect(problems.map((p) => p.link.path)).toEqual(['top/bin/x']);
    expect(problems[0].reason).toMatch(/resolves outside the package root/);
  });

  it('links outside the package root are not its business (they are not installed)', () => {
    const tree = new EntryTree();
    for (const h of [dir('top/bin'), file('other/y'), symlink('other/x', '../top')]) expect(tree.add(h).ok).toBe(true);
    expect(tree.checkLinks('top')).toEqual({ problems: [], dangling: [] });
  });

  it('lists dangling links (allowed) and keeps the entry name and offset for messages', () => {
    const tree = new EntryTree();
    tree.add({ ...symlink('./bin/libfoo.so', 'libfoo.so.1'), offset: 1536 });
    tree.add(symlink('bin/self-dir', '.'));
    const { problems, dangling } = tree.checkLinks('');
    expect(problems).toEqual([]);
    expect(dangling).toEqual([{ path: 'bin/libfoo.so', target: 'libfoo.so.1', name: './bin/libfoo.so', offset: 1536 }]);
  });
});

describe('EntryTree queries and isWithin', () => {
  it('kindOf and childrenOf see implicit parents', () => {
    const tree = new EntryTree();
    tree.add(file('top/bin/llama-server'));
    tree.add(symlink('top/bin/l', 'llama-server'));
    tree.add(file('README'));
    expect(tree.kindOf('top')).toBe('directory');
    expect(tree.kindOf('top/bin/l')).toBe('symlink');
    expect(tree.childrenOf('').sort()).toEqual(['README', 'top']);
    expect(tree.childrenOf('top/bin').sort()).toEqual(['top/bin/l', 'top/bin/llama-server']);
    expect(tree.links.map((l) => l.path)).toEqual(['top/bin/l']);
  });

  it('isWithin', () => {
    expect(isWithin('a/b', '')).toBe(true);
    expect(isWithin('top', 'top')).toBe(true);
    expect(isWithin('top/x', 'top')).toBe(true);
    expect(isWithin('topx', 'top')).toBe(false);
    expect(isWithin('', 'top')).toBe(false);
  });
});
