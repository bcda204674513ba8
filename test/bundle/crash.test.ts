// kill -9 at any moment: the active install is never touched (the link
// switch is one rename), and the next run removes what the killed one left
// (staging, a half-copied archive, a stale lock) and installs cleanly.
import { randomBytes } from 'node:crypto';
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzip, makeTar, toTarSpecs, type PackageEntry } from './support/archives.ts';
import { listDir, makeTempRoot, realBundleEntries, realBundleVariant, runInstall, runInstalledVersion, spawnInstall, writeArchive, type TempRoot } from './support/fixtures.ts';

let tmp: TempRoot;
let versionsDir: string;
let a: string;
let many: string;
let big: string;

/** The real bundle plus many small files, so extraction lasts long enough to be interrupted. */
function withSmallFiles(tag: string, count: number): PackageEntry[] {
  const extra: PackageEntry[] = Array.from({ length: count }, (_, i) => ({ name: `share/d${i % 20}/f${i}.txt`, kind: 'file', data: Buffer.alloc(600, 0x61 + (i % 26)) }));
  return [...realBundleVariant(tag), ...extra];
}

function countFiles(dir: string): number {
  let n = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) n += entry.isDirectory() ? countFiles(join(dir, entry.name)) : 1;
  return n;
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The active install is a symlink to a complete version that runs. */
function expectActiveIntact(): string {
  const target = readlinkSync(join(tmp.root, 'llama-cpp'));
  expect(target).toMatch(/^llama-cpp\.d\/[0-9a-f]{16}$/);
  expect(statSync(join(tmp.root, 'llama-cpp', '.installed-from.json')).isFile()).toBe(true);
  expect(runInstalledVersion(tmp.root).code).toBe(0);
  return target;
}

/** Nothing left over: no staging or trash dir, no partial archive, no lock, no temp link. */
function expectClean(): void {
  expect(listDir(versionsDir).filter((n) => n.startsWith('.'))).toEqual([]);
  expect(listDir(join(tmp.root, 'cache')).filter((n) => n.startsWith('.'))).toEqual([]);
  expect(listDir(tmp.root).filter((n) => n.startsWith('.'))).toEqual([]);
}

beforeAll(() => {
  tmp = makeTempRoot('crash');
  versionsDir = join(tmp.root, 'llama-cpp.d');
  a = writeArchive(tmp.archives, 'a.tar.gz', gzip(makeTar(toTarSpecs(realBundleEntries()))));
  many = writeArchive(tmp.archives, 'many.tar.gz', gzip(makeTar(toTarSpecs(withSmallFiles('many', 2000)))));
  const blob: PackageEntry = { name: 'share/blob.bin', kind: 'file', data: randomBytes(48 * 1024 * 1024) };
  big = writeArchive(tmp.archives, 'big.tar', makeTar(toTarSpecs([...realBundleVariant('big'), blob])));
  expect(runInstall(tmp.root, [a]).code).toBe(0);
});

afterAll(() => tmp?.remove());

describe('kill -9', () => {
  it('in the middle of extraction: the active install is untouched; a rerun cleans up and installs', async () => {
    const before = expectActiveIntact();
    const { child, done } = spawnInstall(tmp.root, [many]);
    await waitFor(() => {
      const staging = listDir(versionsDir).find((n) => n.startsWith('.staging-'));
      return staging !== undefined && countFiles(join(versionsDir, staging)) > 100;
    }, 'extraction to be under way');
    child.kill('SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    expect(listDir(versionsDir).some((n) => n.startsWith('.staging-'))).toBe(true);
    expect(listDir(versionsDir)).toContain('.lock');
    expect(expectActiveIntact()).toBe(before);

    const rerun = runInstall(tmp.root, [many]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stderr).toMatch(/removed \d+ leftover\(s\) of an interrupted install/);
    expect(expectActiveIntact()).not.toBe(before);
    expectClean();
  });

  it('while the archive is copied into the cache: no partial copy is ever taken for a good one', async () => {
    const before = expectActiveIntact();
    const { child, done } = spawnInstall(tmp.root, [big]);
    await waitFor(() => listDir(join(tmp.root, 'cache')).some((n) => n.startsWith('.partial-')), 'the cache copy to start');
    child.kill('SIGKILL');
    await done;
    expect(expectActiveIntact()).toBe(before);
    expect(listDir(join(tmp.root, 'cache')).filter((n) => !n.startsWith('.')).every((n) => !n.endsWith('.tar'))).toBe(true);
    const rerun = runInstall(tmp.root, [big]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expectClean();
  });

  it('Ctrl-C (SIGINT) mid-extraction stops cleanly: exit 1, staging and the cache copy removed, lock released', async () => {
    const before = expectActiveIntact();
    const cacheBefore = listDir(join(tmp.root, 'cache'));
    const { child, done } = spawnInstall(tmp.root, [many, '--force']);
    await waitFor(() => {
      const staging = listDir(versionsDir).find((n) => n.startsWith('.staging-'));
      return staging !== undefined && countFiles(join(versionsDir, staging)) > 100;
    }, 'extraction to be under way');
    child.kill('SIGINT');
    const result = await done;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/supervisor: interrupted; the active install is unchanged/);
    expect(expectActiveIntact()).toBe(before);
    expect(listDir(join(tmp.root, 'cache'))).toEqual(cacheBefore);
    expectClean();
  });

  it('at arbitrary moments: the active install is always complete, and the next run always ends clean', async () => {
    const archives = [a, many];
    for (const [i, delayMs] of [40, 120, 200, 300, 450, 650, 900].entries()) {
      const { child, done } = spawnInstall(tmp.root, [archives[i % 2]]);
      await new Promise((r) => setTimeout(r, delayMs));
      child.kill('SIGKILL');
      await done;
      expectActiveIntact();
    }
    const rerun = runInstall(tmp.root, [a]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expectActiveIntact();
    expectClean();
  });
});
