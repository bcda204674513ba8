// Upstream's vLLM/SGLang offline bundles, installed atomically. pixi and
// pixi-unpack are stand-ins (test/fixtures/engines/install-bin): the real ones
// and their conda packages are not on this machine; the bundles are real tar
// files and the verification runs a real Python import.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EngineBundleError, installEngineBundle } from '../../src/bundle/engine-bundle.ts';
import { REPO_ROOT } from '../support/daemon.ts';

const FAKE_BIN = join(REPO_ROOT, 'test/fixtures/engines/install-bin');
let root: string;
let home: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'engine-bundle-'));
  home = join(root, 'home');
  mkdirSync(home);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

/** A tar of `files` (path → text) under root. */
function tarOf(name: string, files: Record<string, string>): string {
  const src = join(root, `src-${name}`);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(src, path, '..'), { recursive: true });
    writeFileSync(join(src, path), text);
  }
  const out = join(root, name);
  const r = spawnSync('tar', ['-cf', out, '-C', src, '.']);
  expect(r.status).toBe(0);
  return out;
}

function vllmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const template = join(root, 'template');
  mkdirSync(template, { recursive: true });
  writeFileSync(join(template, 'pixi.toml'), '[workspace]\nchannels = ["https://conda.anaconda.org/conda-forge"]\nplatforms = ["linux-64"]\n');
  return {
    PATH: `${FAKE_BIN}:${process.env.PATH}`,
    HOME: home,
    AUTO_INFER_VLLM_PIXI_PROJECT_DIR: join(root, 'vllm-pixi-offline'),
    AUTO_INFER_VLLM_PIXI_TEMPLATE_DIR: template,
    ...extra,
  };
}

const goodVllm = () => tarOf('vllm-offline-bundle.tar', { 'channel/vllm/__init__.py': 'VERSION = "0.8.3"\n' });
const project = () => join(root, 'vllm-pixi-offline');
const sha = (file: string) => spawnSync('sha256sum', [file], { encoding: 'utf8' }).stdout.split(' ')[0];

async function rejection(promise: Promise<unknown>): Promise<EngineBundleError> {
  const err = await promise.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(EngineBundleError);
  return err as EngineBundleError;
}

describe('vLLM bundles (AUTO_INFER_VLLM_BUNDLE_*)', () => {
  it('nothing to do without AUTO_INFER_VLLM_BUNDLE_PATH; a missing file is a skip with a warning (upstream: exit 0)', async () => {
    expect((await installEngineBundle({ kind: 'vllm', env: vllmEnv() })).status).toBe('nothing-to-do');
    const missing = await installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: join(root, 'nope.tar') }) });
    expect(missing).toMatchObject({ status: 'missing-bundle', message: `bundle not found: ${join(root, 'nope.tar')}; nothing installed` });
  });

  it('installs into a version dir, verifies `import vllm`, links the project dir to it, and writes the marker; the same bundle again is already installed', async () => {
    const bundle = goodVllm();
    const env = vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: bundle, AUTO_INFER_VLLM_BUNDLE_SHA256: sha(bundle).toUpperCase() });
    const result = await installEngineBundle({ kind: 'vllm', env });
    expect(result.status).toBe('installed');
    const name = sha(bundle).slice(0, 12);
    expect(lstatSync(project()).isSymbolicLink()).toBe(true);
    expect(readlinkSync(project())).toBe(`vllm-pixi-offline.d/${name}`);
    const marker = JSON.parse(readFileSync(join(project(), '.installed-from.json'), 'utf8'));
    expect(marker).toMatchObject({ bundle_path: bundle, bundle_sha256: sha(bundle), pixi_environment: 'default' });
    expect(readFileSync(join(project(), 'pixi.toml'), 'utf8')).toContain('channels = ["./channel"]');
    // What the runner will run works from the switched path.
    const run = spawnSync(join(FAKE_BIN, 'pixi'), ['run', '--manifest-path', join(project(), 'pixi.toml'), '--environment', 'default', '--frozen', 'python', '-c', 'import vllm; print(vllm.VERSION)'], { encoding: 'utf8' });
    expect(run.stdout.trim()).toBe('0.8.3');
    expect((await installEngineBundle({ kind: 'vllm', env })).status).toBe('already-installed');
  });

  it('the finished version is handed over to the runner user (AUTO_INFER_VLLM_USER) before the switch, when we are root', async () => {
    const lines: string[] = [];
    const me = process.getuid?.() === 0 ? 'root' : null;
    await installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: goodVllm(), AUTO_INFER_VLLM_USER: me ?? 'nobody-here' }), log: (l) => lines.push(l) });
    const chown = lines.find((l) => l.startsWith('chown to'));
    if (me === null) expect(chown).toBeUndefined();
    else expect(chown).toMatch(/^chown to root: chown -R 0:0 /);
    expect(lines.indexOf(chown ?? '') < lines.findIndex((l) => l.startsWith('installed '))).toBe(true);
  });

  it('a sha256 mismatch refuses before any change (exit 1)', async () => {
    const bundle = goodVllm();
    const err = await rejection(installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: bundle, AUTO_INFER_VLLM_BUNDLE_SHA256: 'ab'.repeat(32) }) }));
    expect(err.exitCode).toBe(1);
    expect(err.message).toContain('AUTO_INFER_VLLM_BUNDLE_SHA256 says');
    expect(existsSync(project())).toBe(false);
    expect(existsSync(`${project()}.d`)).toBe(false);
  });

  it('without pixi: a clear error, exit 1, nothing created', async () => {
    const bundle = goodVllm();
    const err = await rejection(installEngineBundle({ kind: 'vllm', env: { ...vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: bundle }), PATH: '/usr/bin:/bin' } }));
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/^pixi not found on PATH \(.*\/home\/\.pixi\/bin:.*\): cannot install .*; nothing was changed$/);
    expect(existsSync(`${project()}.d`)).toBe(false);
  });

  it('a failed step or a failed import leaves the previous install active and no half-installed version behind', async () => {
    const first = goodVllm();
    await installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: first }) });
    const before = readlinkSync(project());
    const broken = tarOf('broken.tar', { 'channel/not_vllm/__init__.py': '' });
    const verify = await rejection(installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: broken }) }));
    expect(verify.message).toMatch(/^verify failed \(exit 1\): .*No module named 'vllm'.*; the previous install is unchanged$/);
    const other = tarOf('other.tar', { 'channel/vllm/__init__.py': 'VERSION = "0.9"\n' });
    const install = await rejection(installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: other, PIXI_STANDIN_FAIL_INSTALL: '1' }) }));
    expect(install.message).toContain('pixi install failed (exit 1): pixi (stand-in): solve failed');
    const noChannel = tarOf('nochannel.tar', { 'README': 'x' });
    expect((await rejection(installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: noChannel }) }))).exitCode).toBe(2);
    expect(readlinkSync(project())).toBe(before);
    expect(readdirSync(`${project()}.d`).filter((e) => !e.startsWith('.'))).toEqual([before.split('/')[1]]);
  });

  it('a new bundle switches and keeps the previous one; the one before that is removed', async () => {
    const names: string[] = [];
    for (const version of ['1', '2', '3']) {
      const bundle = tarOf(`v${version}.tar`, { 'channel/vllm/__init__.py': `VERSION = "${version}"\n` });
      const result = await installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: bundle }) });
      expect(result.previous).toBe(names.at(-1) ?? null);
      names.push(sha(bundle).slice(0, 12));
    }
    expect(readdirSync(`${project()}.d`).filter((e) => !e.startsWith('.')).sort()).toEqual([names[1], names[2]].sort());
  });

  it("a real directory at the project path (upstream's in-place install) is refused with exit 2, untouched", async () => {
    mkdirSync(project());
    const err = await rejection(installEngineBundle({ kind: 'vllm', env: vllmEnv({ AUTO_INFER_VLLM_BUNDLE_PATH: goodVllm() }) }));
    expect(err.exitCode).toBe(2);
    expect(err.message).toContain('is a directory (an in-place install by upstream');
    expect(lstatSync(project()).isDirectory()).toBe(true);
  });
});

describe('SGLang bundles (AUTO_INFER_SGLANG_BUNDLE_*)', () => {
  const sglangEnv = (extra: Record<string, string>) => ({ PATH: `${FAKE_BIN}:${process.env.PATH}`, HOME: home, AUTO_INFER_SGLANG_PROJECT_DIR: join(root, 'sglang-pixi-offline'), ...extra });
  const packages = { 'torch/__init__.py': '', 'sglang/__init__.py': '' };

  it('a .tar goes through pixi-unpack, env/bin/python must import torch and sglang; the link is what the runner uses', async () => {
    const bundle = tarOf('sglang-offline-bundle.tar', packages);
    expect((await installEngineBundle({ kind: 'sglang', env: sglangEnv({ AUTO_INFER_SGLANG_BUNDLE_PATH: bundle }) })).status).toBe('installed');
    const python = join(root, 'sglang-pixi-offline', 'env', 'bin', 'python');
    expect(spawnSync(python, ['-c', 'import torch, sglang'], { encoding: 'utf8' }).status).toBe(0);
    const broken = tarOf('no-sglang.tar', { 'torch/__init__.py': '' });
    const err = await rejection(installEngineBundle({ kind: 'sglang', env: sglangEnv({ AUTO_INFER_SGLANG_BUNDLE_PATH: broken }) }));
    expect(err.message).toContain("No module named 'sglang'");
    expect(spawnSync(python, ['-c', 'import sglang']).status).toBe(0);
  });

  it('a self-extracting .sh runs inside the version dir', async () => {
    const script = join(root, 'sglang-offline-bundle.sh');
    writeFileSync(script, `#!/bin/sh\nset -e\nmkdir -p env/bin env/site/torch env/site/sglang\ntouch env/site/torch/__init__.py env/site/sglang/__init__.py\nprintf '#!/bin/sh\\nPYTHONPATH="%s/env/site" exec python3 "$@"\\n' "$(pwd)" > env/bin/python\nchmod +x env/bin/python\n`);
    const result = await installEngineBundle({ kind: 'sglang', env: sglangEnv({ AUTO_INFER_SGLANG_BUNDLE_PATH: script }) });
    expect(result.status).toBe('installed');
    expect(existsSync(join(root, 'sglang-pixi-offline', '_bundle.sh'))).toBe(true);
  });

  it('without pixi-unpack (or a configured one that is not there): a clear error, nothing created', async () => {
    const bundle = tarOf('b.tar', packages);
    const missing = await rejection(installEngineBundle({ kind: 'sglang', env: { ...sglangEnv({ AUTO_INFER_SGLANG_BUNDLE_PATH: bundle }), PATH: '/usr/bin:/bin' } }));
    expect(missing.message).toMatch(/^pixi-unpack not found \(PATH .*\): cannot unpack .*; nothing was changed/);
    const configured = await rejection(installEngineBundle({ kind: 'sglang', env: sglangEnv({ AUTO_INFER_SGLANG_BUNDLE_PATH: bundle, AUTO_INFER_SGLANG_PIXI_UNPACK_BIN: '/opt/none/pixi-unpack' }) }));
    expect(configured.message).toContain('AUTO_INFER_SGLANG_PIXI_UNPACK_BIN=/opt/none/pixi-unpack');
    expect(existsSync(join(root, 'sglang-pixi-offline.d'))).toBe(false);
    const zip = join(root, 'b.zip');
    writeFileSync(zip, 'PK');
    expect((await rejection(installEngineBundle({ kind: 'sglang', env: sglangEnv({ AUTO_INFER_SGLANG_BUNDLE_PATH: zip }) }))).exitCode).toBe(2);
  });
});

describe('supervisor install-engine', () => {
  it('exit codes: 0 nothing to do, 1 with the message on a failure, 2 for a bad engine word', () => {
    const cli = join(REPO_ROOT, 'dist/cli.js');
    const env = { ...process.env, AUTO_INFER_VLLM_BUNDLE_PATH: '' };
    expect(spawnSync(process.execPath, [cli, 'install-engine', 'vllm'], { env, encoding: 'utf8' }).stdout).toContain('nothing to install');
    const bad = spawnSync(process.execPath, [cli, 'install-engine', 'tgi'], { env, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    const bundle = goodVllm();
    const fail = spawnSync(process.execPath, [cli, 'install-engine', 'vllm', bundle], { env: { ...vllmEnv(), PATH: '/usr/bin:/bin' }, encoding: 'utf8' });
    expect(fail.status).toBe(1);
    expect(fail.stderr).toContain('pixi not found on PATH');
    expect(fail.stderr).not.toMatch(/\n\s+at /);
  });
});
