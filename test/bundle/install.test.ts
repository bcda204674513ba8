// The installer on the real llama-server build, through the built CLI: every
// format installs and the installed binary runs; reinstall, --force, rollback,
// pruning, reactivation, an older installer's directory, concurrent runs,
// verification and the environment defaults.
import { lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gzip, makeTar, makeZip, nestUnder, toTarSpecs, toZipSpecs, type PackageEntry } from './support/archives.ts';
import { listDir, makeTempRoot, realBundleEntries, realBundleVariant, runInstall, runInstalledVersion, spawnInstall, writeArchive, type TempRoot } from './support/fixtures.ts';

let tmp: TempRoot;
let tarGz: Buffer;
const roots: string[] = [];

/** A fresh installer root for one test. */
function freshRoot(name: string): string {
  const root = join(tmp.dir, `soft-${name}`);
  roots.push(root);
  return root;
}

function record(root: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(root, 'llama-cpp', '.installed-from.json'), 'utf8'));
}

function activeTarget(root: string): string {
  return readlinkSync(join(root, 'llama-cpp'));
}

function expectInstalledTree(root: string, entries: readonly PackageEntry[]): void {
  const base = join(root, 'llama-cpp');
  for (const e of entries) {
    const { name } = e;
    const info = lstatSync(join(base, name));
    if (e.kind === 'symlink') {
      expect(info.isSymbolicLink(), name).toBe(true);
      expect(readlinkSync(join(base, name))).toBe(e.target);
    } else if (e.kind === 'file') {
      expect(info.isFile(), name).toBe(true);
      expect(info.mode & 0o777, name).toBe(e.mode ?? 0o644);
      expect(info.size, name).toBe(e.data!.length);
    }
  }
}

beforeAll(() => {
  tmp = makeTempRoot('install');
  tarGz = gzip(makeTar(toTarSpecs(realBundleEntries())));
});

afterAll(() => tmp?.remove());

describe('every format installs, and the installed llama-server runs', () => {
  const formats: Array<[string, () => Buffer]> = [
    ['llama.tar', () => makeTar(toTarSpecs(realBundleEntries()))],
    ['llama.tar.gz', () => tarGz],
    ['llama.tgz', () => tarGz],
    ['llama.zip', () => makeZip(toZipSpecs(realBundleEntries()))],
    ['nested.tar.gz', () => gzip(makeTar(toTarSpecs(nestUnder('llama-b1234-bin-ubuntu-x64', realBundleEntries()))))],
    // Stored, not deflated: both methods are covered, and the test is faster.
    ['nested.zip', () => makeZip(toZipSpecs(nestUnder('llama-b1234-bin-ubuntu-x64', realBundleEntries())).map((z) => ({ ...z, method: 0 as const })))],
  ];
  for (const [name, build] of formats) {
    it(name, () => {
      const root = freshRoot(name);
      const archive = writeArchive(tmp.archives, name, build());
      const run = runInstall(root, [archive]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^installed .* \(version: /);
      expectInstalledTree(root, realBundleEntries());
      const version = runInstalledVersion(root);
      expect(version.code).toBe(0);
      expect(version.output).toMatch(/^version: /m);
      expect(record(root)).toMatchObject({ archive_name: name, version: expect.stringMatching(/^version: /) });
      expect(activeTarget(root)).toMatch(/^llama-cpp\.d\/[0-9a-f]{16}$/);
      // The upstream helper scripts come with every install, as shims.
      expect(readFileSync(join(root, 'llama-cpp', 'install-llama-cpp-pkg.sh'), 'utf8')).toMatch(/exec supervisor install-pkg/);
      const ext = name.endsWith('.zip') ? 'zip' : name.endsWith('.tar') ? 'tar' : 'tar.gz';
      expect(listDir(join(root, 'cache'))).toEqual([`${record(root).sha256}.${ext}`]);
      expect(listDir(join(root, 'llama-cpp.d'))).toEqual([activeTarget(root).slice('llama-cpp.d/'.length), 'history.json']);
    });
  }

  it('a gzip archive named .tar goes by its content, with a warning', () => {
    const root = freshRoot('misnamed');
    const run = runInstall(root, [writeArchive(tmp.archives, 'misnamed.tar', tarGz)]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/misnamed\.tar is named like a \.tar but is a tar\.gz archive; going by its content/);
    expect(listDir(join(root, 'cache'))[0]).toMatch(/\.tar\.gz$/);
  });

  it('hardlinks inside the package stay hardlinks', () => {
    const root = freshRoot('hardlink');
    const specs = [...toTarSpecs(realBundleEntries()), { name: 'bin/llama-server-alias', type: '1', linkname: 'bin/llama-server' }];
    const run = runInstall(root, [writeArchive(tmp.archives, 'hardlink.tar', makeTar(specs))]);
    expect(run.code, run.stderr).toBe(0);
    const a = statSync(join(root, 'llama-cpp', 'bin', 'llama-server'));
    const b = statSync(join(root, 'llama-cpp', 'bin', 'llama-server-alias'));
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
  });

  it('--json prints the result with the version line and timings', () => {
    const root = freshRoot('json');
    const run = runInstall(root, [writeArchive(tmp.archives, 'json.tar.gz', tarGz), '--json']);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result).toMatchObject({ status: 'installed', format: 'tar.gz', active: join(root, 'llama-cpp'), version: expect.stringMatching(/^version: /) });
    expect(result.timingsMs).toMatchObject({ copy: expect.any(Number), extract: expect.any(Number), verify: expect.any(Number), total: expect.any(Number) });
  });
});

describe('reinstall, force, rollback, prune', () => {
  let root: string;
  let a: string;
  let b: string;
  let c: string;

  beforeAll(() => {
    root = freshRoot('versions');
    a = writeArchive(tmp.archives, 'a.tar.gz', tarGz);
    b = writeArchive(tmp.archives, 'b.tar.gz', gzip(makeTar(toTarSpecs(realBundleVariant('b')))));
    c = writeArchive(tmp.archives, 'c.zip', makeZip(toZipSpecs(realBundleVariant('c')).map((z) => ({ ...z, method: 0 as const }))));
  });

  it('reinstalling the active checksum does nothing, in about the time of hashing it', () => {
    expect(runInstall(root, [a]).code).toBe(0);
    const dir = join(root, activeTarget(root));
    const before = statSync(dir);
    const again = runInstall(root, [a]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^already installed: .*a\.tar\.gz .* nothing to do \(--force reinstalls\)/);
    const after = statSync(dir);
    expect(after.ino).toBe(before.ino);
    expect(after.ctimeMs).toBe(before.ctimeMs);
    // No copy, no extraction: a node start, one 6 MB hash and a few stats.
    expect(again.ms).toBeLessThan(3000);
  });

  it('--force reinstalls the same checksum beside the active one, switches to it, and prunes the copy it replaced', () => {
    const first = activeTarget(root);
    const run = runInstall(root, [a, '--force']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^installed /);
    expect(activeTarget(root)).toBe(`${first}-2`);
    // The replaced copy is not kept as a "previous version": there was none before, and there is none now.
    expect(listDir(join(root, 'llama-cpp.d'))).toEqual([`${first.slice(12)}-2`, 'history.json']);
    expect(runInstalledVersion(root).code).toBe(0);
  });

  it('install A, install B, install B --force, --rollback: A is active again (issue 9)', () => {
    const own = freshRoot('force-rollback');
    expect(runInstall(own, [a]).code).toBe(0);
    const shaA = record(own).sha256;
    expect(runInstall(own, [b]).code).toBe(0);
    const shaB = String(record(own).sha256);
    const forced = runInstall(own, [b, '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(activeTarget(own)).toBe(`llama-cpp.d/${shaB.slice(0, 16)}-2`);
    // Kept: the new copy of B and A, the version before B; the copy of B it replaced is pruned.
    expect(listDir(join(own, 'llama-cpp.d'))).toEqual([String(shaA).slice(0, 16), `${shaB.slice(0, 16)}-2`, 'history.json'].sort());
    const back = runInstall(own, ['--rollback']);
    expect(back.code, back.stderr).toBe(0);
    expect(record(own).sha256).toBe(shaA);
    expect(runInstalledVersion(own).code).toBe(0);
  });

  it('installing B then --rollback returns to A; --rollback again goes back to B', () => {
    const shaA = record(root).sha256;
    expect(runInstall(root, [b]).code).toBe(0);
    const shaB = record(root).sha256;
    expect(shaB).not.toBe(shaA);
    const back = runInstall(root, ['--rollback']);
    expect(back.code).toBe(0);
    expect(back.stdout).toMatch(/^rolled back: .*llama-cpp -> llama-cpp\.d\/[0-9a-f]{16}(-2)? \(version: /);
    expect(record(root).sha256).toBe(shaA);
    expect(runInstalledVersion(root).code).toBe(0);
    const forth = runInstall(root, ['--rollback', '--json']);
    expect(forth.code).toBe(0);
    expect(JSON.parse(forth.stdout)).toMatchObject({ status: 'rolled-back', record: { sha256: shaB } });
  });

  it('installing C keeps C and the version before it (B); A and its archive are pruned', () => {
    const shaB = record(root).sha256;
    const run = runInstall(root, [c]);
    expect(run.code).toBe(0);
    const shaC = record(root).sha256;
    const versions = listDir(join(root, 'llama-cpp.d')).filter((n) => n !== 'history.json');
    expect(versions.sort()).toEqual([String(shaB).slice(0, 16), String(shaC).slice(0, 16)].sort());
    expect(listDir(join(root, 'cache')).sort()).toEqual([`${shaB}.tar.gz`, `${shaC}.zip`].sort());
  });

  it('installing the kept previous version again switches to it without extracting', () => {
    const shaC = record(root).sha256;
    const run = runInstall(root, [b]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^reactivated the kept version of .*b\.tar\.gz/);
    const back = runInstall(root, ['--rollback']);
    expect(back.code).toBe(0);
    expect(record(root).sha256).toBe(shaC);
  });

  it('--rollback with a single version has nothing to go back to (exit 1, nothing changed)', () => {
    const single = freshRoot('single');
    expect(runInstall(single, [a]).code).toBe(0);
    const target = activeTarget(single);
    const run = runInstall(single, ['--rollback']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/nothing to roll back to: .*llama-cpp is the only kept version/);
    expect(activeTarget(single)).toBe(target);
  });
});

describe('an older installer, concurrency, verification, environment', () => {
  it("an older installer's real directory is moved aside, kept, and can be rolled back to", () => {
    const root = freshRoot('legacy');
    const legacy = join(root, 'llama-cpp');
    mkdirSync(join(legacy, 'bin'), { recursive: true });
    writeFileSync(join(legacy, 'bin', 'llama-server'), '#!/bin/sh\necho "version: legacy"\n', { mode: 0o755 });
    const legacySha = 'ab'.repeat(32);
    writeFileSync(join(legacy, '.installed-from.json'), JSON.stringify({ archive_name: 'old.tar.gz', installed_at_unix: 1, sha256: legacySha }));
    const run = runInstall(root, [writeArchive(tmp.archives, 'new.tar.gz', tarGz)]);
    expect(run.code).toBe(0);
    expect(lstatSync(legacy).isSymbolicLink()).toBe(true);
    expect(lstatSync(join(root, 'llama-cpp.d', legacySha.slice(0, 16), 'bin', 'llama-server')).isFile()).toBe(true);
    expect(runInstall(root, ['--rollback']).code).toBe(0);
    expect(activeTarget(root)).toBe(`llama-cpp.d/${legacySha.slice(0, 16)}`);
    expect(runInstalledVersion(root).output).toMatch(/version: legacy/);
  });

  it('two installs at once are serialised by the lock: one installs, the other finds it installed', async () => {
    const root = freshRoot('concurrent');
    const archive = writeArchive(tmp.archives, 'concurrent.tar.gz', tarGz);
    const runs = await Promise.all([spawnInstall(root, [archive]).done, spawnInstall(root, [archive]).done]);
    expect(runs.map((r) => r.code)).toEqual([0, 0]);
    const outs = runs.map((r) => r.stdout.split(' ')[0]).sort();
    expect(outs).toEqual(['already', 'installed']);
    expect(listDir(join(root, 'llama-cpp.d')).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a llama-server that fails --version is refused with its stderr; --no-verify installs it anyway', () => {
    const root = freshRoot('verify');
    const broken = realBundleEntries().map((e) =>
      e.name === 'bin/llama-server' ? { ...e, data: Buffer.from('#!/bin/sh\necho "ggml: no usable backend found" >&2\nexit 3\n') } : e,
    );
    const archive = writeArchive(tmp.archives, 'broken.tar.gz', gzip(makeTar(toTarSpecs(broken))));
    const run = runInstall(root, [archive]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/does not run: bin\/llama-server --version failed \(exit code 3\); its stderr:\nggml: no usable backend found/);
    expect(listDir(root)).toEqual(['cache', 'llama-cpp.d']);
    expect(listDir(join(root, 'cache'))).toEqual([]);
    expect(listDir(join(root, 'llama-cpp.d'))).toEqual([]);
    const forced = runInstall(root, [archive, '--no-verify', '--json']);
    expect(forced.code).toBe(0);
    expect(JSON.parse(forced.stdout)).toMatchObject({ status: 'installed', version: null });
  });

  it('AUTO_INFER_LLAMA_CPP_PKG_PATH is the default archive; a matching AUTO_INFER_LLAMA_CPP_PKG_SHA256 passes', () => {
    const root = freshRoot('env');
    const archive = writeArchive(tmp.archives, 'env.tar.gz', tarGz);
    expect(runInstall(root, []).stdout).toMatch(/^nothing to do: no ARCHIVE given and AUTO_INFER_LLAMA_CPP_PKG_PATH is not set/);
    const first = runInstall(root, [], { AUTO_INFER_LLAMA_CPP_PKG_PATH: archive });
    expect(first.code).toBe(0);
    const sha = String(record(root).sha256);
    const again = runInstall(root, [], { AUTO_INFER_LLAMA_CPP_PKG_PATH: archive, AUTO_INFER_LLAMA_CPP_PKG_SHA256: sha.toUpperCase() });
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^already installed/);
    const bad = runInstall(root, [], { AUTO_INFER_LLAMA_CPP_PKG_PATH: archive, AUTO_INFER_LLAMA_CPP_PKG_SHA256: 'not-a-sha' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/AUTO_INFER_LLAMA_CPP_PKG_SHA256="not-a-sha" is not a sha256/);
  });

  it('warns (upstream compatibility) about a missing README and missing shared libraries, and installs', () => {
    const root = freshRoot('warn');
    const bare = realBundleEntries().filter((e) => e.name !== 'README.md');
    const run = runInstall(root, [writeArchive(tmp.archives, 'bare.tar.gz', gzip(makeTar(toTarSpecs(bare))))]);
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/warning: no README\* at the package root \(expected by convention\)/);
  });

  it('usage errors: two archives, or --rollback with an archive', () => {
    const root = freshRoot('usage');
    expect(runInstall(root, ['a.tar', 'b.tar']).code).toBe(2);
    const r = runInstall(root, ['--rollback', 'a.tar']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/usage: supervisor install-pkg/);
  });
});
