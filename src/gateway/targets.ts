// What the gateway needs from the supervisor, and nothing more: the instances
// with their address, names and state, and a way to wait for a state change.
// `fromSupervisor` adapts the real Supervisor through its public API only;
// tests may hand the gateway any other GatewayTargets.
import { DEFAULT_LIFECYCLE, type LaunchPlan } from '../config/instance-plan.ts';
import type { Instance, InstanceState, TransitionEvent } from '../supervise/instance.ts';
import type { Supervisor } from '../supervise/supervisor.ts';

export type TargetState = InstanceState;

/** One instance as the gateway sees it at this moment. */
export interface TargetView {
  name: string;
  aliases: readonly string[];
  host: string;
  port: number;
  /** The instance's own `--api-key`, which the gateway sends upstream; null: none. */
  apiKey: string | null;
  /** Enabled in the config (and `[master] enable` is on). */
  enabled: boolean;
  state: TargetState;
  /** Stopped because it has not run yet (daemon start, a `background = false` chain, just added by reload): worth waiting for. */
  notStartedYet: boolean;
  restarts: number;
  /** While loading: how far, from the server's own lines (null otherwise). */
  load: { phase: string; percent: number } | null;
  /** Loaded on demand: a request for it waits for its load with no fixed limit (the load's own stall rule applies). */
  onDemand: boolean;
  /** Requests in flight at once (null: no limit known yet), and how many may wait beyond that. */
  maxConcurrent: number | null;
  maxQueue: number;
  /** The exit code of the last run, for the router's `exit_code` of a failed model. */
  lastExitCode: number | null;
  /** Why it is in its state (a fatal one: the crash line or config failure); '' when nothing was said. */
  reason: string;
}

/** The gateway's view of the supervised instances. */
export interface GatewayTargets {
  /** Every instance, in config order. */
  list(): TargetView[];
  /** One instance; undefined when there is none of that name (any more). */
  get(name: string): TargetView | undefined;
  /** Resolves true at the next state change of `name`, false when `timeoutMs` passes or `signal` aborts first. */
  nextChange(name: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
}

const NO_ALIASES: readonly string[] = Object.freeze([]);

/** The supervisor's public surface the adapter uses. */
type SupervisorView = Pick<Supervisor, 'instances' | 'instance' | 'plan'>;

/**
 * Adapts a Supervisor: the config's instances only (system services such as sshd are
 * never routed to), and one 'transition' listener per instance object, however many
 * requests wait.
 */
export function fromSupervisor(supervisor: SupervisorView): GatewayTargets {
  const waiters = new WeakMap<Instance, Set<() => void>>();
  const configuredNames = new WeakMap<LaunchPlan, Set<string>>();

  // Names from the config file, per launch plan object (system services are not in it).
  const isConfigured = (name: string) => {
    const plan = supervisor.plan;
    let names = configuredNames.get(plan);
    if (!names) {
      // rpc-server speaks RPC to its leader, not HTTP: never a gateway target.
      names = new Set(plan.instances.filter((i) => i.engine !== 'rpc-worker').map((i) => i.name));
      configuredNames.set(plan, names);
    }
    return names.has(name);
  };
  const configuredInstance = (name: string) => (isConfigured(name) ? supervisor.instance(name) : undefined);

  const view = (instance: Instance): TargetView => {
    const plan = instance.plan;
    const status = instance.summary;
    return {
      name: plan.name,
      aliases: plan.aliases ?? NO_ALIASES,
      host: plan.host,
      port: plan.port,
      apiKey: plan.apiKey ?? null,
      enabled: supervisor.plan.enabled && plan.enabled,
      state: status.state,
      notStartedYet: status.state === 'stopped' && !status.hasRun,
      restarts: status.restarts,
      load: status.load,
      onDemand: plan.lifecycle?.onDemand ?? false,
      maxConcurrent: plan.lifecycle?.maxConcurrent ?? status.slots,
      maxQueue: plan.lifecycle?.maxQueue ?? DEFAULT_LIFECYCLE.maxQueue,
      lastExitCode: status.lastExitCode,
      reason: status.reason,
    };
  };

  const waitersOf = (instance: Instance): Set<() => void> => {
    let set = waiters.get(instance);
    if (!set) {
      const created = new Set<() => void>();
      waiters.set(instance, created);
      instance.on('transition', (_event: TransitionEvent) => {
        for (const wake of [...created]) wake();
      });
      set = created;
    }
    return set;
  };

  return {
    list: () => supervisor.instances.filter((i) => isConfigured(i.name)).map(view),
    get(name) {
      const instance = configuredInstance(name);
      return instance ? view(instance) : undefined;
    },
    nextChange(name, timeoutMs, signal) {
      const instance = configuredInstance(name);
      if (!instance) return Promise.resolve(true);
      if (signal?.aborted) return Promise.resolve(false);
      const set = waitersOf(instance);
      return new Promise((resolve) => {
        const done = (changed: boolean) => {
          clearTimeout(timer);
          set.delete(wake);
          signal?.removeEventListener('abort', abort);
          resolve(changed);
        };
        const wake = () => done(true);
        const abort = () => done(false);
        const timer = setTimeout(() => done(false), timeoutMs);
        set.add(wake);
        signal?.addEventListener('abort', abort, { once: true });
      });
    },
  };
}
