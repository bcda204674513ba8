// Locating the real llama-server for tests, and picking free ports for it.

import { execFileSync } from 'node:child_process';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
let cachedBinDir: string | undefined;

// Tests need the llama-server bin dir: LLAMA_SERVER_BIN_DIR, else the cached build (built once if missing).
export function llamaServerBinDir(): string {
  if (process.env.LLAMA_SERVER_BIN_DIR) return process.env.LLAMA_SERVER_BIN_DIR;
  cachedBinDir ??= execFileSync('bash', ['scripts/build-llama-server.sh'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
  return cachedBinDir;
}

// Path of the llama-server executable tests spawn.
export function llamaServerPath(): string {
  return `${llamaServerBinDir()}/llama-server`;
}

// A port free right now on 127.0.0.1, so parallel test servers don't collide.
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0];
}

// n distinct free ports: all are held open until every one is known (the kernel may hand out
// a just-closed port again, so picking them one by one can return the same port twice).
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<Server>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    })),
  );
  const ports = servers.map((srv) => (srv.address() as AddressInfo).port);
  await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
  return ports;
}
