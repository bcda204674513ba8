// One request through the gateway: match the route, check the key, answer
// locally or read the body (within the body budget), pick the instance from `model`, wait at the drain
// gate and for readiness (bounded), forward, and account for it. Every refusal
// is an error in the client's SDK shape; the hot path (gate open, instance
// ready) does no waiting and allocates no timers.
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { BodyBudget } from './body-budget.ts';
import { getErrorFlavor, sendError, type ErrorFlavor } from './error-shapes.ts';
import type { GatewayPlan } from '../config/gateway-plan.ts';
import type { InFlightTracker } from './in-flight.ts';
import { answerLocal } from './local-routes.ts';
import type { GatewayMetrics, GpuMetricsView } from './metrics.ts';
import { forwardRequest, type ForwardOutcome } from './proxy.ts';
import { decideReadiness, RETRY_AFTER_S, type Refusal, type WaitHistory } from './readiness.ts';
import { readBody, type HeldBody } from './read-body.ts';
import type { BodyFields } from './body-scan.ts';
import type { RouteTable } from './route-table.ts';
import { getPathname, matchRoute } from './routes.ts';
import type { GatewayTargets } from './targets.ts';
import type { Log } from '../logging/log.ts';

/** A connection refused by an instance the supervisor still thinks ready is retried this often (the crash is noticed meanwhile). */
const MAX_REFUSED_ATTEMPTS = 3;
/** How long a refused connection waits for the supervisor to notice the crash before trying again. */
const REFUSED_RECHECK_MS = 1000;
/** Status recorded for a client that went away before its answer was complete (nginx's convention). */
const CLIENT_CLOSED = 499;
/**
 * A body waits this long at most for room in the body budget (within wait_ready_s): the
 * server's requestTimeout (120 s) counts while a body is not read, and would answer 408 itself.
 */
const MAX_BODY_WAIT_MS = 30_000;

/** What requests are served with; replaced as a whole on reload. */
export interface ServingConfig {
  plan: GatewayPlan;
  routeTable: RouteTable;
  checkKey(headers: http.IncomingHttpHeaders): boolean;
}

export interface HandlerDeps {
  current(): ServingConfig;
  targets: GatewayTargets;
  inFlight: InFlightTracker;
  /** The memory all request bodies share. */
  bodyBudget: BodyBudget;
  metrics: GatewayMetrics;
  agent: http.Agent;
  log: Log;
  startedAt: Date;
  /** The GPUs for /metrics. */
  gpu?: () => GpuMetricsView | null;
}

/** Builds the server's request listener. */
export function makeRequestHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { targets, inFlight, metrics, log } = deps;
  const debug = log.isLevelEnabled?.('debug') ? log.debug.bind(log) : null;
  const localContext = { targets, metrics, bodies: deps.bodyBudget, startedAt: deps.startedAt, gpu: deps.gpu, stats: (name: string) => inFlight.stats(name) };

  const refuse = ({ res, flavor, refusal, instance, started, head = false }: { res: ServerResponse; flavor: ErrorFlavor; refusal: Refusal; instance: string; started: number; head?: boolean }) => {
    sendError({ res, flavor, status: refusal.status, message: refusal.message, headers: refusal.headers, head });
    metrics.observeRequest({ instance, status: refusal.status, seconds: (performance.now() - started) / 1000 });
  };

  return (req, res) => {
    const started = performance.now();
    // A client that vanishes mid-body must not become an unhandled 'error'.
    req.on('error', () => undefined);
    const pathname = getPathname(req.url);
    const flavor = getErrorFlavor(pathname);
    const method = req.method ?? 'GET';
    const match = matchRoute(method, pathname);
    const config = deps.current();
    const head = method === 'HEAD';
    if (match.kind === 'not-found') {
      return refuse({ res, flavor, refusal: { status: 404, message: `the gateway has no route ${method} ${pathname}` }, instance: '', started, head });
    }
    if (match.kind === 'method-not-allowed') {
      const refusal = { status: 405 as const, message: `${method} is not allowed on ${pathname} (allowed: ${match.allow})`, headers: { allow: match.allow } };
      return refuse({ res, flavor, refusal, instance: '', started, head });
    }
    if (match.auth && !config.checkKey(req.headers)) {
      const refusal = { status: 401 as const, message: 'missing or wrong API key: send it as x-api-key or Authorization: Bearer' };
      return refuse({ res, flavor, refusal, instance: '', started, head });
    }
    if (match.kind === 'local') return answerLocal({ route: match.route, req, res, ctx: { ...localContext, routeTable: config.routeTable } });
    void proxy({ req, res, config, flavor, pathname, started }).catch((err: Error) => {
      log.error({ event: 'gateway-internal-error', err }, `gateway: internal error: ${err.message}`);
      refuse({ res, flavor, refusal: { status: 500, message: `internal gateway error: ${err.message}` }, instance: '', started });
    });
  };

  async function proxy({ req, res, config, flavor, pathname, started }: { req: IncomingMessage; res: ServerResponse; config: ServingConfig; flavor: ErrorFlavor; pathname: string; started: number }): Promise<void> {
    // count_tokens is never held: Claude Code estimates locally when it fails.
    const waitMs = pathname === '/v1/messages/count_tokens' ? 0 : config.plan.waitReadyMs;
    const deadline = started + waitMs;
    let controller: AbortController | null = null;
    // Only a request that has to wait pays for an abort signal.
    const signal = () => {
      if (controller === null) {
        const created = new AbortController();
        controller = created;
        res.once('close', () => created.abort());
      }
      return controller.signal;
    };
    const read = await readBody(req, { maxBytes: config.plan.maxBodyBytes, budget: deps.bodyBudget, waitMs: Math.min(waitMs, MAX_BODY_WAIT_MS), signal });
    if (!read.ok) {
      if (read.reason === 'aborted') return;
      if (read.reason === 'invalid') return refuse({ res, flavor, refusal: { status: 400, message: read.message }, instance: '', started });
      if (read.reason === 'busy') {
        const held = Math.round(deps.bodyBudget.used / (1024 * 1024));
        const message = `the gateway already holds ${held} MiB of request bodies (body_memory_bytes ${deps.bodyBudget.capacity}); retry shortly`;
        return refuse({ res, flavor, refusal: { status: 503, message, headers: { 'retry-after': String(RETRY_AFTER_S) } }, instance: '', started });
      }
      const refusal = { status: 413 as const, message: `request body larger than max_body_bytes (${config.plan.maxBodyBytes})`, headers: { connection: 'close' } };
      return refuse({ res, flavor, refusal, instance: '', started });
    }
    const { body, fields } = read;
    try {
      await forwardToInstance({ req, res, config, flavor, pathname, started, body, fields, deadline, signal });
    } finally {
      body.release();
    }
  }

  // Picks the instance from the body's fields, waits for it (bounded) and forwards.
  async function forwardToInstance({
    req,
    res,
    config,
    flavor,
    pathname,
    started,
    body,
    fields,
    deadline,
    signal,
  }: {
    req: IncomingMessage;
    res: ServerResponse;
    config: ServingConfig;
    flavor: ErrorFlavor;
    pathname: string;
    started: number;
    body: HeldBody;
    fields: BodyFields;
    deadline: number;
    signal: () => AbortSignal;
  }): Promise<void> {
    const route = config.routeTable.resolve(fields.model);
    if (route === null) {
      const message = `no instance serves model ${JSON.stringify(fields.model)} and there is no default (known: ${config.routeTable.known.join(', ') || 'none'})`;
      return refuse({ res, flavor, refusal: { status: 404, message }, instance: '', started });
    }
    const name = route.instance;
    const history: WaitHistory = { sawTransition: false, usedStoppedGrace: false };
    let refusedAttempts = 0;
    for (;;) {
      if (res.destroyed) return;
      if (!inFlight.isOpen(name) && !(await inFlight.whenOpen(name, signal()))) return;
      const target = targets.get(name);
      const remaining = deadline - performance.now();
      const readiness = decideReadiness({ name, target, remainingMs: remaining, history });
      let waitFor: number;
      if (readiness.act === 'refuse') return refuse({ res, flavor, refusal: readiness.refusal, instance: name, started });
      if (readiness.act === 'wait') {
        if (readiness.grace) history.usedStoppedGrace = true;
        else history.sawTransition = true;
        waitFor = readiness.ms;
      } else {
        // The gate may have closed while we looked: then wait at it again.
        if (!inFlight.isOpen(name)) continue;
        const end = inFlight.begin(name);
        const outcome = await forwardRequest({ req, res, body, target: target!, agent: deps.agent, flavor, oneShot: fields.stream });
        end();
        const next = accountFor({ outcome, name, pathname, started });
        if (next === 'done') return;
        if (next !== 'retry') return refuse({ res, flavor, refusal: next, instance: name, started });
        // Refused: most likely it just crashed and the supervisor will notice; wait for that, then try again.
        if (++refusedAttempts >= MAX_REFUSED_ATTEMPTS) {
          const refusal = { status: 503 as const, message: `instance "${name}" refuses connections`, headers: { 'retry-after': String(RETRY_AFTER_S) } };
          return refuse({ res, flavor, refusal, instance: name, started });
        }
        history.sawTransition = true;
        waitFor = Math.max(50, Math.min(REFUSED_RECHECK_MS, remaining));
      }
      if (waitFor > 0 && !(await targets.nextChange(name, waitFor, signal())) && signal().aborted) return;
    }
  }

  // Records a forward's outcome; says whether the request is answered, should be retried, or gets a refusal.
  function accountFor({ outcome, name, pathname, started }: { outcome: ForwardOutcome; name: string; pathname: string; started: number }): 'done' | 'retry' | Refusal {
    const seconds = (performance.now() - started) / 1000;
    switch (outcome.kind) {
      case 'completed':
        metrics.observeRequest({ instance: name, status: outcome.status, seconds });
        debug?.({ event: 'gateway-request', instance: name, path: pathname, status: outcome.status, ms: Math.round(seconds * 1000) }, `${name} ${pathname} ${outcome.status}`);
        return 'done';
      case 'client-closed':
        metrics.observeRequest({ instance: name, status: CLIENT_CLOSED, seconds });
        return 'done';
      case 'broken':
        metrics.observeUpstreamError({ instance: name, kind: 'broken' });
        metrics.observeRequest({ instance: name, status: 502, seconds });
        log.warn({ event: 'gateway-upstream-broken', instance: name, path: pathname }, `gateway: ${outcome.error}`);
        return 'done';
      case 'failed': {
        metrics.observeUpstreamError({ instance: name, kind: 'failed' });
        const why = outcome.error.code ?? outcome.error.message;
        log.warn({ event: 'gateway-upstream-failed', instance: name, path: pathname, error: why }, `gateway: request to ${name} failed: ${why}`);
        return { status: 502, message: `instance "${name}" lost the connection: ${why}` };
      }
      case 'refused':
        metrics.observeUpstreamError({ instance: name, kind: 'refused' });
        return 'retry';
    }
  }
}
