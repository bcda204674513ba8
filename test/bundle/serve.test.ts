// End to end: a bundle installed by `supervisor install-pkg` is what a
// supervised llama-server runs from (through the <root>/llama-cpp link), and
// after another install and a restart the instance runs the new version.
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { rawRequest } from '../gateway/support.ts';
import { startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { freePort } from '../support/llama-server.ts';
import { gzip, makeTar, makeZip, toTarSpecs, toZipSpecs } from './support/archives.ts';
import { makeTempRoot, realBundleEntries, realBundleVariant, runInstall, writeArchive, type TempRoot } from './support/fixtures.ts';

let tmp: TempRoot;
let daemon: DaemonHandle;
let port: number;

// A fresh connection each time: a pooled one may still be the restarted server's.
async function chat(): Promise<{ status: number; body: any }> {
  const res = await rawRequest({ port, path: '/v1/chat/completions', body: JSON.stringify({ messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 8 }) });
  return { status: res.status, body: res.json() };
}

/** The version directory a running process was started from. */
function versionOf(pid: number): string {
  return realpathSync(`/proc/${pid}/exe`).split('/').slice(-3)[0];
}

beforeAll(async () => {
  tmp = makeTempRoot('serve');
  const first = runInstall(tmp.root, [writeArchive(tmp.archives, 'llama.tar.gz', gzip(makeTar(toTarSpecs(realBundleEntries()))))]);
  expect(first.code, first.stderr).toBe(0);
  const model = join(tmp.dir, 'tiny.gguf');
  await writeTinyModel(model);
  port = await freePort();
  daemon = await startDaemon(`
[master]
llama_cpp_path = ${JSON.stringify(join(tmp.root, 'llama-cpp', 'bin', 'llama-server'))}

[instance.control]
log_dir = "@DIR@"
stop_timeout_s = 5

[instance.tiny.server]
host = "127.0.0.1"
port = ${port}
model = ${JSON.stringify(model)}
threads = 1
ctx_size = 512
`);
});

afterAll(async () => {
  await daemon?.stop();
  tmp?.remove();
});

describe('a supervised llama-server runs from the installed bundle', () => {
  it('serves a chat completion from <root>/llama-cpp/bin/llama-server', async () => {
    const row = await daemon.waitForState('tiny', 'ready', 60_000);
    expect(versionOf(row.pid)).toBe(realpathSync(join(tmp.root, 'llama-cpp')).split('/').pop());
    const { status, body } = await chat();
    expect(status).toBe(200);
    expect(typeof body.choices[0].message.content).toBe('string');
  });

  it('after installing a .zip and restarting the instance, it serves from the new version', async () => {
    const before = daemon.status().find((r) => r.name === 'tiny')!;
    const run = runInstall(tmp.root, [writeArchive(tmp.archives, 'llama-v2.zip', makeZip(toZipSpecs(realBundleVariant('v2'))))]);
    expect(run.code, run.stderr).toBe(0);
    // Still the old version until restarted: the running process keeps its files.
    expect(versionOf(before.pid)).not.toBe(realpathSync(join(tmp.root, 'llama-cpp')).split('/').pop());
    expect(daemon.cli('restart', 'tiny').code).toBe(0);
    await daemon.waitFor(() => {
      const row = daemon.status().find((r) => r.name === 'tiny')!;
      return row.state === 'ready' && row.pid !== before.pid;
    }, 60_000, 'tiny to be ready again');
    const after = daemon.status().find((r) => r.name === 'tiny')!;
    expect(versionOf(after.pid)).toBe(realpathSync(join(tmp.root, 'llama-cpp')).split('/').pop());
    expect((await chat()).status).toBe(200);
  });
});
