// Locating the real llama-server for tests, and picking free ports for it.

import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
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
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}
