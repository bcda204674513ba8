// The set of instances from one launch plan: starts them in order (honouring
// `background = false`), stops them together, and applies a reloaded plan by
// restarting only the instances whose launch changed.
import type { InstancePlan, LaunchPlan } from '../config/instance-plan.ts';
import { UsageError } from '../errors.ts';
import { Instance, type InstanceDeps, type InstanceState, type InstanceStatus, type TransitionEvent } from './instance.ts';
import type { Log } from '../logging/log.ts';
import { isLoopback, splitRpcAddress } from '../engines/rpc-worker.ts';

export interface ReloadSummary {
  started: string[];
  restarted: string[];
  stopped: string[];
  unchanged: string[];
  /** On-demand instances left (or put) idle: the next request loads them with the plan as it is now. */
  idle: string[];
}

export interface HealthSummary {
  /**
   * Docker's HEALTHCHECK verdict (`supervisor health`): 0 healthy, 1 unhealthy, never 2 (Docker reserves it).
   * Unhealthy only when an enabled instance is fatal, in backoff or failing; one still loading (starting,
   * waiting, restarting) is healthy, and so is one stopped on purpose (`supervisor stop`, a clean exit).
   */
  code: 0 | 1;
  line: string;
  /** `supervisor health --strict`, the three-valued answer: 0 all ready, 1 any fatal/backoff/failing/stopped/stopping, 2 any still starting. */
  strict: { code: 0 | 1 | 2; line: string };
}

/** `supervisor health --ready` (a Kubernetes readinessProbe): 0 when the gateway listens and has an instance to send a request to. */
export interface ReadyVerdict {
  code: 0 | 1;
  line: string;
}

/** States after which `background = false` lets the next instance start. */
const SETTLED: readonly InstanceState[] = ['ready', 'fatal', 'backoff', 'stopped'];

/** The fields that make a launch: a change in any of them restarts the instance on reload. */
export function launchKey(plan: InstancePlan): string {
  const { executable, args, env, logFile, user, host, port } = plan;
  return JSON.stringify({ executable, args, env, logFile, user, host, port });
}

/** All supervised instances of the daemon. */
export class Supervisor {
  #plan: LaunchPlan;
  /** Instances from the config file, in document order. */
  readonly #instances = new Map<string, Instance>();
  /** Services the boot adds (sshd): supervised and shown like instances, never touched by reload. */
  readonly #system = new Map<string, Instance>();
  readonly #deps: InstanceDeps;
  readonly #log: Log;
  /** Set by shutdown: startAll starts nothing more. */
  #shuttingDown = false;
  /** Told of every transition of every instance (the on-demand controller listens). */
  readonly #watchers: Array<(instance: Instance, event: TransitionEvent) => void> = [];

  constructor({ plan, deps }: { plan: LaunchPlan; deps: InstanceDeps }) {
    this.#plan = plan;
    this.#deps = deps;
    this.#log = deps.log;
    for (const instancePlan of plan.instances) this.#instances.set(instancePlan.name, this.#make(instancePlan));
  }

  get plan(): LaunchPlan {
    return this.#plan;
  }

  /** Calls `watcher` at every transition of every instance, present and future. */
  watchTransitions(watcher: (instance: Instance, event: TransitionEvent) => void): void {
    this.#watchers.push(watcher);
  }

  #make(plan: InstancePlan): Instance {
    const instance = new Instance(plan, this.#deps);
    instance.on('transition', (event: TransitionEvent) => {
      if (instance.plan.engine === 'rpc-worker') this.#tellLeaders(instance, event);
      for (const watcher of this.#watchers) watcher(instance, event);
    });
    return instance;
  }

  // A worker under this supervisor that leaves ready takes the leaders' tensors with it, even when it is back before
  // their next probe: they are told, and restart once it is ready again (instance.ts).
  #tellLeaders(worker: Instance, event: TransitionEvent): void {
    const leaders = [...this.#instances.values()].filter((i) => i !== worker);
    for (const leader of leaders) {
      for (const address of leader.plan.rpcWorkers ?? []) {
        if (!isSameEndpoint(address, worker.plan)) continue;
        if (event.from === 'ready' && event.to !== 'ready') leader.noteRpcWorkerLost(address, `${worker.name} ${event.to}: ${event.reason}`);
        if (event.to === 'ready') leader.rpcWorkerReady();
      }
    }
  }

  // Starts an instance, or parks it idle when it loads on demand.
  async #bringUp(instance: Instance, reason: string): Promise<void> {
    if (instance.plan.lifecycle?.onDemand) instance.park(`loaded on demand (${reason}): the first request starts it`);
    else await instance.start(reason);
  }

  instance(name: string): Instance | undefined {
    return this.#instances.get(name) ?? this.#system.get(name);
  }

  /** System services first, then the config's instances. */
  get instances(): Instance[] {
    return [...this.#system.values(), ...this.#instances.values()];
  }

  /** Adds a service the config does not manage (sshd) and starts it. */
  async addSystemInstance(plan: InstancePlan): Promise<Instance> {
    if (this.#instances.has(plan.name) || this.#system.has(plan.name)) {
      throw new UsageError(`an instance named "${plan.name}" already exists; "${plan.name}" is reserved`);
    }
    const instance = this.#make(plan);
    this.#system.set(plan.name, instance);
    await instance.start('system service');
    return instance;
  }

  /** Starts every enabled instance in document order; a `background = false` one is waited for. */
  async startAll(): Promise<void> {
    if (!this.#plan.enabled) {
      this.#log.info({ event: 'master-disabled' }, 'master.enable = false: no instance is started');
      return;
    }
    for (const instance of [...this.#instances.values()]) {
      // While we waited for the one before, a shutdown or a reload may have changed what should run.
      if (this.#shuttingDown || !this.#plan.enabled) return;
      if (this.#instances.get(instance.name) !== instance || !instance.plan.enabled) continue;
      await this.#bringUp(instance, 'supervisor start');
      if (!instance.plan.background) await instance.waitFor(SETTLED);
    }
  }

  /** Resolves names (or every instance for `all`); an unknown name is a usage error. */
  select(names: readonly string[], all: boolean): Instance[] {
    if (all) return this.instances;
    if (names.length === 0) throw new UsageError('name at least one instance, or --all');
    return names.map((name) => {
      const instance = this.#instances.get(name) ?? this.#system.get(name);
      if (!instance) {
        const known = this.instances.map((i) => i.name).join(', ') || 'none';
        throw new UsageError(`no instance named "${name}" (instances: ${known})`);
      }
      return instance;
    });
  }

  status(names: readonly string[] = []): InstanceStatus[] {
    const chosen = names.length === 0 ? this.instances : this.select(names, false);
    return chosen.map((instance) => instance.status());
  }

  /** Docker's HEALTHCHECK verdict, and the strict three-valued one (`--strict`) beside it. */
  health(): HealthSummary {
    const configured = this.#plan.enabled ? [...this.#instances.values()].filter((i) => i.plan.enabled) : [];
    const enabled = [...this.#system.values(), ...configured];
    const inStates = (states: readonly InstanceState[]) => enabled.filter((i) => states.includes(i.state));
    const failed = inStates(['fatal', 'backoff', 'failing']);
    const down = inStates(['stopped', 'stopping']);
    const loading = inStates(['starting', 'waiting', 'restarting']);
    const summary = `${inStates(['ready']).length}/${enabled.length} ready`;
    const names = (list: Instance[]) => list.map((i) => i.name).join(', ');
    const withState = (list: Instance[]) => list.map((i) => `${i.name} ${i.state}`).join(', ');
    const strict: HealthSummary['strict'] =
      failed.length + down.length > 0
        ? { code: 1, line: `unhealthy: ${summary}; ${withState([...failed, ...down])}` }
        : loading.length > 0
          ? { code: 2, line: `starting: ${summary}; waiting for ${names(loading)}` }
          : { code: 0, line: `healthy: ${summary}` };
    if (failed.length > 0) return { code: 1, line: `unhealthy: ${summary}; ${withState(failed)}`, strict };
    // Loading (a model can load for many minutes; stall detection fails a load that makes no progress)
    // and stopped on purpose are both healthy: an autoheal restart would only undo them.
    const notes = [loading.length > 0 ? `starting: ${names(loading)}` : '', down.length > 0 ? `stopped: ${names(down)}` : ''].filter(Boolean);
    return { code: 0, line: `healthy: ${[summary, ...notes].join('; ')}`, strict };
  }

  /**
   * Whether the gateway can serve a request now: it listens and some enabled instance of the config is
   * ready, or idle (on demand: the request loads it). System services (sshd) are not behind the gateway.
   */
  readiness(gatewayListening: boolean): ReadyVerdict {
    // An RPC worker serves its leader, not the gateway's clients.
    const configured = this.#plan.enabled ? [...this.#instances.values()].filter((i) => i.plan.enabled && i.plan.engine !== 'rpc-worker') : [];
    const serving = configured.filter((i) => i.state === 'ready' || i.state === 'idle');
    const summary = `${serving.length}/${configured.length} can serve`;
    if (!gatewayListening) return { code: 1, line: `not ready: the gateway is not listening; ${summary}` };
    if (serving.length === 0) {
      const states = configured.map((i) => `${i.name} ${i.state}`).join(', ') || 'no enabled instance';
      return { code: 1, line: `not ready: ${summary}; ${states}` };
    }
    return { code: 0, line: `ready: ${summary} (${serving.map((i) => i.name).join(', ')})` };
  }

  /**
   * Applies a new plan: start new instances, stop removed ones, restart changed ones.
   * Every stop finishes before anything starts, so a port that moves from one instance
   * to another (a renamed instance, swapped ports) is free when its new owner starts.
   */
  async reload(next: LaunchPlan): Promise<ReloadSummary> {
    const summary: ReloadSummary = { started: [], restarted: [], stopped: [], unchanged: [], idle: [] };
    this.#refuseReservedNames(next);
    const wanted = new Set(next.instances.map((i) => i.name));
    const stops: Promise<void>[] = [];
    const starts: Array<() => Promise<void>> = [];
    for (const instance of [...this.#instances.values()]) {
      if (wanted.has(instance.name)) continue;
      summary.stopped.push(instance.name);
      this.#instances.delete(instance.name);
      stops.push(instance.stop('removed from the config by reload').then(() => instance.close()));
    }
    const ordered = new Map<string, Instance>();
    for (const plan of next.instances) {
      const runnable = next.enabled && plan.enabled;
      let instance = this.#instances.get(plan.name);
      if (!instance) {
        instance = this.#make(plan);
        ordered.set(plan.name, instance);
        if (runnable) {
          (plan.lifecycle?.onDemand ? summary.idle : summary.started).push(plan.name);
          const added = instance;
          starts.push(() => this.#bringUp(added, 'added by reload'));
        } else summary.unchanged.push(plan.name);
        continue;
      }
      ordered.set(plan.name, instance);
      const changed = launchKey(plan) !== launchKey(instance.plan);
      const running = !['stopped', 'fatal', 'idle'].includes(instance.state);
      instance.setPlan(plan);
      const existing = instance;
      // On demand: never started by a reload. A loaded one whose launch changed is unloaded (it loads with its new
      // plan at the next request), a failed one made idle again, a newly enabled one parked.
      if (runnable && plan.lifecycle?.onDemand) {
        const why = 'launch plan changed by reload: loads again on the next request';
        const action =
          running && changed ? () => stops.push(existing.unload(why))
          : instance.state === 'fatal' && changed ? () => starts.push(() => existing.unload(why))
          : instance.state === 'stopped' && !this.#wasRunnable(plan.name) ? () => starts.push(async () => existing.park('enabled by reload'))
          : null;
        if (action !== null) {
          summary.idle.push(plan.name);
          action();
          continue;
        }
      }
      if (!runnable) {
        if (instance.state !== 'stopped') {
          summary.stopped.push(plan.name);
          stops.push(instance.stop('disabled by reload'));
        } else summary.unchanged.push(plan.name);
      } else if (changed && running) {
        // A restart: its stop goes with the others, its start after them.
        summary.restarted.push(plan.name);
        stops.push(instance.stop('launch plan changed by reload'));
        starts.push(() => existing.start('launch plan changed by reload'));
      } else if ((changed && instance.state === 'fatal') || (instance.state === 'stopped' && !this.#wasRunnable(plan.name))) {
        // A fatal instance whose launch was fixed, or one just enabled; one stopped by hand stays stopped.
        summary.started.push(plan.name);
        const reason = changed ? 'launch plan changed by reload' : 'enabled by reload';
        starts.push(() => existing.start(reason));
      } else summary.unchanged.push(plan.name);
    }
    this.#instances.clear();
    for (const [name, instance] of ordered) this.#instances.set(name, instance);
    this.#plan = next;
    await Promise.all(stops);
    await Promise.all(starts.map((start) => start()));
    this.#log.info({ event: 'reload', ...summary }, 'config reloaded');
    return summary;
  }

  /**
   * `supervisor serve`: starts the plan's instances that are not running, and
   * leaves every running one alone (even if its launch changed: that is reload's job).
   */
  async serve(next: LaunchPlan): Promise<ReloadSummary> {
    this.#refuseReservedNames(next);
    const summary: ReloadSummary = { started: [], restarted: [], stopped: [], unchanged: [], idle: [] };
    const starts: Promise<void>[] = [];
    for (const plan of next.instances) {
      const runnable = next.enabled && plan.enabled;
      let instance = this.#instances.get(plan.name);
      if (!instance) {
        instance = this.#make(plan);
        this.#instances.set(plan.name, instance);
      } else if (instance.state !== 'stopped' && instance.state !== 'fatal') {
        summary.unchanged.push(plan.name);
        continue;
      } else instance.setPlan(plan);
      if (!runnable) {
        summary.unchanged.push(plan.name);
        continue;
      }
      (plan.lifecycle?.onDemand ? summary.idle : summary.started).push(plan.name);
      starts.push(this.#bringUp(instance, 'serve'));
    }
    this.#plan = next;
    await Promise.all(starts);
    this.#log.info({ event: 'serve', ...summary }, 'serve: instances started');
    return summary;
  }

  #refuseReservedNames(next: LaunchPlan): void {
    const reserved = next.instances.find((i) => this.#system.has(i.name));
    if (reserved) {
      throw new UsageError(`instance name "${reserved.name}" is reserved for the ${reserved.name} service; rename the instance`);
    }
  }

  // Was this instance meant to run under the previous plan? (a newly enabled one gets started)
  #wasRunnable(name: string): boolean {
    const previous = this.#plan.instances.find((i) => i.name === name);
    return this.#plan.enabled && previous?.enabled === true;
  }

  /**
   * Stops every instance at once and closes their logs. Each gets its stop_timeout_s,
   * but never more than what is left of `budgetMs` (docker stop's grace, for PID 1);
   * whatever still runs when the budget ends is SIGKILLed with its descendants.
   */
  async shutdown(reason: string, { budgetMs }: { budgetMs?: number } = {}): Promise<void> {
    this.#shuttingDown = true;
    const deadline = budgetMs === undefined ? undefined : this.#deps.clock.now() + budgetMs;
    await Promise.all(
      this.instances.map(async (instance) => {
        const graceMs =
          deadline === undefined ? undefined : Math.max(0, Math.min(instance.plan.policy.stopTimeoutS * 1000, deadline - this.#deps.clock.now()));
        await instance.stop(reason, { graceMs });
        await instance.close();
      }),
    );
  }
}

// Does a leader's `host:port` reach this worker? Same port, and the worker's host, or loopback to a worker on
// loopback or on every address.
function isSameEndpoint(address: string, worker: InstancePlan): boolean {
  const { host, port } = splitRpcAddress(address);
  if (port !== worker.port) return false;
  if (host === worker.host) return true;
  return isLoopback(host) && (isLoopback(worker.host) || worker.host === '0.0.0.0' || worker.host === '::');
}
