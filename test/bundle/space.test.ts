// Out of space, on a small tmpfs: an archive that expands beyond the free
// space is refused before anything is written (exit 2); one that runs the disk
// full anyway (thousands of tiny files, a page each) fails with ENOSPC
// (exit 1). Either way the previous install is intact, and no staging
// directory or cache copy is left.
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzip, makeTar, toTarSpecs, type TarSpec } from './support/archives.ts';
import { listDir, makeTempRoot, realBundleEntries, runInstall, runInstalledVersion, snapshotTree, writeArchive, type TempRoot } from './support/fixtures.ts';

/** The tmpfs: the real bundle (18 MB) and its cached archive (6 MB) leave about 7 MB free. */
const TMPFS_SIZE = '32m';

let tmp: TempRoot;
let mountPoint: string;
let root: string;

// Mounting needs root (CAP_SYS_ADMIN); elsewhere the tests are skipped with the reason.
const probe = (() => {
  const t = makeTempRoot('mount-probe');
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', t.outside], { encoding: 'utf8' });
  if (r.status === 0) spawnSync('umount', [t.outside]);
  t.remove();
  return r.status === 0 ? null : `mount -t tmpfs is not permitted here (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()})`;
})();

const EXE: TarSpec = { name: 'bin/llama-server', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 };

function expectPreviousIntactAndNoLeftovers(before: string[]): void {
  expect(runInstalledVersion(root).code).toBe(0);
  expect(snapshotTree(root)).toEqual(before);
  expect(listDir(join(root, 'llama-cpp.d')).filter((n) => n.startsWith('.'))).toEqual([]);
}

describe.skipIf(probe !== null)(`out of space on a ${TMPFS_SIZE} tmpfs${probe ? ` (skipped: ${probe})` : ''}`, () => {
  beforeAll(() => {
    tmp = makeTempRoot('space');
    mountPoint = join(tmp.dir, 'mnt');
    mkdirSync(mountPoint);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE}`, 'tmpfs', mountPoint], { encoding: 'utf8' });
    expect(mounted.status, mounted.stderr).toBe(0);
    root = join(mountPoint, 'soft');
    const base = runInstall(root, [writeArchive(tmp.archives, 'base.tar.gz', gzip(makeTar(toTarSpecs(realBundleEntries()))))]);
    expect(base.code, base.stderr).toBe(0);
  });

  afterAll(() => {
    if (mountPoint) spawnSync('umount', ['-l', mountPoint]);
    tmp?.remove();
  });

  it('an archive that expands beyond the free space is refused before extraction (exit 2)', () => {
    // 12 MB of two-bit noise: gzip shrinks it about 3.5 times (so it is no "bomb"), the tmpfs cannot hold it.
    const noise = randomBytes(12 * 1024 * 1024);
    for (let i = 0; i < noise.length; i++) noise[i] &= 3;
    const archive = writeArchive(tmp.archives, 'huge.tar.gz', gzip(makeTar([EXE, { name: 'bin/libhuge.so', data: noise }])));
    const before = snapshotTree(root);
    const run = runInstall(root, [archive]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/entry "bin\/libhuge\.so" \(header at offset 1024\): the archive expands to more than 12\.0 MiB but only [\d.]+ MiB is free on .*llama-cpp\.d/);
    expectPreviousIntactAndNoLeftovers(before);
  });

  it('an archive too big for the cache is refused before copying (exit 2)', () => {
    const archive = writeArchive(tmp.archives, 'bigger.tar', makeTar([EXE, { name: 'bin/blob', data: randomBytes(10 * 1024 * 1024) }]));
    const before = snapshotTree(root);
    const run = runInstall(root, [archive]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/bigger\.tar: the archive \(10\.0 MiB\) does not fit in the [\d.]+ MiB free on .*cache/);
    expectPreviousIntactAndNoLeftovers(before);
  });

  it('running the disk full during extraction (ENOSPC) fails cleanly (exit 1)', () => {
    // 3000 one-byte files declare 3 kB but take a 4 KiB page each: about 12 MB.
    const tiny: TarSpec[] = Array.from({ length: 3000 }, (_, i) => ({ name: `share/d${i % 50}/f${i}`, data: Buffer.from('x') }));
    const archive = writeArchive(tmp.archives, 'tiny-files.tar.gz', gzip(makeTar([EXE, ...tiny])));
    const before = snapshotTree(root);
    const run = runInstall(root, [archive]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/tiny-files\.tar\.gz: no space left while writing "share\/d\d+\/f\d+" \(ENOSPC\)/);
    expectPreviousIntactAndNoLeftovers(before);
  });
});
