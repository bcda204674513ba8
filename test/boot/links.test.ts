import { chmod, lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmodTree, linkSoftDirs } from '../../src/boot/links.ts';
import { makeCollectingLog, makeTempRoot, removeTempRoot } from './boot-fixtures.ts';

let root: string;
let soft: string;
let hard: string;

beforeEach(async () => {
  root = await makeTempRoot('links');
  soft = join(root, 'soft');
  hard = join(root, 'hard');
  for (const name of ['app', 'data', 'workspace']) await mkdir(join(hard, 'image', name), { recursive: true });
  await mkdir(join(hard, 'volume'), { recursive: true });
});

afterEach(async () => {
  await removeTempRoot(root);
});

const byName = (outcomes: { name: string; state: string; message: string }[]) => Object.fromEntries(outcomes.map((o) => [o.name.replace(`${soft}/`, ''), o]));
const modeOf = async (path: string) => (await stat(path)).mode & 0o7777;

describe('linkSoftDirs', () => {
  it('links each name to its volume when one is mounted, else to the image dir', async () => {
    await mkdir(join(hard, 'volume', 'workspace'));
    const outcomes = byName(await linkSoftDirs({ softRoot: soft, hardRoot: hard }));
    expect(await readlink(join(soft, 'app'))).toBe(join(hard, 'image', 'app'));
    expect(await readlink(join(soft, 'data'))).toBe(join(hard, 'image', 'data'));
    expect(await readlink(join(soft, 'workspace'))).toBe(join(hard, 'volume', 'workspace'));
    expect(Object.values(outcomes).map((o) => o.state)).toEqual(['ok', 'ok', 'ok']);
    // Made under a temp name and renamed: nothing else is left in /soft.
    expect((await readdir(soft)).sort()).toEqual(['app', 'data', 'workspace']);
  });

  it('repairs a dangling /soft/data link (upstream left it stale)', async () => {
    await mkdir(soft);
    await symlink(join(root, 'gone'), join(soft, 'data'));
    const outcomes = byName(await linkSoftDirs({ softRoot: soft, hardRoot: hard }));
    expect(await readlink(join(soft, 'data'))).toBe(join(hard, 'image', 'data'));
    expect(outcomes['link data']).toMatchObject({ state: 'ok', message: `-> ${join(hard, 'image', 'data')} (was ${join(root, 'gone')}, dangling)` });
  });

  it('repoints a live link when a volume appears', async () => {
    await linkSoftDirs({ softRoot: soft, hardRoot: hard });
    await mkdir(join(hard, 'volume', 'data'));
    const outcomes = byName(await linkSoftDirs({ softRoot: soft, hardRoot: hard }));
    expect(await readlink(join(soft, 'data'))).toBe(join(hard, 'volume', 'data'));
    expect(outcomes['link data'].message).toBe(`-> ${join(hard, 'volume', 'data')} (was ${join(hard, 'image', 'data')})`);
    expect(outcomes['link app'].message).toBe(`already points to ${join(hard, 'image', 'app')}`);
  });

  it('leaves a real directory at /soft/app and a file at /soft/workspace alone, with a warning', async () => {
    await mkdir(join(soft, 'app'), { recursive: true });
    await writeFile(join(soft, 'app', 'precious'), 'keep me');
    await writeFile(join(soft, 'workspace'), 'a file');
    const { log, lines } = makeCollectingLog();
    const outcomes = byName(await linkSoftDirs({ softRoot: soft, hardRoot: hard, log }));
    expect(outcomes['link app']).toMatchObject({ state: 'warning', message: `${join(soft, 'app')} is a real directory, not a link; left alone, remove it to get the link to ${join(hard, 'image', 'app')}` });
    expect(outcomes['link workspace'].state).toBe('warning');
    expect(outcomes['link workspace'].message).toContain('is a real file');
    expect(await readFile(join(soft, 'app', 'precious'), 'utf8')).toBe('keep me');
    expect(await readFile(join(soft, 'workspace'), 'utf8')).toBe('a file');
    expect(outcomes['link data'].state).toBe('ok');
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.fields.path)).toEqual([join(soft, 'app'), join(soft, 'workspace')]);
  });

  it('still links when the target is missing, but warns', async () => {
    await removeTempRoot(join(hard, 'image', 'data'));
    const outcomes = byName(await linkSoftDirs({ softRoot: soft, hardRoot: hard }));
    expect(outcomes['link data']).toMatchObject({ state: 'warning', message: `-> ${join(hard, 'image', 'data')} (${join(hard, 'image', 'data')} does not exist yet)` });
    expect((await lstat(join(soft, 'data'))).isSymbolicLink()).toBe(true);
  });

  it('does not chmod volumes unless SUPERVISOR_CHMOD_VOLUMES asks', async () => {
    await mkdir(join(hard, 'volume', 'data'), { mode: 0o750 });
    await chmod(join(hard, 'volume', 'data'), 0o750);
    const outcomes = await linkSoftDirs({ softRoot: soft, hardRoot: hard });
    expect(await modeOf(join(hard, 'volume', 'data'))).toBe(0o750);
    expect(outcomes.map((o) => o.name).filter((n) => n.startsWith('chmod'))).toEqual([]);
  });

  it('chmods a volume tree to 777 when asked, without following symlinks out of it', async () => {
    const volume = join(hard, 'volume', 'data');
    await mkdir(join(volume, 'sub'), { recursive: true });
    await writeFile(join(volume, 'sub', 'file'), 'x', { mode: 0o600 });
    const outside = join(root, 'outside');
    await writeFile(outside, 'host file', { mode: 0o600 });
    await symlink(outside, join(volume, 'link-out'));
    await chmod(volume, 0o755);
    const outcomes = byName(await linkSoftDirs({ softRoot: soft, hardRoot: hard, chmodVolumes: true }));
    expect(outcomes[`chmod ${volume}`]).toMatchObject({ state: 'ok', message: 'chmod -R 777: 3 entries changed' });
    expect(await modeOf(volume)).toBe(0o777);
    expect(await modeOf(join(volume, 'sub', 'file'))).toBe(0o777);
    expect(await modeOf(outside)).toBe(0o600);
    // Upstream's rule: a volume already at 777 is not walked again.
    const again = byName(await linkSoftDirs({ softRoot: soft, hardRoot: hard, chmodVolumes: true }));
    expect(again[`chmod ${volume}`]).toMatchObject({ state: 'skipped', message: 'already mode 777' });
  });
});

describe('chmodTree', () => {
  it('walks a tree deeper than any sane recursion', async () => {
    let deepest = join(root, 'deep');
    for (let i = 0; i < 400; i += 1) deepest = join(deepest, 'd');
    await mkdir(deepest, { recursive: true, mode: 0o700 });
    await writeFile(join(deepest, 'leaf'), '', { mode: 0o600 });
    const result = await chmodTree({ root: join(root, 'deep'), mode: 0o777 });
    expect(result).toEqual({ changed: 402, failed: 0, errors: [] });
    expect(await modeOf(join(deepest, 'leaf'))).toBe(0o777);
  });
});
