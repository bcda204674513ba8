// One supervised process: the effects of its rulebook (instance-machine.ts).
// Commands, probe answers, exits and timers become events; the pure reducer
// decides; this class carries out what it says (spawn, signal, probe, timers,
// log records) and feeds the results back as events. Nothing outside reads the
// state and acts on it (llama-swap issue #946): callers send a command and
// await its outcome.
import { EventEmitter } from 'node:events';
import type { InstancePlan } from '../config/instance-plan.ts';
import { isSupervisorError } from '../errors.ts';
import { describeError } from '../process/errno.ts';
import type { DeviceMemory, InstanceGpu } from '../gpu/instance-gpu.ts';
import { isFitReduced, loadPercent, type LoadPhase, type LoadReport } from '../gpu/load-report.ts';
import type { ExitSnapshot } from '../gpu/release-barrier.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { LoadTracker } from './load-tracker.ts';
import type { EngineName } from '../engines/engine.ts';
import { engineFacts } from '../engines/registry.ts';
import { isBusyWorker, splitRpcAddress } from '../engines/rpc-worker.ts';
import type { HealthProber } from './health-probe.ts';
import {
  initialMachine,
  isStartSettled,
  isStopSettled,
  isUnloadSettled,
  reduce,
  type InstanceEffect,
  type InstanceEvent,
  type InstanceState,
  type LastExit,
  type Machine,
  type PreflightOutcome,
  type TimerName,
} from './instance-machine.ts';
import type { ChildHandle, Spawner } from './spawn-instance.ts';
import type { Log } from '../logging/log.ts';

export { LIVENESS_FAILURES, STARTING_PROBE_INTERVAL_MS, TRANSITIONS, type InstanceState, type LastExit } from './instance-machine.ts';

/** How long to wait for our own previous process to free the port. */
const PORT_RELEASE_WAIT_MS = 10_000;
/** Lines of output kept with each exit record. */
const EXIT_TAIL_LINES = 200;
/** After an exit, how long the output pipes may take to deliver the last lines (a leftover may hold them open). */
const EXIT_DRAIN_MS = 200;
/** How old the GPU answer for the used memory before a start may be. */
const USED_BEFORE_MAX_AGE_MS = 10_000;
/** File-system work on a user's path (the log file, the model) that takes longer than this fails the start: a hung mount must not hang us. */
const FS_TIMEOUT_MS = 5000;
/** A TCP connect to an RPC worker; one that takes longer is as good as down. */
const RPC_PROBE_TIMEOUT_MS = 1000;
/** How a leader's start that waited too long for its workers fails (fatal, as every failed check before a spawn). */
const RPC_GAVE_UP = 'RPC workers not accepting TCP';

export interface TransitionEvent {
  instance: string;
  from: InstanceState;
  to: InstanceState;
  pid: number | null;
  reason: string;
}

/** `supervisor status --json`: exactly these keys. */
export interface InstanceStatus {
  name: string;
  /** What runs (src/engines/): llama-server, vllm, sglang, command, or service (sshd). */
  engine: EngineName;
  state: InstanceState;
  /** When the instance entered its state (ISO), and why. */
  state_since: string | null;
  state_reason: string | null;
  pid: number | null;
  uptime_s: number | null;
  restarts: number;
  last_exit: LastExit | null;
  port: number;
  gpu_ids: string | null;
  log_file: string;
  next_restart_at: string | null;
  /** While starting: how far the load is, from the server's own lines. */
  load: { phase: LoadPhase; percent: number } | null;
  /** The context configured (null: the model's), the model's trained one, and the one the server runs with. */
  context: { configured: number | null; trained: number | null; actual: number | null } | null;
  /** What llama.cpp's fit did; `reduced` with the message when it served less than configured. */
  fit: { decision: string; reduced: boolean; message: string | null } | null;
  /** The GPUs it runs on and what it holds there; null when it runs on none (gpu_ids = "none", or no GPUs). */
  gpu: { devices: number[]; memory: DeviceMemory[]; release: { waited_ms: number; warning: string | null } | null } | null;
}

/** The log file of an instance as the engine uses it (see log-writer.ts). */
export interface InstanceLog {
  write(chunk: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
  appendRecord(text: string): void;
  tail(lines: number): string[];
  readonly lastWriteAt: number | null;
  close(): Promise<void>;
}

/** Everything an instance does to the outside world, injected so tests can drive it. */
export interface InstanceDeps {
  clock: Clock;
  spawner: Spawner;
  prober: HealthProber;
  log: Log;
  openLog(plan: InstancePlan): Promise<InstanceLog>;
  /** Who listens on this port, if anyone. */
  findPortHolder(port: number): Promise<{ pid: number; command: string } | null>;
  /** Is this pid one of this instance's own processes (still exiting)? */
  isOwnProcess(pid: number, instance: string): Promise<boolean>;
  fileExists(path: string): Promise<boolean> | boolean;
  /** Kills processes that escaped the group but carry the instance's marker; returns their pids. */
  sweepLeftovers(instance: string): Promise<number[]>;
  /** GPU facts (devices, release barrier, start turns, memory); absent: GPUs are not looked at. */
  gpu?: InstanceGpu;
}

/** A value, or why it did not come in time. */
type Bounded<T> = { ok: true; value: T } | { ok: false; error: string };

/** One supervised instance. */
export class Instance extends EventEmitter {
  #plan: InstancePlan;
  readonly #deps: InstanceDeps;
  #m: Machine = initialMachine();
  #child: { generation: number; handle: ChildHandle } | null = null;
  #log: InstanceLog | null = null;
  /** The file #log writes to; a plan that moves it gets a new log at the next spawn. */
  #logFile: string | null = null;
  readonly #timers = new Map<TimerName, TimerHandle>();
  #lastTail: readonly string[] = [];
  /** Counts commands: a caller waiting for its command's outcome stops waiting once a later command replaced it. */
  #commands = 0;
  /** The current (or last) run's load, read from its output. */
  #load: LoadTracker | null = null;
  /** Whether the current run's fit decision has been looked at. */
  #fitSeen = false;
  /** The GPUs of the current (or last) run, and their used MiB before it and what it added. */
  #devices: number[] = [];
  #usedBefore = new Map<number, number>();
  #delta = new Map<number, number>();
  /** The last run's pids at its exit, until its GPU memory is back. */
  #exitSnapshot: ExitSnapshot | null = null;
  #releaseSince: number | null = null;
  #release: { waited_ms: number; warning: string | null } | null = null;
  /** Runs whose fit served less than configured, since the daemon started (/metrics counts them). */
  #fitReducedCount = 0;
  /** RPC workers (of a leader) seen gone since its start; one that is back restarts the leader. */
  readonly #rpcLost = new Set<string>();

  constructor(plan: InstancePlan, deps: InstanceDeps) {
    super();
    this.#plan = plan;
    this.#deps = deps;
  }

  get name(): string {
    return this.#plan.name;
  }
  get state(): InstanceState {
    return this.#m.state;
  }
  get plan(): InstancePlan {
    return this.#plan;
  }
  /** The last lines of output kept with the last exit. */
  get lastTail(): readonly string[] {
    return this.#lastTail;
  }

  /** What the gateway needs on every request, without building a whole status (no GPU lookups). */
  get summary(): { state: InstanceState; restarts: number; hasRun: boolean; load: { phase: LoadPhase; percent: number } | null; fitReducedCount: number; slots: number | null; lastExitCode: number | null; reason: string } {
    const report = this.#m.state === 'starting' ? this.#load?.report : undefined;
    return {
      state: this.#m.state,
      restarts: this.#m.restarts,
      hasRun: this.#m.lastExit !== null || this.#m.pid !== null,
      load: report ? { phase: report.phase, percent: loadPercent(report) } : null,
      fitReducedCount: this.#fitReducedCount,
      slots: this.#load?.report.slots ?? null,
      lastExitCode: this.#m.lastExit?.code ?? null,
      reason: this.#m.reason,
    };
  }

  status(): InstanceStatus {
    const m = this.#m;
    const now = this.#deps.clock.now();
    return {
      name: this.#plan.name,
      engine: this.#plan.engine ?? 'llama-server',
      state: m.state,
      state_since: m.since === null ? null : new Date(m.since).toISOString(),
      state_reason: m.reason === '' ? null : m.reason,
      pid: m.pid,
      uptime_s: m.pid !== null && m.startedAt !== null ? Math.floor((now - m.startedAt) / 1000) : null,
      restarts: m.restarts,
      last_exit: m.lastExit,
      port: this.#plan.port,
      gpu_ids: this.#plan.gpuIds,
      log_file: this.#plan.logFile,
      next_restart_at: m.state === 'backoff' && m.nextRestartAt !== null ? new Date(m.nextRestartAt).toISOString() : null,
      ...this.#loadStatus(),
    };
  }

  // The load, context, fit and GPU fields of status, from the current (or last) run.
  #loadStatus(): Pick<InstanceStatus, 'load' | 'context' | 'fit' | 'gpu'> {
    const report = this.#load?.report ?? null;
    const starting = this.#m.state === 'starting' && report !== null;
    const configured = this.#plan.ctxSize ?? null;
    const context = report === null && configured === null ? null : { configured, trained: report?.nCtxTrain ?? null, actual: report?.nCtx ?? null };
    const fit = report?.fitDecision ? { decision: report.fitDecision, reduced: isFitReduced(report), message: isFitReduced(report) ? describeFit(report, this.#devices) : null } : null;
    const gpu =
      this.#devices.length === 0 || this.#deps.gpu === undefined
        ? null
        : { devices: this.#devices, memory: this.#deps.gpu.memoryOf({ pids: this.#m.pid === null ? [] : [this.#m.pid], devices: this.#devices, report, delta: this.#delta }), release: this.#release };
    return { load: starting ? { phase: report.phase, percent: loadPercent(report) } : null, context, fit, gpu };
  }

  /** Starts the instance unless it runs; resolves once the start is under way (or failed). During a stop, the start follows the exit. */
  start(reason = 'start requested'): Promise<void> {
    return this.#command({ type: 'start', reason }, isStartSettled);
  }

  /** Stops the instance; resolves once no process of it is left. `graceMs` may only shorten the SIGTERM → SIGKILL grace. */
  stop(reason = 'stop requested', { graceMs }: { graceMs?: number } = {}): Promise<void> {
    return this.#command({ type: 'stop', reason, graceMs }, isStopSettled);
  }

  /** Stops (if running) and starts again with the plan as it is now; resolves once the new start is under way. */
  restart(reason = 'restart requested'): Promise<void> {
    return this.#command({ type: 'restart', reason }, isStartSettled);
  }

  /** Unloads the instance (stops it to rest idle: the next request loads it); resolves once it is idle. */
  unload(reason = 'unload requested', { graceMs }: { graceMs?: number } = {}): Promise<void> {
    return this.#command({ type: 'unload', reason, graceMs }, isUnloadSettled);
  }

  /** An on-demand instance that is not loaded now: from stopped to idle (the state that says "a request loads it"). */
  park(reason = 'loaded on demand: the first request starts it'): void {
    this.#dispatch({ type: 'park', reason });
  }

  /** MiB of host memory the last load's buffers took (CPU inference); null when not known. */
  get hostBuffersMiB(): number | null {
    const buffers = this.#load?.report.buffers;
    if (buffers === undefined) return null;
    let mib = 0;
    for (const [device, b] of Object.entries(buffers)) if (!/^CUDA/.test(device)) mib += b.model + b.kv + b.compute;
    return mib > 0 ? Math.round(mib) : null;
  }

  /** Takes a new plan; the caller restarts the instance when the launch itself changed. */
  setPlan(plan: InstancePlan): void {
    this.#plan = plan;
  }

  /** Resolves once the state is one of `states` (at once if it already is). */
  waitFor(states: readonly InstanceState[]): Promise<InstanceState> {
    if (states.includes(this.#m.state)) return Promise.resolve(this.#m.state);
    return new Promise((resolve) => {
      const listener = (event: TransitionEvent) => {
        if (!states.includes(event.to)) return;
        this.off('transition', listener);
        resolve(event.to);
      };
      this.on('transition', listener);
    });
  }

  /** Closes the log file; call once the instance is stopped for good. */
  async close(): Promise<void> {
    const log = this.#log;
    this.#log = null;
    this.#logFile = null;
    if (log === null) return;
    // A log on a hung file system must not hold up a shutdown.
    const closed = await bounded({ work: log.close(), ms: FS_TIMEOUT_MS, clock: this.#deps.clock });
    if (!closed.ok) this.#deps.log.warn({ instance: this.name, event: 'log-close-failed' }, `${this.name}: cannot close log file: ${closed.error}`);
  }

  // ---- events in, effects out ----

  // Sends a command and waits until its outcome (or until a later command took over).
  #command(event: InstanceEvent, settled: (m: Machine) => boolean): Promise<void> {
    const command = ++this.#commands;
    this.#dispatch(event);
    const done = () => settled(this.#m) || this.#commands !== command;
    if (done()) return Promise.resolve();
    return new Promise((resolve) => {
      const listener = () => {
        if (!done()) return;
        this.off('change', listener);
        resolve();
      };
      this.on('change', listener);
    });
  }

  #dispatch(event: InstanceEvent): void {
    let result;
    try {
      result = reduce(this.#m, event, { now: this.#deps.clock.now(), plan: this.#plan });
    } catch (err) {
      this.#deps.log.error({ instance: this.name, err, event: 'internal-error' }, `${this.name}: internal error handling ${event.type}: ${describeError(err)}`);
      return;
    }
    this.#m = result.machine;
    for (const effect of result.effects) {
      try {
        this.#apply(effect);
      } catch (err) {
        this.#deps.log.error({ instance: this.name, err, event: 'internal-error' }, `${this.name}: internal error in ${effect.type}: ${describeError(err)}`);
      }
    }
    this.emit('change');
  }

  #apply(effect: InstanceEffect): void {
    switch (effect.type) {
      case 'transition': {
        const event: TransitionEvent = { instance: this.name, from: effect.from, to: effect.to, pid: effect.pid, reason: effect.reason };
        const level = effect.to === 'fatal' || effect.to === 'backoff' ? 'warn' : 'info';
        this.#deps.log[level]({ ...event, event: 'transition' }, `${this.name}: ${effect.from} -> ${effect.to} (${effect.reason})`);
        if (effect.from === 'starting') this.#deps.gpu?.releaseTurn(this.name);
        if (effect.to === 'ready') void this.#measureDelta();
        this.emit('transition', event);
        return;
      }
      case 'preflight': {
        const { generation } = effect;
        void this.#preflight(this.#plan).then((outcome) => this.#dispatch({ type: 'preflight-done', generation, outcome }));
        return;
      }
      case 'spawn':
        void this.#spawn(effect.generation, this.#plan);
        return;
      case 'signal':
        this.#child?.handle.signal(effect.signal);
        return;
      case 'probe':
        this.#setTimer('probe', effect.afterMs, () => void this.#probe(effect.generation));
        return;
      case 'set-timer': {
        const { timer } = effect;
        this.#setTimer(timer, effect.ms, () => this.#dispatch({ type: 'timer', timer }));
        return;
      }
      case 'cancel-timer':
        this.#cancelTimer(effect.timer);
        return;
      case 'record':
        this.#log?.appendRecord(effect.text);
        return;
      case 'log':
        this.#deps.log[effect.level]({ instance: this.name, event: effect.event, ...effect.fields }, `${this.name}: ${effect.message}`);
        return;
    }
  }

  // ---- before the spawn: the model, the port, the log file ----

  async #preflight(plan: InstancePlan): Promise<PreflightOutcome> {
    if (plan.model !== null) {
      const exists = await bounded({ work: Promise.resolve(this.#deps.fileExists(plan.model)), ms: FS_TIMEOUT_MS, clock: this.#deps.clock });
      if (!exists.ok) return { kind: 'fail', reason: `cannot check the model file ${plan.model}: ${exists.error}` };
      if (!exists.value) return { kind: 'fail', reason: `model file not found: ${plan.model}` };
    }
    const port = await this.#checkPort(plan);
    if (port.kind !== 'ok') return port;
    const workers = await this.#checkRpcWorkers(plan);
    if (workers.kind !== 'ok') return workers;
    const log = await this.#openLog(plan);
    if (log !== null) return { kind: 'fail', reason: log };
    return this.#checkGpus(plan);
  }

  // The GPU steps before a spawn: the last run's memory must be back (bounded), then this instance takes its
  // turn on each GPU, so a load on a shared GPU fits to what is really free.
  async #checkGpus(plan: InstancePlan): Promise<PreflightOutcome> {
    const gpu = this.#deps.gpu;
    if (gpu === undefined || plan.engine === 'service') return { kind: 'ok' };
    const devices = await gpu.devicesOf(plan);
    this.#devices = devices;
    if (devices.length === 0) return { kind: 'ok' };
    if (this.#exitSnapshot !== null) {
      const verdict = await gpu.checkRelease(this.name, this.#exitSnapshot);
      const now = this.#deps.clock.now();
      const since = (this.#releaseSince ??= now);
      const limitMs = plan.policy.gpuReleaseTimeoutS * 1000;
      if (!verdict.released && now - since < limitMs) return { kind: 'wait', reason: `GPU release: ${verdict.reason}`, limitMs: Number.POSITIVE_INFINITY, giveUp: '' };
      const warning = verdict.released ? null : `started anyway after ${plan.policy.gpuReleaseTimeoutS} s: ${verdict.reason}`;
      this.#release = { waited_ms: now - since, warning };
      if (warning !== null) this.#deps.log.warn({ instance: this.name, event: 'gpu-release-timeout', devices }, `${this.name}: ${warning}`);
      else if (now > since) this.#deps.log.info({ instance: this.name, event: 'gpu-released', waited_ms: now - since, devices }, `${this.name}: waited ${now - since} ms for the last run's GPU memory`);
      this.#exitSnapshot = null;
      this.#releaseSince = null;
    }
    const holder = gpu.takeTurn(this.name, devices);
    if (holder !== null) return { kind: 'wait', reason: `waiting for its turn: ${holder}`, limitMs: Number.POSITIVE_INFINITY, giveUp: '' };
    // Before: the last answer will do (the exit just asked, or the daemon's start), so a start pays for no nvidia-smi run.
    this.#usedBefore = await gpu.usedMiB(devices, USED_BEFORE_MAX_AGE_MS);
    this.#delta = new Map();
    return { kind: 'ok' };
  }

  // After ready: what the run added to each GPU's used memory (the last-resort figure).
  async #measureDelta(): Promise<void> {
    const gpu = this.#deps.gpu;
    if (gpu === undefined || this.#devices.length === 0 || this.#usedBefore.size === 0) return;
    const before = this.#usedBefore;
    const now = await gpu.usedMiB(this.#devices, 0);
    this.#delta = new Map([...now].map(([device, used]) => [device, used - (before.get(device) ?? used)]));
  }

  // A leader starts only once every RPC worker accepts TCP: llama-server gives up on a worker it cannot reach at
  // load. The wait is bounded by startup_stall_s (it is part of the start), each unreachable worker named.
  async #checkRpcWorkers(plan: InstancePlan): Promise<PreflightOutcome> {
    const down = await this.#unreachableRpcWorkers(plan);
    if (down.length === 0) {
      this.#rpcLost.clear();
      return { kind: 'ok' };
    }
    const list = down.map((d) => `${d.address} (${d.error})`).join(', ');
    return {
      kind: 'wait',
      reason: `waiting for RPC workers to accept TCP: ${list}`,
      limitMs: plan.policy.startupStallS * 1000,
      giveUp: `${RPC_GAVE_UP} after ${plan.policy.startupStallS} s (startup_stall_s): ${list}`,
    };
  }

  // `busyIsUp`: once loaded, a worker that does not answer is serving us (isBusyWorker); before a start it is not ready.
  async #unreachableRpcWorkers(plan: InstancePlan, { busyIsUp = false } = {}): Promise<Array<{ address: string; error: string }>> {
    const workers = plan.rpcWorkers ?? [];
    const results = await Promise.all(
      workers.map(async (address) => {
        const { host, port } = splitRpcAddress(address);
        const result = await this.#deps.prober.probe({ host, port, path: null, timeoutMs: RPC_PROBE_TIMEOUT_MS });
        return { address, error: 'error' in result && !(busyIsUp && isBusyWorker(result)) ? result.error : null };
      }),
    );
    return results.filter((r): r is { address: string; error: string } => r.error !== null);
  }

  /** A worker of this leader went away (its process exited, or it stopped accepting): once it is back, the leader restarts. */
  noteRpcWorkerLost(address: string, why: string): void {
    if (!(this.#plan.rpcWorkers ?? []).includes(address) || this.#rpcLost.has(address)) return;
    if (this.#m.state !== 'ready' && this.#m.state !== 'starting') return;
    this.#rpcLost.add(address);
    this.#deps.log.warn({ instance: this.name, event: 'rpc-worker-lost', worker: address }, `${this.name}: RPC worker ${address} lost (${why}): the leader restarts once it is back`);
  }

  /** A worker of this leader under the same supervisor is ready again: look now rather than at the next probe. */
  rpcWorkerReady(): void {
    // Given up waiting for its workers (fatal): one of them is here now, so the leader tries again.
    if (this.#m.state === 'fatal' && this.#m.reason.startsWith(RPC_GAVE_UP)) void this.start('an RPC worker it waited for is ready');
    else void this.#watchRpcWorkers();
  }

  // While ready, a lost worker that accepts again means its tensors are gone: restart the leader (its start then
  // waits for every worker). One that stops accepting is noted lost.
  async #watchRpcWorkers(): Promise<void> {
    if ((this.#plan.rpcWorkers ?? []).length === 0 || this.#m.state !== 'ready') return;
    const down = new Set((await this.#unreachableRpcWorkers(this.#plan, { busyIsUp: true })).map((d) => d.address));
    for (const address of down) this.noteRpcWorkerLost(address, 'not accepting TCP');
    const back = [...this.#rpcLost].filter((address) => !down.has(address));
    if (back.length === 0 || this.#m.state !== 'ready') return;
    this.#rpcLost.clear();
    void this.restart(`RPC worker ${back.join(', ')} is back after it was lost: the leader reloads onto it`);
  }

  // A port held by another process fails the start; our own previous process still exiting is waited for.
  async #checkPort(plan: InstancePlan): Promise<PreflightOutcome> {
    let holder: { pid: number; command: string } | null;
    try {
      holder = await this.#deps.findPortHolder(plan.port);
    } catch (err) {
      // /proc unreadable is no reason to refuse a start: llama-server reports a taken port itself.
      this.#deps.log.warn({ instance: this.name, err, event: 'port-check-failed' }, `${this.name}: cannot check port ${plan.port}: ${describeError(err)}`);
      return { kind: 'ok' };
    }
    if (holder === null) return { kind: 'ok' };
    const who = holder.pid > 0 ? `pid ${holder.pid} (${holder.command})` : holder.command;
    const taken = `port ${plan.port} is already in use by ${who}`;
    const own = holder.pid > 0 && (await this.#deps.isOwnProcess(holder.pid, plan.name));
    if (!own) return { kind: 'fail', reason: taken };
    return { kind: 'wait', reason: `port ${plan.port} is still held by our previous process, ${who}`, limitMs: PORT_RELEASE_WAIT_MS, giveUp: taken };
  }

  // Opens the plan's log file on first use, or again when the plan moved it; the error message when that fails.
  async #openLog(plan: InstancePlan): Promise<string | null> {
    if (this.#log !== null && this.#logFile === plan.logFile) return null;
    await this.close();
    const work = this.#deps.openLog(plan);
    const opened = await bounded({ work, ms: FS_TIMEOUT_MS, clock: this.#deps.clock });
    if (!opened.ok) {
      // Should the open still succeed later, close that file: nobody will write to it.
      work.then((late) => late.close(), () => undefined).catch(() => undefined);
      return `cannot open log file ${plan.logFile}: ${opened.error}`;
    }
    this.#log = opened.value;
    this.#logFile = plan.logFile;
    return null;
  }

  // ---- the process ----

  async #spawn(generation: number, plan: InstancePlan): Promise<void> {
    let handle: ChildHandle;
    try {
      handle = await this.#deps.spawner.spawn(plan);
    } catch (err) {
      // A SpawnError is a config problem (missing executable, unknown user); anything else is ours, but still no crash of the daemon.
      const reason = isSupervisorError(err) ? err.message : `cannot start ${plan.executable}: ${describeError(err)}`;
      if (!isSupervisorError(err)) this.#deps.log.error({ instance: this.name, err, event: 'spawn-error' }, reason);
      this.#deps.gpu?.releaseTurn(this.name);
      this.#dispatch({ type: 'spawn-failed', generation, reason });
      return;
    }
    this.#child = { generation, handle };
    this.#fitSeen = false;
    this.#load = !engineFacts(plan.engine).readsLoadLog ? null : new LoadTracker((report) => this.#onLoad(generation, report));
    if (this.#log !== null) this.#pipeOutput(handle, this.#log);
    void handle.exited.then((status) => this.#onExit({ generation, handle, status, at: this.#deps.clock.now() }));
    this.#dispatch({ type: 'spawned', generation, pid: handle.pid });
    if (this.#m.pid === handle.pid) return;
    // The machine wanted no process (launches are cancelled only before their spawn, so this is a bug): leave none behind.
    this.#deps.log.error({ instance: this.name, pid: handle.pid, event: 'unwanted-spawn' }, `${this.name}: killing pid ${handle.pid}, spawned for a cancelled start`);
    this.#child = null;
    handle.signal('SIGKILL');
  }

  // The exit: sweep what escaped the group and read the last output, then tell the machine.
  async #onExit({ generation, handle, status, at }: { generation: number; handle: ChildHandle; status: Awaited<ChildHandle['exited']>; at: number }): Promise<void> {
    const [swept] = await Promise.all([this.#sweepLeftovers(), handle.drainOutput(EXIT_DRAIN_MS)]);
    const sweptAfterMs = this.#deps.clock.now() - at;
    this.#deps.gpu?.releaseTurn(this.name);
    // What the driver still lists of this run decides what the next start waits for (the release barrier).
    if (this.#deps.gpu !== undefined && this.#devices.length > 0) this.#exitSnapshot = await this.#deps.gpu.snapshotExit([handle.pid, ...swept]);
    if (swept.length > 0) {
      this.#deps.log.warn(
        { instance: this.name, pids: swept, event: 'sweep', gone_after_ms: sweptAfterMs },
        `${this.name}: killed ${swept.length} leftover process(es) that escaped the process group: ${swept.join(', ')} (gone ${sweptAfterMs} ms after the exit)`,
      );
    }
    if (this.#child?.handle === handle) this.#child = null;
    const tail = this.#log?.tail(EXIT_TAIL_LINES) ?? [];
    this.#lastTail = tail;
    this.#dispatch({ type: 'exited', generation, status, tail, at });
  }

  // A failed sweep (e.g. /proc unreadable) is reported, and the exit is handled all the same.
  async #sweepLeftovers(): Promise<number[]> {
    try {
      return await this.#deps.sweepLeftovers(this.name);
    } catch (err) {
      this.#deps.log.warn({ instance: this.name, err, event: 'sweep-failed' }, `${this.name}: cannot look for leftover processes: ${describeError(err)}`);
      return [];
    }
  }

  // A load line moved the report: the start turn goes once the buffers are allocated, and a fit decision is looked at once.
  #onLoad(generation: number, report: LoadReport): void {
    if (loadPercent(report) >= loadPercent({ phase: 'warmup' })) this.#deps.gpu?.releaseTurn(this.name);
    // It says it listens: ask now instead of at the next probe period, so readiness costs no wait.
    if (report.phase === 'listening' && this.#m.state === 'starting' && this.#m.generation === generation) this.#setTimer('probe', 0, () => void this.#probe(generation));
    if (this.#fitSeen || loadPercent(report) < loadPercent({ phase: 'context' })) return;
    this.#fitSeen = true;
    if (!isFitReduced(report)) return;
    const reason = describeFit(report, this.#devices);
    this.#fitReducedCount++;
    const holders = this.#deps.gpu?.describeHolders(this.#devices, () => null);
    this.#deps.log.warn(
      { instance: this.name, event: 'fit', decision: report.fitDecision, devices: this.#devices },
      `${this.name}: llama.cpp served less than configured: ${reason}${holders ? `; memory held: ${holders}` : ''}`,
    );
    this.#dispatch({ type: 'fit-reduced', generation, reason });
  }

  #pipeOutput(child: ChildHandle, log: InstanceLog): void {
    const streams = [child.stdout, child.stderr];
    const resume = () => streams.forEach((s) => s.resume());
    const load = this.#load;
    for (const [index, stream] of streams.entries()) {
      const name = index === 0 ? 'stdout' : 'stderr';
      stream.on('data', (chunk: Buffer) => {
        load?.push(name, chunk);
        if (log.write(chunk)) return;
        streams.forEach((s) => s.pause());
        log.once('drain', resume);
      });
    }
  }

  async #probe(generation: number): Promise<void> {
    const { host, port, policy, probe } = this.#plan;
    const timeoutMs = Math.min(2000, policy.healthIntervalS * 1000);
    const result = await this.#deps.prober.probe({ host, port, path: probe === 'tcp' ? null : policy.healthPath, timeoutMs });
    // A ready rpc-server that does not answer is serving its leader (isBusyWorker), not dead.
    const busy = this.#plan.engine === 'rpc-worker' && this.#m.state === 'ready' && isBusyWorker(result);
    const ok = busy || ('status' in result && result.status === 200);
    const answer = 'status' in result ? `${result.status} ${result.body}` : `error ${result.error}`;
    if (ok) await this.#watchRpcWorkers();
    this.#dispatch({ type: 'probed', generation, ok, answer, logWriteAt: this.#log?.lastWriteAt ?? null });
  }

  // ---- timers: one of each name; setting one replaces it ----

  #setTimer(name: TimerName, ms: number, fire: () => void): void {
    this.#cancelTimer(name);
    const handle = this.#deps.clock.setTimeout(() => {
      if (this.#timers.get(name) !== handle) return;
      this.#timers.delete(name);
      fire();
    }, ms);
    this.#timers.set(name, handle);
  }

  #cancelTimer(name: TimerName): void {
    const handle = this.#timers.get(name);
    if (handle === undefined) return;
    this.#deps.clock.clearTimeout(handle);
    this.#timers.delete(name);
  }
}

/** Awaits `work` for at most `ms`; the work itself goes on (a hung file system cannot be cancelled), its result is dropped. */
async function bounded<T>({ work, ms, clock }: { work: Promise<T>; ms: number; clock: Clock }): Promise<Bounded<T>> {
  let timer: TimerHandle | undefined;
  const timeout = new Promise<Bounded<T>>((resolve) => {
    timer = clock.setTimeout(() => resolve({ ok: false, error: `no answer from the file system within ${ms / 1000} s` }), ms);
  });
  try {
    const settled = work.then(
      (value): Bounded<T> => ({ ok: true, value }),
      (err: unknown): Bounded<T> => ({ ok: false, error: describeError(err) }),
    );
    return await Promise.race([settled, timeout]);
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
  }
}

/** `ctx 71936/131072, fitted to 54641 MiB free on GPU 0`, or `0/33 layers on the GPU, fitted to 493 MiB free on GPU 0`. */
function describeFit(report: LoadReport, devices: readonly number[]): string {
  const where = devices.length === 0 ? 'the GPU' : `GPU ${devices.join(', ')}`;
  const free = report.fit ? `, fitted to ${report.fit.freeMiB} MiB free on ${where}` : '';
  if (report.fitDecision === 'context-reduced' && report.contextReduced) return `ctx ${report.contextReduced.to}/${report.contextReduced.from}${free}`;
  if (report.offloaded) return `${report.offloaded.layers}/${report.offloaded.of} layers on the GPU, the rest on the CPU${free}`;
  return `layers moved to the CPU${free}`;
}
