// One request through the gateway: match the route, check the key, answer
// locally or read the body (within the body budget), pick the instance from `model`, wait at the drain
// gate and for readiness (bounded), forward, and account for it. Every refusal
// is an error in the client's SDK shape; the hot path (gate open, instance
// ready) does no waiting and allocates no timers.
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { BodyBudget } from './body-budget.ts';
import { getErrorFlavor, makeStreamErrorEvent, sendError, type ErrorFlavor } from './error-shapes.ts';
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
import type { RouterModels } from './router-models.ts';
import type { RequestSlots } from './slots.ts';
import type { GatewayTargets, TargetView } from './targets.ts';
import type { Log } from '../logging/log.ts';
import type { UiRoutes } from '../ui/http.ts';

/** A connection refused by an instance the supervisor still thinks ready is retried this often (the crash is noticed meanwhile). */
const MAX_REFUSED_ATTEMPTS = 3;
/** How long a refused connection waits for the supervisor to notice the crash before trying again. */
const REFUSED_RECHECK_MS = 1000;
/**
 * A connection reset before any answer is taken as the instance dying under the request when the supervisor sees it
 * leave `ready` within this long (its exit is noticed in milliseconds); then the request is sent again once, after the
 * restart. Later than that, the instance is alive and the reset is its answer: 502.
 */
const DEATH_NOTICE_MS = 1000;
/** While a request waits for a load, look again (and send a keep-alive comment) this often. */
const LOAD_RECHECK_MS = 5000;
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
  /** Loading on demand (absent: every instance is started at boot and stays). */
  lifecycle?: GatewayLifecycle & RouterModels;
  /** max_concurrent / max_queue per instance. */
  slots: RequestSlots;
  /** The dashboard's routes (absent: /ui answers 404). */
  ui?: () => UiRoutes | null;
}

/** What the gateway asks of the on-demand loader. */
export interface GatewayLifecycle {
  /** Should a request for `name` load it first (it is idle, or failed on demand a while ago)? */
  wantsLoad(name: string): boolean;
  /** Loads `name` (making room); resolves once its start is under way, or says why it cannot. */
  load(name: string, why: string): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** A request for `name` arrived (it waits for the instance, or is forwarded) / is answered. */
  begin(name: string): void;
  end(name: string): void;
}

/** Builds the server's request listener. */
export function makeRequestHandler(deps: HandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { targets, inFlight, metrics, log } = deps;
  const debug = log.isLevelEnabled?.('debug') ? log.debug.bind(log) : null;
  const localContext = { targets, metrics, bodies: deps.bodyBudget, startedAt: deps.startedAt, gpu: deps.gpu, models: deps.lifecycle, stats: (name: string) => inFlight.stats(name) };

  const refuse = ({ res, flavor, refusal, instance, started, head = false }: { res: ServerResponse; flavor: ErrorFlavor; refusal: Refusal; instance: string; started: number; head?: boolean }) => {
    // A stream held for a load has sent its headers and keep-alive comments: it ends with an error event instead.
    if (res.headersSent && !res.writableEnded) res.end(makeStreamErrorEvent({ flavor, message: refusal.message }));
    else sendError({ res, flavor, status: refusal.status, message: refusal.message, headers: refusal.headers, head });
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
    if (match.kind === 'ui') {
      const ui = deps.ui?.();
      if (!ui) return refuse({ res, flavor, refusal: { status: 404, message: 'the dashboard is not served by this gateway' }, instance: '', started, head });
      return ui.handle(match.route, req, res, { keyed: config.plan.apiKey !== null });
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
    // From here to its answer the request wants this instance: a swap in its exclusive group waits for it (no thrash).
    deps.lifecycle?.begin(name);
    try {
      await serveFrom({ req, res, config, flavor, pathname, started, body, fields, deadline, signal, name });
    } finally {
      deps.lifecycle?.end(name);
    }
  }

  // Waits for `name` (loading it on demand), takes a slot and forwards; retries while it restarts.
  async function serveFrom({
    req,
    res,
    flavor,
    pathname,
    started,
    body,
    fields,
    deadline,
    signal,
    name,
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
    name: string;
  }): Promise<void> {
    const history: WaitHistory = { sawTransition: false, usedStoppedGrace: false };
    const lifecycle = deps.lifecycle;
    let refusedAttempts = 0;
    let resentAfterDeath = false;
    let loading = false;
    for (;;) {
      if (res.destroyed) return;
      if (!inFlight.isOpen(name) && !(await inFlight.whenOpen(name, signal()))) return;
      const target = targets.get(name);
      // On demand: the request that needs an idle instance (or a failed one, after a while) loads it.
      if (target !== undefined && lifecycle?.wantsLoad(name)) {
        loading = true;
        const answer = await lifecycle.load(name, `a request for ${JSON.stringify(fields.model)}`);
        if (!answer.ok) {
          const refusal = { status: 503 as const, message: `instance "${name}" cannot be loaded: ${answer.reason}`, headers: { 'retry-after': String(RETRY_AFTER_S) } };
          return refuse({ res, flavor, refusal, instance: name, started });
        }
        continue;
      }
      // A load has no fixed limit: the instance's own stall rule ends a load that makes no progress.
      const unbounded = loading || target?.onDemand === true;
      const remaining = unbounded ? Number.POSITIVE_INFINITY : deadline - performance.now();
      const readiness = decideReadiness({ name, target, remainingMs: remaining, history });
      let waitFor: number;
      if (readiness.act === 'refuse') return refuse({ res, flavor, refusal: readiness.refusal, instance: name, started });
      if (readiness.act === 'wait') {
        if (readiness.grace) history.usedStoppedGrace = true;
        else history.sawTransition = true;
        waitFor = Math.min(readiness.ms, LOAD_RECHECK_MS);
        // A stream held for a load gets its headers and a comment now and then: proxies keep it, the client sees progress.
        if (unbounded && fields.stream && !res.destroyed) sendLoadingComment({ res, name, target });
      } else {
        // The gate may have closed while we looked: then wait at it again.
        if (!inFlight.isOpen(name)) continue;
        const slot = deps.slots.acquire(name, target!.maxConcurrent, target!.maxQueue, signal);
        const release = typeof slot === 'function' ? slot : await slot;
        if (release === 'aborted') return;
        if (release === 'full') {
          const refusal = { status: 429 as const, message: `instance "${name}" has ${target!.maxConcurrent} requests in flight and ${target!.maxQueue} waiting (max_concurrent, max_queue)`, headers: { 'retry-after': String(RETRY_AFTER_S) } };
          return refuse({ res, flavor, refusal, instance: name, started });
        }
        // The wait for a slot may have outlived the instance's state: look again before forwarding.
        if (typeof slot !== 'function' && targets.get(name)?.state !== 'ready') {
          release();
          continue;
        }
        const run = target!.restarts;
        const end = inFlight.begin(name);
        let outcome: ForwardOutcome;
        try {
          outcome = await forwardRequest({ req, res, body, target: target!, agent: deps.agent, flavor, oneShot: fields.stream });
        } finally {
          release();
        }
        end();
        // Reset before any answer because the instance died (kill -9, a crash, its listen socket closed with this
        // connection still in its backlog): nothing was answered, so it is sent again once, to the restarted instance.
        // Only once: a request that itself crashes the server gets its 502 the second time.
        if (outcome.kind === 'failed' && !resentAfterDeath && (await diedUnder(name, run, signal))) {
          resentAfterDeath = true;
          metrics.observeUpstreamError({ instance: name, kind: 'failed' });
          log.warn({ event: 'gateway-upstream-died', instance: name, path: pathname, error: outcome.error.code ?? outcome.error.message }, `gateway: ${name} exited under a request; sending it again after the restart`);
          history.sawTransition = true;
          continue;
        }
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

  // Whether the run a request was sent to (`run`: its restart count then) has ended or ends within DEATH_NOTICE_MS.
  async function diedUnder(name: string, run: number, signal: () => AbortSignal): Promise<boolean> {
    const ended = () => {
      const now = targets.get(name);
      return now === undefined || now.state !== 'ready' || now.restarts !== run;
    };
    if (ended()) return true;
    const deadline = performance.now() + DEATH_NOTICE_MS;
    for (let left = DEATH_NOTICE_MS; left > 0; left = deadline - performance.now()) {
      if (!(await targets.nextChange(name, left, signal()))) return false;
      if (ended()) return true;
    }
    return false;
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

// A held stream's keep-alive: the SSE headers once, then a comment saying how far the load is (SDKs skip comments).
function sendLoadingComment({ res, name, target }: { res: ServerResponse; name: string; target: TargetView | undefined }): void {
  if (!res.headersSent) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.flushHeaders();
  }
  const progress = target?.load ? ` ${target.load.percent}% (${target.load.phase})` : '';
  res.write(`: loading ${name}: ${target?.state ?? 'gone'}${progress}\n\n`);
}
