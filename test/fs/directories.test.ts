// makeDirectories: mkdir -p that always settles, also where Node's own
// recursive mkdir spins for ever (under /proc, issue 9 fault 6).
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeDirectories } from '../../src/fs/directories.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dirs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('makeDirectories', () => {
  it('makes every missing level, and is a no-op for an existing directory', async () => {
    const deep = join(dir, 'a', 'b', 'c');
    await makeDirectories(deep);
    expect((await stat(deep)).isDirectory()).toBe(true);
    await makeDirectories(deep);
  });

  it('refuses a path through a file, and a file where the directory should be', async () => {
    await writeFile(join(dir, 'f'), '');
    await expect(makeDirectories(join(dir, 'f', 'x'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(makeDirectories(join(dir, 'f'))).rejects.toMatchObject({ code: 'EEXIST' });
  });

  it('settles with an error under /proc, where fs.mkdir({ recursive: true }) never does', async () => {
    await expect(makeDirectories('/proc/1/nope/deeper')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
