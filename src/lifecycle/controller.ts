// Models on demand: loads an instance when a request (or `supervisor load`)
// needs it, makes room first by placement.ts's rules, unloads instances that
// sat idle for idle_unload_s, and keeps two members of an exclusive group from
// swapping on every request. Loads happen one at a time (two at once would race
// each other's fit); unloads drain first, so no request in flight is cut.
import type { InstancePlan } from '../config/instance-plan.ts';
import type { GpuMonitor } from '../gpu/monitor.ts';
import type { Log } from '../logging/log.ts';
import type { Clock, TimerHandle } from '../supervise/clock.ts';
import type { Instance, InstanceState } from '../supervise/instance.ts';
import { readGgufShape } from './gguf-metadata.ts';
import { kvCacheBytes, modelFileBytes, splitEstimate } from './memory-estimate.ts';
import { planLoad, type DeviceKey, type PlacementCandidate } from './placement.ts';

/** A loaded model keeps serving what arrives for this long before a swap in its exclusive group takes it (no thrash). */
export const SWAP_HOLD_MS = 3000;
/** A failed on-demand instance answers with its reason at once; a request after this long tries to load it again. */
export const FAILED_RETRY_MS = 5000;
/** How often a swap waiting for quiet looks at the requests the gateway holds. */
const QUIET_POLL_MS = 50;
/** Memory a GPU keeps free (llama.cpp's fit leaves 1 GiB too). */
export const GPU_RESERVE_MIB = 1024;

/** What the controller needs from the rest of the daemon. */
export interface LifecycleDeps {
  instances(): readonly Instance[];
  instance(name: string): Instance | undefined;
  /** Drains `names` at the gateway (in-flight requests finish, new ones wait), runs `fn`, releases them. */
  withDrain<T>(names: readonly string[], fn: () => Promise<T>): Promise<T>;
  /** Requests held at the instance's drain gate or queued for a slot (they make it busy). */
  waiting(name: string): number;
  /** The devices an instance runs on (`gpu:N`, or `host` without GPUs), and the budget per device. */
  devicesOf(plan: InstancePlan): Promise<DeviceKey[]>;
  budgets(): Promise<Map<DeviceKey, number>>;
  clock: Clock;
  log: Log;
}

/** How a load went. */
export type LoadAnswer = { ok: true } | { ok: false; reason: string };

/** What `status` shows of an instance's lifecycle. */
export interface LifecycleStatus {
  on_demand: boolean;
  last_used: string | null;
  /** MiB needed on each of its devices, and where the figure comes from. */
  need_mib: number | null;
  need_source: 'configured' | 'measured' | 'estimated' | null;
  /** When it will be unloaded if no request comes. */
  unload_at: string | null;
}

interface Usage {
  inflight: number;
  lastUsedAt: number;
  idleTimer: TimerHandle | null;
  unloadAt: number | null;
  /** MiB per device the last load really used (the server's buffers). */
  measuredMiB: number | null;
  estimate: { key: string; mib: number } | null;
  failedAt: number | null;
}

/** The on-demand loader of one daemon. */
export class LifecycleController {
  readonly #deps: LifecycleDeps;
  readonly #usage = new Map<string, Usage>();
  /** Loads one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  /** The load of each instance queued or under way: a second request for it joins it (and does not queue behind others). */
  readonly #pending = new Map<string, Promise<LoadAnswer>>();
  /** Woken at every request end: a swap waiting for its group member to go quiet looks again at once. */
  readonly #quietWaiters = new Set<() => void>();

  constructor(deps: LifecycleDeps) {
    this.#deps = deps;
  }

  /** Should a request for `name` load it first? (idle; or failed on demand long enough ago to try again) */
  wantsLoad(name: string): boolean {
    const instance = this.#deps.instance(name);
    if (instance === undefined) return false;
    if (instance.state === 'idle') return true;
    if (instance.state !== 'fatal' || !instance.plan.lifecycle?.onDemand) return false;
    const failedAt = this.#use(name).failedAt;
    return failedAt === null || this.#deps.clock.now() - failedAt >= FAILED_RETRY_MS;
  }

  /** Loads `name`, making room by placement's rules; resolves once its start is under way (or it failed), or says why not. */
  load(name: string, why: string): Promise<LoadAnswer> {
    const pending = this.#pending.get(name);
    if (pending !== undefined) return pending;
    const run = this.#queue.then(() => this.#load(name, why)).finally(() => this.#pending.delete(name));
    this.#pending.set(name, run);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Unloads `name` (drained first): it rests idle until the next request. */
  async unload(name: string, why: string): Promise<void> {
    const instance = this.#deps.instance(name);
    if (instance === undefined) return;
    this.#clearIdleTimer(name);
    await this.#deps.withDrain([name], () => instance.unload(why));
  }

  /** A request for `name` arrived: it waits for the instance or is forwarded, until end(). */
  begin(name: string): void {
    const use = this.#use(name);
    use.inflight++;
    use.lastUsedAt = this.#deps.clock.now();
    this.#clearIdleTimer(name);
  }

  /** A request for `name` ended. */
  end(name: string): void {
    const use = this.#use(name);
    use.inflight = Math.max(0, use.inflight - 1);
    use.lastUsedAt = this.#deps.clock.now();
    if (use.inflight === 0) this.#armIdleTimer(name);
    for (const wake of [...this.#quietWaiters]) wake();
  }

  /** The instance reached a state: keep track of failures, measured memory and the idle timer. */
  noteState(instance: Instance, state: InstanceState): void {
    const use = this.#use(instance.name);
    if (state === 'fatal') use.failedAt = this.#deps.clock.now();
    if (state === 'ready') {
      use.failedAt = null;
      const measured = measuredMiB(instance);
      if (measured !== null) use.measuredMiB = measured;
      if (use.inflight === 0) this.#armIdleTimer(instance.name);
    }
    if (state === 'idle' || state === 'stopped') this.#clearIdleTimer(instance.name);
    // An idle instance that never ran shows what it would need: estimated now, in the background.
    if (state === 'idle' && use.measuredMiB === null && instance.plan.lifecycle?.memoryMib == null) {
      void this.#deps.devicesOf(instance.plan).then((devices) => this.estimate(instance, devices.length));
    }
  }

  /** The lifecycle part of `status`. */
  status(instance: Instance): LifecycleStatus {
    const use = this.#usage.get(instance.name);
    const lifecycle = instance.plan.lifecycle;
    const configured = lifecycle?.memoryMib ?? null;
    const need = configured ?? use?.measuredMiB ?? use?.estimate?.mib ?? null;
    const source = configured !== null ? 'configured' : use?.measuredMiB != null ? 'measured' : use?.estimate ? 'estimated' : null;
    return {
      on_demand: lifecycle?.onDemand ?? false,
      last_used: use && use.lastUsedAt > 0 ? new Date(use.lastUsedAt).toISOString() : null,
      need_mib: need,
      need_source: source,
      unload_at: use?.unloadAt ? new Date(use.unloadAt).toISOString() : null,
    };
  }

  /** Works out (once per model and context) what an instance that never ran will need. */
  async estimate(instance: Instance, devices: number): Promise<number | null> {
    const plan = instance.plan;
    if (plan.model === null) return null;
    const key = `${plan.model}\0${plan.ctxSize ?? ''}\0${devices}`;
    const use = this.#use(instance.name);
    if (use.estimate?.key === key) return use.estimate.mib;
    try {
      const [shape, weightsBytes] = await Promise.all([readGgufShape(plan.model), modelFileBytes(plan.model)]);
      const ctx = plan.ctxSize ?? shape.contextLength ?? 4096;
      const kvBytes = kvCacheBytes(shape, ctx) ?? 0;
      const mib = Math.max(...splitEstimate({ weightsBytes, kvBytes, devices, tensorSplit: tensorSplitOf(plan) }));
      use.estimate = { key, mib };
      return mib;
    } catch (err) {
      this.#deps.log.warn({ instance: instance.name, err, event: 'estimate-failed' }, `${instance.name}: cannot estimate its memory from ${plan.model}: ${(err as Error).message}`);
      return null;
    }
  }

  async #load(name: string, why: string): Promise<LoadAnswer> {
    const target = this.#deps.instance(name);
    if (target === undefined) return { ok: false, reason: `no instance named "${name}"` };
    if (!['idle', 'stopped', 'fatal'].includes(target.state)) return { ok: true };
    const candidates = await this.#candidates();
    const plan = planLoad({ target: name, candidates, budgetMiB: await this.#deps.budgets() });
    if (!plan.ok) {
      this.#deps.log.warn({ instance: name, event: 'load-refused', reason: plan.reason }, `${name}: cannot load: ${plan.reason}`);
      return plan;
    }
    if (plan.evict.length > 0) {
      const group = target.plan.lifecycle?.exclusiveGroup ?? null;
      // No thrash: a member of the group that is busy keeps serving for a while before the swap takes it.
      const grouped = plan.evict.filter((e) => this.#deps.instance(e.name)?.plan.lifecycle?.exclusiveGroup === group && group !== null);
      if (grouped.length > 0) {
        await this.#waitUntilQuiet(grouped.map((e) => e.name), SWAP_HOLD_MS);
      }
      this.#deps.log.info({ instance: name, event: 'evict', evict: plan.evict }, `${name}: unloading ${plan.evict.map((e) => `${e.name} (${e.why})`).join(', ')} to make room`);
      await Promise.all(plan.evict.map((e) => this.unload(e.name, `unloaded for ${name}: ${e.why}`)));
    }
    this.#deps.log.info({ instance: name, event: 'load', reason: why }, `${name}: loading (${why})`);
    await target.start(why);
    return { ok: true };
  }

  // Waits until none of `names` has a request in flight or waiting, or `ms` passed: woken by each request's end,
  // and every QUIET_POLL_MS for the requests the gateway holds (which end() does not see).
  async #waitUntilQuiet(names: readonly string[], ms: number): Promise<void> {
    const deadline = this.#deps.clock.now() + ms;
    while (this.#deps.clock.now() < deadline && names.some((n) => this.#busy(n))) {
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#quietWaiters.delete(wake);
          this.#deps.clock.clearTimeout(timer);
          resolve();
        };
        const timer = this.#deps.clock.setTimeout(wake, QUIET_POLL_MS);
        this.#quietWaiters.add(wake);
      });
    }
  }

  async #candidates(): Promise<PlacementCandidate[]> {
    const out: PlacementCandidate[] = [];
    for (const instance of this.#deps.instances()) {
      if (instance.plan.engine === 'service') continue;
      const devices = await this.#deps.devicesOf(instance.plan);
      const lifecycle = instance.plan.lifecycle;
      const use = this.#use(instance.name);
      const need = lifecycle?.memoryMib ?? use.measuredMiB ?? (await this.estimate(instance, devices.length)) ?? 0;
      out.push({
        name: instance.name,
        loaded: !['idle', 'stopped', 'fatal'].includes(instance.state),
        devices,
        needMiB: need,
        // Unloading an RPC worker to make room would take its leader down with it: never a victim.
        pinned: (lifecycle?.pinned ?? false) || instance.plan.engine === 'rpc-worker',
        busy: this.#busy(instance.name),
        lastUsedAt: use.lastUsedAt,
        group: lifecycle?.exclusiveGroup ?? null,
      });
    }
    return out;
  }

  #busy(name: string): boolean {
    return (this.#usage.get(name)?.inflight ?? 0) > 0 || this.#deps.waiting(name) > 0;
  }

  #armIdleTimer(name: string): void {
    const instance = this.#deps.instance(name);
    const seconds = instance?.plan.lifecycle?.idleUnloadS ?? 0;
    if (instance === undefined || seconds <= 0 || !['ready', 'starting'].includes(instance.state)) return;
    this.#clearIdleTimer(name);
    const use = this.#use(name);
    use.unloadAt = this.#deps.clock.now() + seconds * 1000;
    use.idleTimer = this.#deps.clock.setTimeout(() => {
      use.idleTimer = null;
      use.unloadAt = null;
      if (this.#busy(name)) return;
      void this.unload(name, `idle for ${seconds} s (idle_unload_s)`).catch((err: Error) =>
        this.#deps.log.error({ instance: name, err, event: 'unload-failed' }, `${name}: idle unload failed: ${err.message}`),
      );
    }, seconds * 1000);
  }

  #clearIdleTimer(name: string): void {
    const use = this.#usage.get(name);
    if (use?.idleTimer) this.#deps.clock.clearTimeout(use.idleTimer);
    if (use) {
      use.idleTimer = null;
      use.unloadAt = null;
    }
  }

  #use(name: string): Usage {
    let use = this.#usage.get(name);
    if (!use) {
      use = { inflight: 0, lastUsedAt: 0, idleTimer: null, unloadAt: null, measuredMiB: null, estimate: null, failedAt: null };
      this.#usage.set(name, use);
    }
    return use;
  }
}

// What the last load really used, per device: the largest of its devices' buffers (GPU), or its host buffers.
function measuredMiB(instance: Instance): number | null {
  const status = instance.status();
  const gpu = status.gpu?.memory ?? [];
  if (gpu.length > 0) return Math.max(...gpu.map((m) => m.mib));
  return instance.hostBuffersMiB;
}

// `--tensor-split 1,1` (or `-ts`) as shares.
function tensorSplitOf(plan: InstancePlan): number[] | null {
  const i = plan.args.findIndex((a) => a === '--tensor-split' || a === '-ts');
  const raw = i >= 0 ? plan.args[i + 1] : plan.args.find((a) => a.startsWith('--tensor-split='))?.slice('--tensor-split='.length);
  if (raw === undefined) return null;
  const shares = raw.split(/[,/]/).map(Number);
  return shares.every((n) => Number.isFinite(n) && n >= 0) ? shares : null;
}

/** The memory per device that placement plans with: each GPU's total less a reserve; the host's only where it was set. */
export async function makeBudgets({ gpus, hostMiB }: { gpus: Pick<GpuMonitor, 'snapshot'>; hostMiB: number | null }): Promise<Map<DeviceKey, number>> {
  const budgets = new Map<DeviceKey, number>();
  for (const gpu of (await gpus.snapshot())?.gpus ?? []) {
    if (gpu.totalMiB !== null) budgets.set(`gpu:${gpu.index}`, gpu.totalMiB - GPU_RESERVE_MIB);
  }
  if (hostMiB !== null) budgets.set('host', hostMiB);
  return budgets;
}
