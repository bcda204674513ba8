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
import type { Clock, TimerHandle } from './clock.ts';
import type { HealthProber } from './health-probe.ts';
import {
  initialMachine,
  isStartSettled,
  isStopSettled,
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
/** File-system work on a user's path (the log file, the model) that takes longer than this fails the start: a hung mount must not hang us. */
const FS_TIMEOUT_MS = 5000;

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

  status(): InstanceStatus {
    const m = this.#m;
    const now = this.#deps.clock.now();
    return {
      name: this.#plan.name,
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
    };
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
    const log = await this.#openLog(plan);
    return log === null ? { kind: 'ok' } : { kind: 'fail', reason: log };
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
      this.#dispatch({ type: 'spawn-failed', generation, reason });
      return;
    }
    this.#child = { generation, handle };
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
    if (swept.length > 0) {
      this.#deps.log.warn(
        { instance: this.name, pids: swept, event: 'sweep' },
        `${this.name}: killed ${swept.length} leftover process(es) that escaped the process group: ${swept.join(', ')}`,
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

  #pipeOutput(child: ChildHandle, log: InstanceLog): void {
    const streams = [child.stdout, child.stderr];
    const resume = () => streams.forEach((s) => s.resume());
    for (const stream of streams) {
      stream.on('data', (chunk: Buffer) => {
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
    const ok = 'status' in result && result.status === 200;
    const answer = 'status' in result ? `${result.status} ${result.body}` : `error ${result.error}`;
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
