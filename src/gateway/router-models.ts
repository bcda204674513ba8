// llama.cpp router mode's model API, served by the gateway so tools written
// for the router work against us: `GET /models` (each model and its status),
// `POST /models/load`, `POST /models/unload` ({"model": name}), and
// llama-swap's `GET /running`. Names and aliases are resolved as requests are.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendError } from './error-shapes.ts';
import type { RouteTable } from './route-table.ts';
import type { GatewayTargets, TargetView } from './targets.ts';

/** The loader behind the load and unload routes. */
export interface RouterModels {
  load(name: string, why: string): Promise<{ ok: true } | { ok: false; reason: string }>;
  unload(name: string, why: string): Promise<void>;
}

/** The router's own small bodies: `{"model": "..."}`. */
const MAX_ROUTER_BODY = 64 * 1024;

/** The router's status words for our states. */
export function routerStatus(state: TargetView['state']): 'loaded' | 'loading' | 'unloaded' {
  if (state === 'ready') return 'loaded';
  if (['starting', 'waiting', 'restarting', 'backoff', 'failing'].includes(state)) return 'loading';
  return 'unloaded';
}

/** `GET /models`: the router's list shape, one entry per instance. */
export function makeRouterModelList({ targets, startedAt }: { targets: GatewayTargets; startedAt: Date }): object {
  const created = Math.floor(startedAt.getTime() / 1000);
  const data = targets.list().map((t) => ({
    id: t.name,
    aliases: t.aliases,
    tags: [],
    object: 'model',
    owned_by: 'llamacpp',
    created,
    status: { value: routerStatus(t.state), args: [], ...(t.state === 'fatal' ? { failed: true, exit_code: t.lastExitCode ?? 1 } : {}) },
    state: t.state,
    on_demand: t.onDemand,
  }));
  return { data, object: 'list' };
}

/** llama-swap's `GET /running`: the instances that hold a model now, or are getting one. */
export function makeRunningList({ targets }: { targets: GatewayTargets }): object {
  const running = targets.list().filter((t) => routerStatus(t.state) !== 'unloaded');
  return { running: running.map((t) => ({ model: t.name, state: t.state, aliases: t.aliases })) };
}

/** `POST /models/load` and `POST /models/unload`. */
export function answerLoadUnload({ action, req, res, targets, routeTable, models }: {
  action: 'load' | 'unload';
  req: IncomingMessage;
  res: ServerResponse;
  targets: GatewayTargets;
  routeTable: RouteTable;
  models: RouterModels | undefined;
}): void {
  readSmallJson(req).then(
    async (body) => {
      const model = body !== null && typeof body === 'object' && typeof (body as { model?: unknown }).model === 'string' ? (body as { model: string }).model : null;
      if (model === null) return refuse(res, 400, 'expected a JSON body {"model": "<name>"}');
      const name = routeTable.resolveExact(model);
      const target = name === null ? undefined : targets.get(name);
      if (name === null || target === undefined) return refuse(res, 404, `model "${model}" is not found`);
      if (models === undefined) return refuse(res, 503, 'models are not loaded on demand here');
      const status = routerStatus(target.state);
      if (action === 'load') {
        if (status !== 'unloaded') return refuse(res, 400, 'model is already running');
        const answer = await models.load(name, 'POST /models/load');
        if (!answer.ok) return refuse(res, 503, `model "${model}" cannot be loaded: ${answer.reason}`);
      } else {
        if (status === 'unloaded') return refuse(res, 400, 'model is not running');
        // Like the router: the answer comes now, the unload (a drain first) goes on.
        void models.unload(name, 'POST /models/unload').catch(() => undefined);
      }
      sendJsonOk(res, { success: true });
    },
    (err: Error) => refuse(res, 400, err.message),
  );
}

function refuse(res: ServerResponse, status: 400 | 404 | 503, message: string): void {
  sendError({ res, flavor: 'openai', status, message });
}

function sendJsonOk(res: ServerResponse, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readSmallJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      text += chunk;
      if (text.length > MAX_ROUTER_BODY) {
        req.destroy();
        reject(new Error(`body longer than ${MAX_ROUTER_BODY} bytes`));
      }
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new Error('request body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}
