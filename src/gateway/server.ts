// The gateway's listener and its lifecycle: start, reload (new routes, and a
// new address if it moved), drain one instance for a restart, report its
// counters, close. Requests are handled in request-handler.ts.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SupervisorError } from '../errors.ts';
import type { GatewayPlan } from '../config/gateway-plan.ts';
import { BodyBudget } from './body-budget.ts';
import { InFlightTracker, type DrainHandle, type InstanceRequestStats } from './in-flight.ts';
import { GatewayMetrics, type GpuMetricsView } from './metrics.ts';
import { makeUpstreamAgent } from './proxy.ts';
import { makeRequestHandler, type GatewayLifecycle, type ServingConfig } from './request-handler.ts';
import type { RouterModels } from './router-models.ts';
import { RequestSlots } from './slots.ts';
import { makeKeyCheck } from './request-auth.ts';
import { makeRouteTable } from './route-table.ts';
import type { GatewayTargets } from './targets.ts';
import { holdYoungGeneration } from './young-generation.ts';
import type { Log } from '../logging/log.ts';
import type { UiRoutes } from '../ui/http.ts';

/** Connection limits that keep slow or idle clients from holding the gateway. */
export interface GatewayTimeouts {
  /** A client has this long to send its request headers (slow-loris). */
  headersMs: number;
  /** ... and this long for the whole request, body included. */
  requestMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveMs: number;
  /** On close, requests still running get this long before their connections are cut. */
  closeGraceMs: number;
}

const DEFAULT_TIMEOUTS: Readonly<GatewayTimeouts> = Object.freeze({
  headersMs: 10_000,
  // A 32 MiB body over a slow link; responses are not limited (long prefills, long streams).
  requestMs: 120_000,
  keepAliveMs: 30_000,
  // Fits inside docker stop's 10 s together with the instances' own stop.
  closeGraceMs: 1_000,
});

export interface Gateway {
  /** Where it listens; null while disabled. */
  readonly address: { host: string; port: number } | null;
  /** In-flight and total requests of one instance, for `supervisor status`. */
  stats(name: string): InstanceRequestStats;
  /** Holds new requests for `name` and waits for in-flight ones (up to drain_timeout_s); call `release()` once it has restarted. */
  drain(name: string, timeoutMs?: number): Promise<DrainHandle>;
  /** Drains `names`, runs `fn` (the restart), then releases them, whatever `fn` does. */
  withDrain<T>(names: readonly string[], fn: () => Promise<T>): Promise<T>;
  /** Applies a new plan: routes rebuilt from the targets as they are now; listener moved, started or stopped as needed. */
  reload(plan: GatewayPlan): Promise<void>;
  /** Stops listening; running requests get `closeGraceMs`. Safe to call twice. */
  close(): Promise<void>;
}

/** Starts the gateway (listening only when `plan.enabled`). */
export async function startGateway({
  plan,
  targets,
  log,
  timeouts = DEFAULT_TIMEOUTS,
  gpu,
  lifecycle,
  ui,
}: {
  plan: GatewayPlan;
  targets: GatewayTargets;
  log: Log;
  timeouts?: Partial<GatewayTimeouts>;
  /** The GPUs for /metrics. */
  gpu?: () => GpuMetricsView | null;
  /** Loading on demand. */
  lifecycle?: GatewayLifecycle & RouterModels;
  /** The dashboard's routes. */
  ui?: () => UiRoutes | null;
}): Promise<Gateway> {
  holdYoungGeneration();
  const limits: GatewayTimeouts = { ...DEFAULT_TIMEOUTS, ...timeouts };
  const inFlight = new InFlightTracker();
  const metrics = new GatewayMetrics();
  const agent = makeUpstreamAgent();
  const bodyBudget: BodyBudget = new BodyBudget(plan.bodyMemoryBytes, { onIdle: makeBodyMemoryReturn(() => bodyBudget.used === 0) });
  let serving = makeServingConfig(plan, targets);
  const slots = new RequestSlots();
  const handler = makeRequestHandler({ current: () => serving, targets, inFlight, bodyBudget, metrics, agent, log, startedAt: new Date(), gpu, lifecycle, slots, ui });
  let server: http.Server | null = null;
  let address: { host: string; port: number } | null = null;
  let closed: Promise<void> | null = null;

  const listen = async (next: GatewayPlan) => {
    server = await listenOn({ plan: next, handler, limits });
    const bound = server.address() as AddressInfo;
    address = { host: next.host, port: bound.port };
    log.info({ event: 'gateway-listening', host: next.host, port: bound.port }, `gateway listening on ${next.host}:${bound.port}`);
  };
  const stopListening = async () => {
    const current = server;
    server = null;
    address = null;
    if (current) await closeServer(current, limits.closeGraceMs);
  };

  if (plan.enabled) await listen(plan);

  const gateway: Gateway = {
    get address() {
      return address;
    },
    stats: (name) => ({ ...inFlight.stats(name), queued: slots.waiting(name) }),
    async drain(name, timeoutMs = serving.plan.drainTimeoutMs) {
      const handle = await inFlight.drain(name, timeoutMs);
      const level = handle.drained ? 'info' : 'warn';
      log[level](
        { event: 'gateway-drain', instance: name, drained: handle.drained, inflight: handle.inflight, waited_ms: handle.waitedMs },
        handle.drained ? `gateway: ${name} drained in ${handle.waitedMs} ms` : `gateway: ${name} still has ${handle.inflight} request(s) in flight after ${handle.waitedMs} ms; restarting anyway`,
      );
      return handle;
    },
    async withDrain(names, fn) {
      const handles = await Promise.all(names.map((name) => gateway.drain(name)));
      try {
        return await fn();
      } finally {
        for (const handle of handles) handle.release();
      }
    },
    async reload(next) {
      const previous = serving.plan;
      serving = makeServingConfig(next, targets);
      bodyBudget.setCapacity(next.bodyMemoryBytes);
      const moved = previous.host !== next.host || previous.port !== next.port;
      if (server && (!next.enabled || moved)) await stopListening();
      if (next.enabled && !server) await listen(next);
    },
    close() {
      closed ??= (async () => {
        await stopListening();
        agent.destroy();
      })();
      return closed;
    },
  };
  return gateway;
}

/** Bytes of bodies after which an idle gateway returns their memory (smaller bursts leave little behind). */
const RETURN_AFTER_BYTES = 64 * 1024 * 1024;
/** ... once no body has been read for this long. */
const RETURN_IDLE_MS = 1000;

// Counts the bytes of bodies released since memory was last returned; once that is at
// least RETURN_AFTER_BYTES and no body has been held for RETURN_IDLE_MS, returns it.
function makeBodyMemoryReturn(isIdle: () => boolean): (releasedBytes: number) => void {
  let since = 0;
  let timer: NodeJS.Timeout | null = null;
  return (releasedBytes) => {
    since += releasedBytes;
    if (since < RETURN_AFTER_BYTES || timer) return;
    timer = setTimeout(() => {
      timer = null;
      // Busy again: the next idle moment tries again.
      if (!isIdle()) return;
      since = 0;
      void import('./memory-return.ts').then(({ returnFreedMemory }) => returnFreedMemory());
    }, RETURN_IDLE_MS);
    timer.unref();
  };
}

// The route table and key check are computed here, once per (re)load.
function makeServingConfig(plan: GatewayPlan, targets: GatewayTargets): ServingConfig {
  const routeTable = makeRouteTable({
    targets: targets.list().map(({ name, aliases }) => ({ name, aliases })),
    models: plan.models,
    defaultInstance: plan.defaultInstance,
  });
  return { plan, routeTable, checkKey: makeKeyCheck(plan.apiKey) };
}

function listenOn({ plan, handler, limits }: { plan: GatewayPlan; handler: http.RequestListener; limits: GatewayTimeouts }): Promise<http.Server> {
  const server = http.createServer(
    {
      headersTimeout: limits.headersMs,
      requestTimeout: limits.requestMs,
      keepAliveTimeout: limits.keepAliveMs,
      // Timeouts are checked this often; the default 30 s would let a slow client stay far past headersTimeout.
      connectionsCheckingInterval: Math.min(1000, limits.headersMs),
      noDelay: true,
    },
    handler,
  );
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'the address is in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new SupervisorError(`gateway cannot listen on ${plan.host}:${plan.port}: ${why}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ host: plan.host, port: plan.port }, () => {
      server.off('error', onError);
      resolve(server);
    });
  });
}

// Stop accepting, close idle connections now and busy ones after the grace period.
function closeServer(server: http.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
