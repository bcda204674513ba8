// The daemon's handle on the gateway: started, moved or stopped by each
// (re)load's `[gateway]` plan, loaded with `await import()` only once a plan
// enables it, and a no-op while it is off. Also: which instances a reload is
// about to restart (they are drained first) and the status columns.
import type { LaunchPlan } from '../config/instance-plan.ts';
import { launchKey, type Supervisor } from '../supervise/supervisor.ts';
import { GATEWAY_OFF, type GatewayPlan } from '../config/gateway-plan.ts';
import type { InstanceRequestStats } from './in-flight.ts';
import type { GpuMetricsView } from './metrics.ts';
import type { GatewayLifecycle } from './request-handler.ts';
import type { RouterModels } from './router-models.ts';
import type { Gateway } from './server.ts';
import type { Log } from '../logging/log.ts';
import type { ControlHandler } from '../control/server.ts';
import type { UiRoutes } from '../ui/http.ts';

export interface DaemonGateway {
  /** Applies a (re)loaded plan (undefined: off): starts the gateway on first enable, else reloads it (routes, address, on/off). */
  apply(plan: GatewayPlan | undefined): Promise<void>;
  /** Drains `names` (in-flight requests finish, new ones wait), runs `fn`, releases them; just `fn` while the gateway is off. */
  withDrain<T>(names: readonly string[], fn: () => Promise<T>): Promise<T>;
  /** The instance's request counters; null while the gateway has never run. */
  stats(name: string): InstanceRequestStats | null;
  /** Where it listens; null while off. */
  readonly address: { host: string; port: number } | null;
  close(): Promise<void>;
}

/** A gateway handle for the daemon; nothing of the gateway is loaded until a plan enables it. */
export function makeDaemonGateway({
  supervisor,
  log,
  gpu,
  lifecycle,
  control,
}: {
  supervisor: Pick<Supervisor, 'instances' | 'instance' | 'plan' | 'watchTransitions'>;
  log: Log;
  gpu?: () => GpuMetricsView | null;
  lifecycle?: GatewayLifecycle & RouterModels;
  /** The control socket's commands, which the dashboard (/ui) reads and acts through; absent: no dashboard. */
  control?: () => ControlHandler | null;
}): DaemonGateway {
  let gateway: Gateway | null = null;
  let ui: UiRoutes | null = null;
  // Applies run one after another, so two reloads cannot start two listeners.
  let queue: Promise<unknown> = Promise.resolve();
  return {
    apply(given) {
      const plan = given ?? GATEWAY_OFF;
      const run = queue.then(async () => {
        if (gateway) return gateway.reload(plan);
        if (!plan.enabled) return;
        const [{ startGateway }, { fromSupervisor }, { Dashboard }, { makeUiRoutes }] = await Promise.all([
          import('./server.ts'),
          import('./targets.ts'),
          import('../ui/dashboard.ts'),
          import('../ui/http.ts'),
        ]);
        const handler = control?.();
        // Made once, with the gateway: its timeline starts here (before the config's instances are started).
        if (handler)
          ui = makeUiRoutes({
            dashboard: new Dashboard({ control: handler, watchTransitions: (w) => supervisor.watchTransitions(w) }),
            control: handler,
            routed: (name) => supervisor.plan.instances.some((i) => i.name === name),
          });
        gateway = await startGateway({ plan, targets: fromSupervisor(supervisor), log, gpu, lifecycle, ui: () => ui });
      });
      queue = run.catch(() => undefined);
      return run;
    },
    withDrain: (names, fn) => (gateway && names.length > 0 ? gateway.withDrain(names, fn) : fn()),
    stats: (name) => gateway?.stats(name) ?? null,
    get address() {
      return gateway?.address ?? null;
    },
    close: async () => {
      await queue;
      await gateway?.close();
    },
  };
}

/**
 * The running instances `supervisor.reload(next)` will stop or restart (removed, disabled
 * or launch changed), so the daemon drains them first. Mirrors Supervisor.reload's rules.
 */
export function getInstancesToDrain(supervisor: Pick<Supervisor, 'instances' | 'plan'>, next: LaunchPlan): string[] {
  const configured = new Set(supervisor.plan.instances.map((i) => i.name));
  const wanted = new Map(next.instances.map((i) => [i.name, i]));
  return supervisor.instances
    .filter((instance) => configured.has(instance.name) && instance.state !== 'stopped' && instance.state !== 'fatal')
    .filter((instance) => {
      const plan = wanted.get(instance.name);
      return plan === undefined || !next.enabled || !plan.enabled || launchKey(plan) !== launchKey(instance.plan);
    })
    .map((instance) => instance.name);
}

/** Status rows with the gateway's `inflight` and `requests` per instance (null while the gateway has never run). */
export function addRequestStats<Row extends { name: string }>(rows: Row[], gateway: Pick<DaemonGateway, 'stats'> | null): Array<Row & { inflight: number | null; requests: number | null }> {
  return rows.map((row) => {
    const stats = gateway?.stats(row.name) ?? null;
    return { ...row, inflight: stats?.inflight ?? null, requests: stats?.requests ?? null };
  });
}
