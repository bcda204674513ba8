// The dashboard's routes on the gateway's port: the page (GET /ui), its live
// state (GET /ui/events, Server-Sent Events), one instance's log as it is
// written (GET /ui/log?name=, SSE), and the actions (POST /ui/action), which
// run the control socket's own commands. Reads follow the gateway's key rule;
// an action also needs the page's own header (a cross-site form or fetch
// cannot send it without a CORS preflight, which is never granted), a
// same-origin Origin when one is sent, and, with no api_key, a loopback peer.
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { ControlHandler } from '../control/server.ts';
import { followLog } from '../supervise/log-reader.ts';
import type { Dashboard } from './dashboard.ts';
import { streamModelEvents } from './models-sse.ts';

/** The header every action must carry. */
export const ACTION_HEADER = 'x-supervisor-ui';
/** The commands a page may run. */
export const ACTIONS: readonly string[] = ['start', 'stop', 'restart', 'load', 'unload'];
/** Lines of a log sent when a page opens it. */
const LOG_HISTORY_LINES = 200;
/** An idle stream sends a comment this often, so proxies and the page see it alive. */
const KEEPALIVE_MS = 15_000;
/** Longest action body read. */
const MAX_ACTION_BYTES = 4096;

export type UiRoute = 'ui-page' | 'ui-events' | 'ui-log' | 'ui-action' | 'models-sse';

export interface UiRoutes {
  handle(route: UiRoute, req: IncomingMessage, res: ServerResponse, access: { keyed: boolean }): void;
}

// The built page (scripts/build.mjs writes it beside the bundle); read once, gzipped once.
function loadPage(): { plain: Buffer; gzip: Buffer } | null {
  try {
    const plain = readFileSync(new URL('./ui/index.html', import.meta.url));
    return { plain, gzip: gzipSync(plain) };
  } catch {
    return null;
  }
}

const isLoopback = (address: string | undefined) => address !== undefined && (address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.'));

export function makeUiRoutes({
  dashboard,
  control,
  routed = () => true,
  page = loadPage(),
}: {
  dashboard: Dashboard;
  control: ControlHandler;
  /** Whether an instance is one the gateway routes to (not a system service such as sshd), for /models/sse. */
  routed?: (name: string) => boolean;
  page?: { plain: Buffer; gzip: Buffer } | null;
}): UiRoutes {
  return {
    handle(route, req, res, access) {
      switch (route) {
        case 'ui-page':
          return sendPage(req, res, page);
        case 'ui-events':
          return streamEvents(req, res, dashboard);
        case 'ui-log':
          return streamLog(req, res, control);
        case 'ui-action':
          return runAction(req, res, control, access);
        case 'models-sse':
          return streamModelEvents(req, res, { dashboard, routed });
      }
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function sendPage(req: IncomingMessage, res: ServerResponse, page: { plain: Buffer; gzip: Buffer } | null): void {
  if (page === null) return sendJson(res, 503, { error: 'the dashboard was not built into this supervisor (npm run build writes dist/ui/index.html)' });
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? page.gzip : page.plain;
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-cache',
    // Everything is inline and same-origin; nothing may be fetched from elsewhere, and no other site may frame it.
    'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    ...(gzip ? { 'content-encoding': 'gzip', vary: 'accept-encoding' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function openStream(req: IncomingMessage, res: ServerResponse): { write(text: string): void; closed: AbortSignal } {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
  res.flushHeaders();
  const abort = new AbortController();
  const keepalive = setInterval(() => res.write(': keep-alive\n\n'), KEEPALIVE_MS);
  keepalive.unref();
  const close = () => {
    clearInterval(keepalive);
    abort.abort();
  };
  res.once('close', close);
  req.once('close', close);
  return { write: (text) => void (res.writableEnded || res.write(text)), closed: abort.signal };
}

function streamEvents(req: IncomingMessage, res: ServerResponse, dashboard: Dashboard): void {
  const stream = openStream(req, res);
  const unsubscribe = dashboard.subscribe({ send: (event, data) => stream.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`) });
  stream.closed.addEventListener('abort', unsubscribe, { once: true });
}

// History first, then every complete line as it lands (followLog polls the file and follows rotation).
function streamLog(req: IncomingMessage, res: ServerResponse, control: ControlHandler): void {
  const name = new URL(req.url ?? '/', 'http://x').searchParams.get('name') ?? '';
  const signal = new AbortController().signal;
  void (async () => {
    let head: { file: string; lines: string[] };
    try {
      head = (await control('logs', { name, lines: LOG_HISTORY_LINES }, { signal })) as { file: string; lines: string[] };
    } catch (err) {
      return sendJson(res, 404, { error: (err as Error).message });
    }
    const stream = openStream(req, res);
    const send = (lines: string[] | undefined) => lines && lines.length > 0 && stream.write(`event: lines\ndata: ${JSON.stringify(lines)}\n\n`);
    stream.write(`event: file\ndata: ${JSON.stringify(head.file)}\n\n`);
    send(head.lines);
    let carry = '';
    try {
      for await (const chunk of followLog(head.file, stream.closed)) {
        const lines = (carry + chunk).split('\n');
        carry = lines.pop()!;
        send(lines);
      }
    } catch (err) {
      if (!stream.closed.aborted) stream.write(`event: error\ndata: ${JSON.stringify((err as Error).message)}\n\n`);
    }
    if (!res.writableEnded) res.end();
  })().catch(() => res.destroy());
}

// Why an action is refused before it runs, or null.
export function refuseAction(req: IncomingMessage, { keyed }: { keyed: boolean }): { status: number; message: string } | null {
  if (req.headers[ACTION_HEADER] !== '1') return { status: 403, message: `actions need the dashboard's ${ACTION_HEADER} header` };
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let host: string | null = null;
    try {
      host = new URL(origin).host;
    } catch {
      host = null;
    }
    if (host !== req.headers.host) return { status: 403, message: `cross-site action refused (origin ${origin})` };
  } else if (origin === 'null') return { status: 403, message: 'cross-site action refused (opaque origin)' };
  if (!keyed && !isLoopback(req.socket.remoteAddress)) return { status: 403, message: 'without a gateway api_key, actions are accepted from loopback only' };
  return null;
}

function runAction(req: IncomingMessage, res: ServerResponse, control: ControlHandler, access: { keyed: boolean }): void {
  const refusal = refuseAction(req, access);
  if (refusal) {
    req.resume();
    return sendJson(res, refusal.status, { ok: false, error: refusal.message });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= MAX_ACTION_BYTES) chunks.push(chunk);
  });
  req.once('end', () => {
    let body: { action?: unknown; name?: unknown };
    try {
      if (size > MAX_ACTION_BYTES) throw new Error('too large');
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return sendJson(res, 400, { ok: false, error: `expected a JSON body {"action": one of ${ACTIONS.join('|')}, "name": "instance"} of at most ${MAX_ACTION_BYTES} bytes` });
    }
    const { action, name } = body ?? {};
    if (typeof action !== 'string' || !ACTIONS.includes(action)) return sendJson(res, 400, { ok: false, error: `"action" must be one of ${ACTIONS.join(', ')}` });
    if (typeof name !== 'string' || name === '') return sendJson(res, 400, { ok: false, error: '"name" must name an instance' });
    const signal = new AbortController().signal;
    control(action, { names: [name] }, { signal }).then(
      (result) => sendJson(res, 200, { ok: true, result }),
      (err: Error & { exitCode?: number }) => sendJson(res, 409, { ok: false, error: err.message, exit_code: err.exitCode ?? 1 }),
    );
  });
}
