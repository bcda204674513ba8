import { execFile } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ENGINE_SHIMS, LLAMA_SHIMS, makeShimScript, SHIM_MARKER, writeEngineShims, writeLlamaShims } from '../../src/boot/shims.ts';
import { makeTempRoot, removeTempRoot, writeScript } from './boot-fixtures.ts';

const run = promisify(execFile);
let root: string;
let soft: string;
let shimDir: string;

beforeEach(async () => {
  root = await makeTempRoot('shims');
  soft = join(root, 'soft');
  await mkdir(join(root, 'hard', 'image', 'app'), { recursive: true });
  await mkdir(soft);
  await symlink(join(root, 'hard', 'image', 'app'), join(soft, 'app'));
  shimDir = join(soft, 'app', 'llama-cpp');
});

afterEach(async () => {
  await removeTempRoot(root);
});

describe('writeLlamaShims', () => {
  it('writes the three shims (making the dir, as upstream did) and they exec the supervisor with the arguments', async () => {
    const bin = join(root, 'bin');
    await writeScript(join(bin, 'supervisor'), `#!/bin/sh\necho "supervisor $*"\n`);
    const outcome = await writeLlamaShims({ softRoot: soft });
    expect(outcome).toMatchObject({ name: `shims ${shimDir}`, state: 'ok', message: '3 shim(s) written' });
    expect((await readdir(shimDir)).sort()).toEqual(Object.keys(LLAMA_SHIMS).sort());
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    for (const [name, expected] of [
      ['check-and-run-llama-cpp.sh', 'supervisor serve --json two words'],
      ['get-llama-cpp-pkg.sh', 'supervisor install-pkg --json two words'],
      ['install-llama-cpp-pkg.sh', 'supervisor install-pkg --json two words'],
    ]) {
      expect((await stat(join(shimDir, name))).mode & 0o777).toBe(0o755);
      const { stdout } = await run(join(shimDir, name), ['--json', 'two words'], { env });
      expect(stdout.trim()).toBe(expected);
    }
    expect(await writeLlamaShims({ softRoot: soft })).toMatchObject({ state: 'ok', message: 'shims up to date' });
  });

  it('never replaces a file it did not write, but refreshes its own and replaces dangling upstream links', async () => {
    await mkdir(shimDir);
    await writeFile(join(shimDir, 'check-and-run-llama-cpp.sh'), '#!/bin/sh\necho my own runner\n');
    await writeFile(join(shimDir, 'get-llama-cpp-pkg.sh'), `#!/bin/sh\n${SHIM_MARKER}: old version\nexec supervisor old\n`);
    await symlink('/pei-from-host/stage-2/custom/install-llama-cpp-pkg.sh', join(shimDir, 'install-llama-cpp-pkg.sh'));
    const outcome = await writeLlamaShims({ softRoot: soft });
    expect(outcome).toMatchObject({ state: 'warning', message: '2 shim(s) written; check-and-run-llama-cpp.sh left alone (not written by the supervisor)' });
    expect(await readFile(join(shimDir, 'check-and-run-llama-cpp.sh'), 'utf8')).toBe('#!/bin/sh\necho my own runner\n');
    expect(await readFile(join(shimDir, 'get-llama-cpp-pkg.sh'), 'utf8')).toBe(makeShimScript(LLAMA_SHIMS['get-llama-cpp-pkg.sh']));
    expect((await lstat(join(shimDir, 'install-llama-cpp-pkg.sh'))).isFile()).toBe(true);
    expect((await readdir(shimDir)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('leaves a live symlink alone', async () => {
    await mkdir(shimDir);
    const mine = await writeScript(join(root, 'my-runner.sh'), '#!/bin/sh\n');
    await symlink(mine, join(shimDir, 'check-and-run-llama-cpp.sh'));
    const outcome = await writeLlamaShims({ softRoot: soft });
    expect(outcome.message).toBe(`2 shim(s) written; check-and-run-llama-cpp.sh left alone (a link to ${mine})`);
  });

  it('quotes a custom supervisor command', () => {
    const text = makeShimScript({ command: ['/usr/bin/node', '/opt/my app/cli.js'], subcommand: 'serve', note: 'x' });
    expect(text.split('\n').at(-2)).toBe(`exec /usr/bin/node '/opt/my app/cli.js' serve "$@"`);
  });

  it('writes nothing when /soft/app does not lead to a directory', async () => {
    await removeTempRoot(join(root, 'hard'));
    const outcome = await writeLlamaShims({ softRoot: soft });
    expect(outcome).toMatchObject({ state: 'warning', message: `${join(soft, 'app')} is not a directory (is the /soft/app link broken?); shims not written` });
  });

  it('writes into an explicit dir (a bundle staging dir) without needing /soft', async () => {
    const staging = join(root, 'staging');
    await mkdir(staging);
    expect(await writeLlamaShims({ dir: staging, softRoot: join(root, 'no-soft') })).toMatchObject({ state: 'ok', name: `shims ${staging}` });
    expect((await readdir(staging)).length).toBe(3);
  });
});

describe('writeEngineShims', () => {
  it("writes /soft/app/vllm and /soft/app/sglang's runner and installer shims; they call serve --engine / install-engine", async () => {
    const bin = join(root, 'bin');
    await writeScript(join(bin, 'supervisor'), `#!/bin/sh\necho "supervisor $*"\n`);
    const outcomes = await writeEngineShims({ softRoot: soft });
    expect(outcomes.map((o) => [o.name, o.state, o.message])).toEqual([
      [`shims ${join(soft, 'app', 'vllm')}`, 'ok', '2 shim(s) written'],
      [`shims ${join(soft, 'app', 'sglang')}`, 'ok', '2 shim(s) written'],
    ]);
    expect((await readdir(join(soft, 'app', 'vllm'))).sort()).toEqual(Object.keys(ENGINE_SHIMS.vllm).sort());
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    for (const [path, expected] of [
      ['vllm/check-and-run-vllm.sh', 'supervisor serve --engine vllm --json'],
      ['vllm/install-vllm-offline.sh', 'supervisor install-engine vllm --json'],
      ['sglang/check-and-run-sglang.sh', 'supervisor serve --engine sglang --json'],
      ['sglang/install-sglang-offline.sh', 'supervisor install-engine sglang --json'],
    ]) {
      const { stdout } = await run(join(soft, 'app', path), ['--json'], { env });
      expect(stdout.trim()).toBe(expected);
    }
    const again = await writeEngineShims({ softRoot: soft });
    expect(again.map((o) => o.message)).toEqual(['shims up to date', 'shims up to date']);
  });
});
