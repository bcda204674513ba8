// Helpers for the gateway tests: a GatewayTargets the test drives by hand, a
// tiny upstream server, a quiet log that keeps its events, and raw HTTP.
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { GatewayPlan } from '../../src/config/gateway-plan.ts';
import type { GatewayTargets, TargetState, TargetView } from '../../src/gateway/targets.ts';
import type { Log } from '../../src/logging/log.ts';

/** A gateway plan for tests: loopback, any free port, short waits. */
export function testPlan(overrides: Partial<GatewayPlan> = {}): GatewayPlan {
  return {
    enabled: true,
    host: '127.0.0.1',
    port: 0,
    apiKey: null,
    defaultInstance: null,
    waitReadyMs: 5_000,
    drainTimeoutMs: 5_000,
    maxBodyBytes: 64 * 1024,
    bodyMemoryBytes: 256 * 1024,
    models: [],
    ...overrides,
  };
}

/** A log that keeps what it is given. */
export function quietLog(): Log & { events: { level: string; obj: object; msg: string }[] } {
  const events: { level: string; obj: object; msg: string }[] = [];
  const keep = (level: string) => (obj: object, msg: string) => void events.push({ level, obj, msg });
  return { events, debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error') };
}

/** Targets whose state the test sets; nextChange wakes on every setState. */
export function makeFakeTargets(initial: Array<Partial<TargetView> & { name: string; port: number }>): GatewayTargets & {
  setState(name: string, state: TargetState): void;
  update(name: string, patch: Partial<TargetView>): void;
  /** How many times a request has started waiting for a change of `name` (it waits again after each change it sees). */
  waits(name: string): number;
} {
  const views = new Map<string, TargetView>();
  for (const t of initial) {
    views.set(t.name, { aliases: [], host: '127.0.0.1', apiKey: null, enabled: true, state: 'ready', notStartedYet: false, restarts: 0, load: null, onDemand: false, maxConcurrent: null, maxQueue: 256, lastExitCode: null, reason: '', ...t });
  }
  const waiters = new Map<string, Set<() => void>>();
  const waitCounts = new Map<string, number>();
  const wake = (name: string) => {
    for (const w of [...(waiters.get(name) ?? [])]) w();
  };
  return {
    list: () => [...views.values()].map((v) => ({ ...v })),
    get: (name) => {
      const v = views.get(name);
      return v ? { ...v } : undefined;
    },
    nextChange(name, timeoutMs, signal) {
      waitCounts.set(name, (waitCounts.get(name) ?? 0) + 1);
      return new Promise((resolve) => {
        const set = waiters.get(name) ?? new Set();
        waiters.set(name, set);
        const done = (changed: boolean) => {
          clearTimeout(timer);
          set.delete(onWake);
          signal?.removeEventListener('abort', onAbort);
          resolve(changed);
        };
        const onWake = () => done(true);
        const onAbort = () => done(false);
        const timer = setTimeout(() => done(false), timeoutMs);
        set.add(onWake);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },
    setState(name, state) {
      views.get(name)!.state = state;
      wake(name);
    },
    update(name, patch) {
      Object.assign(views.get(name)!, patch);
      wake(name);
    },
    waits: (name) => waitCounts.get(name) ?? 0,
  };
}

export interface Upstream {
  port: number;
  /** Requests seen: method, url, headers, body. */
  seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

/** A small HTTP server standing in for llama-server; `handler` answers after the body is read. */
export async function startUpstream(
  handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  },
): Promise<Upstream> {
  const seen: Upstream['seen'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // Decoded whole: a character may be split between chunks.
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** One request with node:http (no client-side retries or pooling); resolves with status, headers and body text. */
export function rawRequest({
  port,
  method = 'POST',
  path,
  headers = {},
  body,
}: {
  port: number;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string; json: () => any }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { 'content-type': 'application/json', ...headers }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Opens a raw TCP connection. */
export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `check()` holds (polled every 5 ms); rejects naming `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}
