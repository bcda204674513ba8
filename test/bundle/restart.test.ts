// --restart: after an activation the CLI asks the daemon to restart the
// instances whose executable lies under the active path. A stub daemon (the
// real control server with a recording handler) stands in for `supervisor run`.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlServer, type ControlServer } from '../../src/control/server.ts';
import { gzip, makeTar, toTarSpecs } from './support/archives.ts';
import { makeTempRoot, realBundleEntries, realBundleVariant, spawnInstall, writeArchive, type TempRoot } from './support/fixtures.ts';

let tmp: TempRoot;
let server: ControlServer;
let socket: string;
const requests: Array<{ cmd: string; args: Record<string, unknown> }> = [];
let a: string;
let b: string;

const row = (name: string, state: string) => ({ name, state, pid: 4242, uptime_s: 0, restarts: 1, last_exit: null, port: 8080, gpu_ids: 'all', log_file: '/tmp/x.log', next_restart_at: null });

beforeAll(async () => {
  tmp = makeTempRoot('restart');
  socket = join(tmp.dir, 'sv.sock');
  server = await startControlServer({
    path: socket,
    handle: async (cmd, args) => {
      requests.push({ cmd, args });
      return [row('glm', 'starting')];
    },
  });
  a = writeArchive(tmp.archives, 'a.tar.gz', gzip(makeTar(toTarSpecs(realBundleEntries()))));
  b = writeArchive(tmp.archives, 'b.tar.gz', gzip(makeTar(toTarSpecs(realBundleVariant('b')))));
});

afterAll(async () => {
  await server?.close();
  tmp?.remove();
});

async function install(args: string[]) {
  return spawnInstall(tmp.root, args, { SUPERVISOR_SOCKET: socket }).done;
}

describe('install-pkg --restart', () => {
  it('after an install, asks for a restart of the instances under the active path and shows them', async () => {
    const run = await install([a, '--restart']);
    expect(run.code, run.stderr).toBe(0);
    expect(requests).toEqual([{ cmd: 'restart', args: { under: join(tmp.root, 'llama-cpp'), names: [], all: false } }]);
    expect(run.stderr).toMatch(/NAME\s+STATE[\s\S]*glm\s+starting/);
  });

  it('nothing activated (already installed): no restart', async () => {
    requests.length = 0;
    const run = await install([a, '--restart']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^already installed/);
    expect(run.stderr).toMatch(/nothing was activated, so nothing is restarted/);
    expect(requests).toEqual([]);
  });

  it('a rollback restarts too', async () => {
    expect((await install([b])).code).toBe(0);
    requests.length = 0;
    const run = await install(['--rollback', '--restart']);
    expect(run.code, run.stderr).toBe(0);
    expect(requests.map((r) => r.cmd)).toEqual(['restart']);
  });

  it('no daemon running: the install stands, exit 0, and it says so', async () => {
    const run = await spawnInstall(tmp.root, [b, '--restart'], { SUPERVISOR_SOCKET: join(tmp.dir, 'nobody.sock') }).done;
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^(installed|reactivated)/);
    expect(run.stderr).toMatch(/no supervisor daemon is running, so nothing is restarted/);
  });
});
