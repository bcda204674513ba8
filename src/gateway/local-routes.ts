// The routes the gateway answers itself: Claude Code's startup probes and
// telemetry, health, the model list and metrics. None touches an instance.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BodyBudget } from './body-budget.ts';
import type { InstanceRequestStats } from './in-flight.ts';
import type { GatewayMetrics, GpuMetricsView } from './metrics.ts';
import { answerLoadUnload, makeRouterModelList, makeRunningList, type RouterModels } from './router-models.ts';
import type { RouteTable } from './route-table.ts';
import type { LocalRoute } from './routes.ts';
import type { GatewayTargets, TargetView } from './targets.ts';

export interface LocalContext {
  targets: GatewayTargets;
  routeTable: RouteTable;
  metrics: GatewayMetrics;
  stats(name: string): InstanceRequestStats;
  /** The memory request bodies share (for /metrics). */
  bodies: Pick<BodyBudget, 'used' | 'capacity' | 'waiting'>;
  /** When the gateway started (the models' `created` time). */
  startedAt: Date;
  /** The GPUs for /metrics; absent: none shown. */
  gpu?: () => GpuMetricsView | null;
  /** The on-demand loader behind the router API's load and unload. */
  models?: RouterModels;
}

/** Answers one local route. */
export function answerLocal({ route, req, res, ctx }: { route: LocalRoute; req: IncomingMessage; res: ServerResponse; ctx: LocalContext }): void {
  const head = req.method === 'HEAD';
  switch (route) {
    case 'root':
    case 'hello':
      return sendJson({ res, status: 200, body: { status: 'ok', service: 'infer-dev supervisor gateway' }, head });
    case 'telemetry':
      // Read and discard the body, then answer; nothing is kept or forwarded.
      req.resume();
      req.once('end', () => sendJson({ res, status: 200, body: {}, head }));
      return;
    case 'health':
      return answerHealth({ res, ctx, head });
    case 'models':
      return sendJson({ res, status: 200, body: makeModelList(ctx), head });
    case 'router-models':
      return sendJson({ res, status: 200, body: makeRouterModelList(ctx), head });
    case 'running':
      return sendJson({ res, status: 200, body: makeRunningList(ctx), head });
    case 'router-load':
    case 'router-unload':
      return answerLoadUnload({ action: route === 'router-load' ? 'load' : 'unload', req, res, targets: ctx.targets, routeTable: ctx.routeTable, models: ctx.models });
    case 'metrics': {
      const text = ctx.metrics.render({ targets: ctx.targets.list(), stats: ctx.stats, bodies: ctx.bodies, gpu: ctx.gpu?.() });
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
  }
}

// 200 once every enabled instance is ready, 503 before; the body lists every instance's state.
function answerHealth({ res, ctx, head }: { res: ServerResponse; ctx: LocalContext; head: boolean }): void {
  const targets = ctx.targets.list();
  const enabled = targets.filter((t) => t.enabled);
  // An idle instance is as it should be: it loads at its first request.
  const ready = enabled.every((t) => t.state === 'ready' || t.state === 'idle');
  const body = {
    status: ready ? 'ok' : 'unavailable',
    instances: targets.map((t) => ({ name: t.name, state: t.state, enabled: t.enabled, ...ctx.stats(t.name) })),
  };
  sendJson({ res, status: ready ? 200 : 503, body, head });
}

/** `GET /v1/models`: Anthropic's list shape with OpenAI's fields too, each id with its instance and state. */
function makeModelList(ctx: Pick<LocalContext, 'targets' | 'routeTable' | 'startedAt'>): object {
  const byName = new Map<string, TargetView>(ctx.targets.list().map((t) => [t.name, t]));
  const created = Math.floor(ctx.startedAt.getTime() / 1000);
  const data = ctx.routeTable.ids.map(({ id, instance, via }) => ({
    id,
    type: 'model',
    object: 'model',
    display_name: via === 'pattern' ? `${id} → ${instance}` : id,
    created_at: ctx.startedAt.toISOString(),
    created,
    owned_by: 'infer-dev',
    instance,
    state: byName.get(instance)?.state ?? 'stopped',
    match: via,
  }));
  return { object: 'list', data, has_more: false, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null };
}

function sendJson({ res, status, body, head }: { res: ServerResponse; status: number; body: unknown; head: boolean }): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(head ? undefined : text);
}
