// A corpus of hostile and broken archives. Each is refused with exit 2 and a
// message that says what is wrong (and where), nothing appears outside the
// installer's root, the root itself is exactly as before (no staging, no
// cache copy, no lock), and the install that was active keeps serving: a
// real llama-server supervised by the built daemon runs from it throughout.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installPackage } from '../../src/bundle/install.ts';
import { isSupervisorError } from '../../src/errors.ts';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { freePort } from '../support/llama-server.ts';
import { gzip, makeTar, makeZip, nestUnder, toTarSpecs, toZipSpecs, type PackageEntry, type TarSpec, type ZipSpec } from './support/archives.ts';
import { listDir, makeTempRoot, realBundleEntries, runInstall, runInstalledVersion, snapshotTree, writeArchive, type TempRoot } from './support/fixtures.ts';

let tmp: TempRoot;
let daemon: DaemonHandle;
let port: number;
let servingPid: number;
let tarGz: Buffer;

const EXE = (text = '#!/bin/sh\necho "version: fake"\n'): TarSpec => ({ name: 'bin/llama-server', data: Buffer.from(text), mode: 0o755 });
const tar = (...specs: TarSpec[]) => makeTar(specs);
const zip = (...specs: ZipSpec[]) => makeZip(specs);
/** 16 components of 254 bytes: 4079 bytes, inside NAME_MAX and PATH_MAX, but not with the staging directory in front. */
const DEEP_NAME = Array(16).fill('d'.repeat(254)).join('/');
const withoutEntry = (name: string): PackageEntry[] => realBundleEntries().filter((e) => e.name !== name);

interface Case {
  name: string;
  file: string;
  build: () => Buffer;
  error: RegExp;
  env?: Record<string, string>;
}

// Built lazily: `outside` is known only once the temp root exists.
const cases = (): Case[] => [
  // Names
  { name: 'tar: path traversal', file: 'traversal.tar', build: () => tar(EXE(), { name: '../../../../outside/pwned', data: Buffer.from('x') }), error: /entry "\.\.\/\.\.\/\.\.\/\.\.\/outside\/pwned" \(header at offset 1024\): path contains a "\.\." component/ },
  { name: 'tar: absolute path', file: 'absolute.tar', build: () => tar({ name: `${tmp.outside}/pwned`, data: Buffer.from('x') }), error: /\(header at offset 0\): absolute path$/m },
  { name: 'tar.gz: traversal in a pax path', file: 'pax.tar.gz', build: () => gzip(tar(EXE(), { name: 'ok', data: Buffer.from('x'), pax: { path: 'bin/../../outside/pwned' } })), error: /entry "bin\/\.\.\/\.\.\/outside\/pwned" \(header at offset 2048\): path contains a "\.\." component/ },
  { name: 'zip: path traversal', file: 'traversal.zip', build: () => zip({ name: '../outside/pwned', data: Buffer.from('x') }), error: /entry "\.\.\/outside\/pwned" \(header at offset \d+\): path contains a "\.\." component/ },
  { name: 'zip: absolute path', file: 'absolute.zip', build: () => zip({ name: `${tmp.outside}/pwned`, data: Buffer.from('x') }), error: /: absolute path$/m },
  { name: 'zip: backslash name', file: 'backslash.zip', build: () => zip({ name: '..\\..\\outside\\pwned', data: Buffer.from('x') }), error: /backslash/ },
  // A file name over NAME_MAX (255 bytes; 150 × "é" is 300): refused by name, shown cut between characters (issue 9).
  { name: 'tar: a path component over 255 bytes', file: 'long-name.tar', build: () => tar(EXE(), { name: `bin/${'é'.repeat(150)}`, data: Buffer.from('x') }), error: /entry "bin\/é{62}…" \(304 bytes, header at offset 2048\): a path component is 300 bytes, longer than the 255 a file name may have \(NAME_MAX\)$/m },
  // Within both limits, but too long once under the staging directory: the kernel's refusal is the archive's fault too.
  { name: 'tar: a name too long to extract under the staging directory', file: 'deep-name.tar', build: () => tar(EXE(), { name: DEEP_NAME, data: Buffer.from('x') }), error: /entry "d{128}…" \(4079 bytes, header at offset 5632\): name too long to extract \(ENAMETOOLONG\)$/m },
  { name: 'zip: a name too long to extract under the staging directory', file: 'deep-name.zip', build: () => zip(EXE() as ZipSpec, { name: DEEP_NAME, data: Buffer.from('x') }), error: /entry "d{128}…" \(4079 bytes\): name too long to extract \(ENAMETOOLONG\)$/m },
  { name: 'zip: a path component over 255 bytes', file: 'long-name.zip', build: () => zip(EXE() as ZipSpec, { name: `bin/${'😀'.repeat(64)}`, data: Buffer.from('x') }), error: /entry "bin\/(?:😀){31}…" \(260 bytes, header at offset \d+\): a path component is 256 bytes, longer than the 255 a file name may have \(NAME_MAX\)$/m },
  // Links
  { name: 'tar: symlink escape, then a write through it', file: 'symlink-escape.tar', build: () => tar(EXE(), { name: 'bin/evil', type: '2', linkname: '../../../../outside' }, { name: 'bin/evil/pwned', data: Buffer.from('x') }), error: /entry "bin\/evil" \(header at offset 1024\): symlink target "\.\.\/\.\.\/\.\.\/\.\.\/outside" resolves outside the archive/ },
  { name: 'tar: in-tree symlink, then a write through it', file: 'symlink-write.tar', build: () => tar(EXE(), { name: 'lib', type: '2', linkname: 'bin' }, { name: 'lib/llama-server', data: Buffer.from('x') }), error: /entry "lib\/llama-server" \(header at offset 1536\): would be written through the symlink lib/ },
  { name: 'tar: absolute symlink target', file: 'symlink-abs.tar', build: () => tar(EXE(), { name: 'bin/libc.so', type: '2', linkname: '/etc/passwd' }), error: /symlink target "\/etc\/passwd" is an absolute path/ },
  { name: 'tar: link escaping through another link', file: 'symlink-chain.tar', build: () => tar(EXE(), { name: 'bin/up', type: '2', linkname: '..' }, { name: 'bin/x', type: '2', linkname: 'up/../../outside' }), error: /entry "bin\/x" .* resolves outside the archive/ },
  { name: 'tar.gz: a link that leaves the top folder', file: 'nested-escape.tar.gz', build: () => gzip(tar({ name: 'top/', type: '5' }, { ...EXE(), name: 'top/bin/llama-server' }, { name: 'top/bin/x', type: '2', linkname: '../../top/bin/llama-server' })), error: /entry "top\/bin\/x" \(header at offset 1536\): symlink target .* resolves outside the package root/ },
  { name: 'tar: hardlink escape', file: 'hardlink-escape.tar', build: () => tar(EXE(), { name: 'bin/h', type: '1', linkname: '../../../../outside/secret' }), error: /hardlink target "\.\.\/\.\.\/\.\.\/\.\.\/outside\/secret": path contains a "\.\." component/ },
  { name: 'tar: hardlink to an absolute path', file: 'hardlink-abs.tar', build: () => tar(EXE(), { name: 'bin/h', type: '1', linkname: '/etc/shadow' }), error: /hardlink target "\/etc\/shadow": absolute path/ },
  { name: 'zip: symlink escape (Unix mode in the external attributes)', file: 'symlink-escape.zip', build: () => zip({ name: 'bin/evil', data: Buffer.from('../../../../outside'), mode: 0o120777, method: 0 }, { name: 'bin/evil/pwned', data: Buffer.from('x') }), error: /entry "bin\/evil" .* resolves outside the archive/ },
  { name: 'zip: in-tree symlink, then a write through it', file: 'symlink-write.zip', build: () => zip({ name: 'lib', data: Buffer.from('bin'), mode: 0o120777 }, { name: 'lib/llama-server', data: Buffer.from('x') }), error: /would be written through the symlink lib/ },
  { name: 'tar: duplicate entry', file: 'duplicate.tar', build: () => tar(EXE(), { name: 'bin/llama-server', type: '2', linkname: '/bin/sh' }), error: /duplicate entry: bin\/llama-server was already extracted as a regular file/ },
  // Types
  { name: 'tar: device node', file: 'device.tar', build: () => tar(EXE(), { name: 'bin/null', type: '3' }), error: /entry "bin\/null" \(header at offset 1024\): device node \(CharacterDevice\) entries are not allowed/ },
  { name: 'tar: FIFO', file: 'fifo.tar', build: () => tar(EXE(), { name: 'bin/pipe', type: '6' }), error: /FIFO \(FIFO\) entries are not allowed/ },
  { name: 'zip: device node', file: 'device.zip', build: () => zip({ name: 'bin/null', mode: 0o020666 }), error: /device node \(mode 020666\) entries are not allowed/ },
  { name: 'tar: sparse file', file: 'sparse.tar', build: () => tar(EXE(), { name: 'bin/sparse', type: 'S', data: Buffer.alloc(10) }), error: /entry "bin\/sparse" \(header at offset 1024\): unsupported tar entry type "S"/ },
  // Bombs and broken containers
  { name: 'zip: bomb (huge expansion ratio)', file: 'bomb.zip', build: () => zip(EXE() as ZipSpec, { name: 'bin/zeros', data: Buffer.alloc(48 * 1024 * 1024) }), error: /entry "bin\/zeros" .*: expands \d+ times .* refused as a zip bomb/ },
  { name: 'zip: overlapping entries', file: 'overlap.zip', build: () => makeZip([{ name: 'a', data: Buffer.alloc(4000, 1) }, { name: 'b', data: Buffer.alloc(4000, 1) }], { remapOffsets: ([a]) => [a, a] }), error: /overlaps the data of entry "a"/ },
  { name: 'zip: sizes that lie', file: 'lying.zip', build: () => zip({ name: 'bin/llama-server', data: Buffer.alloc(100_000, 7), declaredSize: 1000 }), error: /entry "bin\/llama-server" .*: data expands beyond the declared 1000 bytes/ },
  { name: 'zip: CRC mismatch', file: 'crc.zip', build: () => corruptStoredZip(), error: /CRC-32 mismatch: the data is corrupt/ },
  { name: 'zip: corrupt central directory', file: 'corrupt-cd.zip', build: () => makeZip([{ name: 'bin/llama-server', data: Buffer.from('x') }], { corruptCentralDirectory: true }), error: /corrupt zip central directory \(record #1\): invalid central directory file header signature/ },
  { name: 'zip: truncated (no end of central directory)', file: 'truncated.zip', build: () => makeZip([{ name: 'bin/llama-server', data: Buffer.from('x') }], { omitEocd: true }), error: /corrupt zip: end of central directory record signature not found/i },
  { name: 'zip: encrypted entry', file: 'encrypted.zip', build: () => zip({ name: 'bin/llama-server', data: Buffer.from('x'), flags: 0x0801 }), error: /encrypted entries are not supported/ },
  { name: 'zip: unsupported compression method', file: 'bzip2.zip', build: () => zip({ name: 'bin/llama-server', data: Buffer.from('x'), method: 12 as 0 }), error: /compression method 12 is not supported/ },
  { name: 'tar.gz: gzip bomb', file: 'bomb.tar.gz', build: () => gzip(tar(EXE(), { name: 'bin/zeros', data: Buffer.alloc(40 * 1024 * 1024) })), error: /gzip data expands more than 100 times .* decompression bomb/ },
  { name: 'tar.gz: truncated gzip', file: 'truncated.tar.gz', build: () => tarGz.subarray(0, tarGz.length >> 1), error: /at compressed byte offset \d+: the gzip data is corrupt or truncated \(unexpected end of file\)/ },
  { name: 'tar.gz: corrupt gzip', file: 'corrupt.tar.gz', build: () => flipBytes(tarGz), error: /the gzip data is corrupt or truncated/ },
  { name: 'tar: truncated in the middle of an entry', file: 'truncated.tar', build: () => tar(EXE(), { name: 'bin/big', data: Buffer.alloc(100_000, 1) }).subarray(0, 4096), error: /entry "bin\/big" \(header at offset 1024\): the archive ends in the middle of this entry \(truncated\)/ },
  // Layout and contents
  { name: 'wrong layout (no bin/)', file: 'layout.tar.gz', build: () => gzip(tar({ name: 'README', data: Buffer.from('x') }, { name: 'lib/libllama.so', data: Buffer.from('x') })), error: /invalid package layout: expected bin\/llama-server at the archive root or inside its single top-level folder; the archive root holds README, lib\// },
  { name: 'wrong layout (two top folders)', file: 'two-tops.tar', build: () => tar({ ...EXE(), name: 'a/bin/llama-server' }, { ...EXE(), name: 'b/bin/llama-server' }), error: /invalid package layout: .* the archive root holds a\/, b\// },
  { name: 'bin/llama-server missing', file: 'no-server.tar', build: () => tar({ name: 'bin/llama-cli', data: Buffer.from('x'), mode: 0o755 }), error: /invalid package layout: no bin\/llama-server in the package/ },
  { name: 'bin/llama-server is a directory', file: 'server-dir.tar', build: () => tar({ name: 'bin/llama-server/', type: '5' }, { name: 'bin/llama-server/x', data: Buffer.from('x') }), error: /bin\/llama-server is not a regular file/ },
  { name: 'non-executable llama-server', file: 'noexec.tar.gz', build: () => gzip(tar({ ...EXE(), mode: 0o644 })), error: /bin\/llama-server is not executable \(mode 0644\)$/m },
  { name: 'zip without Unix modes', file: 'windows.zip', build: () => makeZip(toZipSpecs(nestUnder('llama-win', [{ name: 'bin/llama-server', kind: 'file', data: Buffer.from('x') }]), { host: 0 })), error: /bin\/llama-server is not executable \(mode 0644\): the zip carries no Unix file modes \(made on Windows\?\)/ },
  { name: 'a shared library missing (the loader says which)', file: 'missing-lib.tar.gz', build: () => gzip(makeTar(toTarSpecs(withoutEntry('bin/libllama-server-impl.so')))), error: /the package's llama-server does not run: bin\/llama-server --version failed \(exit code 127\); its stderr:\n.*libllama-server-impl\.so: cannot open shared object file/ },
  { name: 'wrong sha256 (AUTO_INFER_LLAMA_CPP_PKG_SHA256)', file: 'sha.tar.gz', build: () => tarGz, env: { AUTO_INFER_LLAMA_CPP_PKG_SHA256: '0'.repeat(64) }, error: /sha.tar.gz: sha256 mismatch: AUTO_INFER_LLAMA_CPP_PKG_SHA256 expects 0{64}, the archive is [0-9a-f]{64}/ },
  // Not an archive we read
  { name: 'unsupported format (.tar.xz)', file: 'llama.tar.xz', build: () => Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04, ...Buffer.alloc(600)]), error: /unsupported archive format: the file is xz-compressed data \(\.tar\.xz\); supported: \.tar, \.tar\.gz \/ \.tgz \(gzip-compressed tar\) and \.zip/ },
  { name: 'an HTML error page named .tar.gz', file: 'download.tar.gz', build: () => Buffer.from('<!DOCTYPE html>\n<html><body>403 Forbidden</body></html>\n'), error: /the file is an HTML page \(a failed download\?\)/ },
  { name: 'an empty file', file: 'empty.zip', build: () => Buffer.alloc(0), error: /the file is an empty file/ },
  { name: 'a gzip that is not a tar', file: 'notar.tar.gz', build: () => gzip(Buffer.alloc(4096, 0x41)), error: /not a valid tar archive|corrupt tar header/ },
];

function flipBytes(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  for (let i = copy.length >> 2; i < copy.length >> 1; i += 997) copy[i] ^= 0x5a;
  return copy;
}

function corruptStoredZip(): Buffer {
  const data = Buffer.alloc(1000, 3);
  const archive = zip({ name: 'bin/llama-server', data, method: 0, mode: 0o100755 });
  archive[30 + 'bin/llama-server'.length + 500] ^= 0xff;
  return archive;
}

async function chat(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4 }),
  });
  await res.arrayBuffer();
  return res.status;
}

beforeAll(async () => {
  tmp = makeTempRoot('hostile');
  tarGz = gzip(makeTar(toTarSpecs(realBundleEntries())));
  const base = runInstall(tmp.root, [writeArchive(tmp.archives, 'base.tar.gz', tarGz)]);
  expect(base.code, base.stderr).toBe(0);
  const model = join(tmp.dir, 'tiny.gguf');
  await writeTinyModel(model);
  port = await freePort();
  daemon = await startDaemon(`
[master]
llama_cpp_path = ${JSON.stringify(join(tmp.root, 'llama-cpp', 'bin', 'llama-server'))}

[instance.control]
log_dir = "@DIR@"

[instance.tiny.server]
host = "127.0.0.1"
port = ${port}
model = ${JSON.stringify(model)}
threads = 1
ctx_size = 512
`);
  servingPid = (await daemon.waitForState('tiny', 'ready', 60_000)).pid;
});

afterAll(async () => {
  await daemon?.stop();
  tmp?.remove();
});

/** Runs one case in-process (fast) or through the built CLI; returns what a user sees: exit code and stderr. */
async function attempt(spec: Case, via: 'library' | 'cli'): Promise<{ code: number; stderr: string; stdout: string }> {
  const archive = writeArchive(tmp.archives, spec.file, spec.build());
  if (via === 'cli') return runInstall(tmp.root, [archive], spec.env);
  const env = { ...process.env, AUTO_INFER_LLAMA_CPP_PKG_SHA256: undefined, ...spec.env };
  const err = await installPackage({ archive, root: tmp.root, env }).then(() => null, (e: unknown) => e);
  if (!isSupervisorError(err)) throw new Error(`expected a refusal, got ${err === null ? 'success' : String((err as Error).stack)}`);
  return { code: err.exitCode, stderr: `supervisor: ${err.message}\n`, stdout: '' };
}

async function expectRefused(spec: Case, via: 'library' | 'cli'): Promise<void> {
  const before = snapshotTree(tmp.root);
  const run = await attempt(spec, via);
  expect(run.stdout).toBe('');
  expect(run.stderr).toMatch(spec.error);
  expect(run.stderr).toMatch(/^supervisor: /);
  expect(run.code).toBe(2);
  expect(listDir(tmp.outside)).toEqual([]);
  expect(snapshotTree(tmp.root)).toEqual(before);
  expect(runInstalledVersion(tmp.root).code).toBe(0);
}

describe('hostile and broken archives are refused (exit 2), and nothing changes', () => {
  it('the corpus is big enough', () => expect(cases().length).toBeGreaterThanOrEqual(20));

  for (const name of cases().map((x) => x.name)) {
    it(name, () => expectRefused(cases().find((x) => x.name === name)!, 'library'));
  }

  // The same refusals end to end: `supervisor install-pkg` prints the message and exits 2.
  for (const name of ['tar: path traversal', 'tar: a path component over 255 bytes', 'zip: bomb (huge expansion ratio)', 'tar.gz: truncated gzip', 'wrong layout (no bin/)', 'a shared library missing (the loader says which)']) {
    it(`through the CLI: ${name}`, () => expectRefused(cases().find((x) => x.name === name)!, 'cli'));
  }

  it('the install that was active still serves, from the same process', async () => {
    const row = daemon.status().find((r) => r.name === 'tiny')!;
    expect(row).toMatchObject({ state: 'ready', pid: servingPid, restarts: 0 });
    expect(await chat()).toBe(200);
  });
});
