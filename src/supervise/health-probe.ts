// One HTTP GET to an instance's health endpoint, bounded in time. The answer
// (status and a short body) is compared between probes to tell a loading
// server that makes progress from one that hangs.
import net from 'node:net';

/** How a TCP probe's error starts when the connect got no answer in time (nothing refused it). */
export const TCP_TIMEOUT = 'ETIMEDOUT';

export type ProbeResult = { status: number; body: string } | { error: string };

export interface HealthProber {
  /** `path` null: a TCP connect is the whole check (sshd); it answers as status 200. */
  probe(options: { host: string; port: number; path: string | null; timeoutMs: number }): Promise<ProbeResult>;
}

const MAX_BODY = 512;

/** Where to reach a server that listens on a wildcard address. */
function probeHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host.replace(/^\[|\]$/g, '');
}

/** The real prober: node:http without keep-alive, so no socket outlives a probe. */
export const httpProber: HealthProber = {
  async probe({ host, port, path, timeoutMs }) {
    if (path === null) return probeTcp({ host: probeHost(host), port, timeoutMs });
    // Loaded on the first probe, not at start: node:http costs boot about 10 ms before the first spawn.
    const http = await import('node:http');
    return new Promise((resolve) => {
      const req = http.get({ host: probeHost(host), port, path, agent: false, timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (body.length < MAX_BODY) body += chunk.slice(0, MAX_BODY - body.length);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (err) => resolve({ error: err.message }));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    });
  },
};

function probeTcp({ host, port, timeoutMs }: { host: string; port: number; timeoutMs: number }): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve({ status: 200, body: 'tcp connect ok' });
    });
    // Named, so that a listener whose accept queue is full (rpc-server serving its one client) is told from a refusal.
    socket.once('timeout', () => socket.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: `${TCP_TIMEOUT} (no answer within ${timeoutMs} ms)` })));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}
