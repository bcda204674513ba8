// One supervised llama-server: its state machine and the only code that moves
// it. Commands (start, stop, restart), child exits, probe answers and timers
// all arrive as events on one queue and are handled one at a time, so nothing
// outside reads the state and acts on it (llama-swap issue #946).
//
// This file is longer than our usual 250 lines on purpose: the state table and
// every handler that moves it belong together, readable in one place.
import { EventEmitter } from 'node:events';
import { BACKOFF_RESET_AFTER_READY_MS, type InstancePlan } from '../config/instance-plan.ts';
import { checkRestartBudget, nextBackoffMs } from './backoff.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { classifyExit, describeExit } from './exit-reason.ts';
import type { HealthProber, ProbeResult } from './health-probe.ts';
import { SpawnFailure, type ChildHandle, type ExitStatus, type Spawner } from './spawn-instance.ts';

export type InstanceState = 'stopped' | 'starting' | 'ready' | 'backoff' | 'fatal' | 'stopping';

/** The whole rulebook: the states each state may move to. */
const TRANSITIONS: Record<InstanceState, readonly InstanceState[]> = {
  stopped: ['starting', 'fatal'],
  starting: ['ready', 'backoff', 'fatal', 'stopping', 'stopped'],
  ready: ['backoff', 'fatal', 'stopping', 'stopped'],
  backoff: ['starting', 'fatal', 'stopped'],
  stopping: ['stopped', 'backoff', 'fatal'],
  fatal: ['starting', 'stopped'],
};

/** While starting, probe this often so readiness is seen within 250 ms. */
export const STARTING_PROBE_INTERVAL_MS = 200;
/** Failed probes in a row, once ready, before the instance is restarted. */
export const LIVENESS_FAILURES = 3;
/** How long to wait for our own previous process to free the port. */
const PORT_RELEASE_WAIT_MS = 10_000;
/** Lines of output kept with each exit record. */
export const EXIT_TAIL_LINES = 200;

export interface TransitionEvent {
  instance: string;
  from: InstanceState;
  to: InstanceState;
  pid: number | null;
  reason: string;
}

export interface LastExit {
  code: number | null;
  signal: string | null;
  reason: string;
}

/** `supervisor status --json`: exactly these keys. */
export interface InstanceStatus {
  name: string;
  state: InstanceState;
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

export interface EventLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Everything an instance does to the outside world, injected so tests can drive it. */
export interface InstanceDeps {
  clock: Clock;
  spawner: Spawner;
  prober: HealthProber;
  log: EventLog;
  openLog(plan: InstancePlan): Promise<InstanceLog>;
  /** Who listens on this port, if anyone. */
  findPortHolder(port: number): Promise<{ pid: number; command: string } | null>;
  /** Is this pid one of this instance's own processes (still exiting)? */
  isOwnProcess(pid: number, instance: string): Promise<boolean>;
  fileExists(path: string): boolean;
  /** Kills processes that escaped the group but carry the instance's marker; returns their pids. */
  sweepLeftovers(instance: string): Promise<number[]>;
}

/** What follows the exit of a child being stopped: rest, the restart policy (stall, liveness), or a start command that came in meanwhile. */
type AfterStop = 'stopped' | 'restart' | 'start';

/** One supervised instance. */
export class Instance extends EventEmitter {
  #plan: InstancePlan;
  readonly #deps: InstanceDeps;
  #state: InstanceState = 'stopped';
  #queue: Promise<unknown> = Promise.resolve();
  #child: ChildHandle | null = null;
  /** Incremented per spawn; events from an older child are ignored. */
  #generation = 0;
  #log: InstanceLog | null = null;
  /** The file #log writes to; a plan that moves it gets a new log at the next spawn. */
  #logFile: string | null = null;
  #timer: TimerHandle | null = null;
  /** Changes whenever #timer is cleared or replaced; an event posted by an older timer is dropped. */
  #timerToken = 0;
  #killTimer: TimerHandle | null = null;
  #killDeadline: number | null = null;
  /** The sweep of the last run's leftovers, until it is done. */
  #sweeping: Promise<void> | null = null;
  #afterStop: AfterStop = 'stopped';
  #stopReason = '';
  #startReason = '';
  #startedAt: number | null = null;
  #readySince: number | null = null;
  #restarts = 0;
  #restartsAt: number[] = [];
  #attempt = 0;
  #nextRestartAt: number | null = null;
  #lastExit: LastExit | null = null;
  #lastTail: string[] = [];
  #healthFailures = 0;
  #lastAnswer = '';
  #lastProgressAt = 0;
  #portWaitSince: number | null = null;

  constructor(plan: InstancePlan, deps: InstanceDeps) {
    super();
    this.#plan = plan;
    this.#deps = deps;
  }

  get name(): string {
    return this.#plan.name;
  }
  get state(): InstanceState {
    return this.#state;
  }
  get plan(): InstancePlan {
    return this.#plan;
  }
  /** The last lines of output kept with the last exit. */
  get lastTail(): readonly string[] {
    return this.#lastTail;
  }

  status(): InstanceStatus {
    const now = this.#deps.clock.now();
    return {
      name: this.#plan.name,
      state: this.#state,
      pid: this.#child?.pid ?? null,
      uptime_s: this.#child && this.#startedAt !== null ? Math.floor((now - this.#startedAt) / 1000) : null,
      restarts: this.#restarts,
      last_exit: this.#lastExit,
      port: this.#plan.port,
      gpu_ids: this.#plan.gpuIds,
      log_file: this.#plan.logFile,
      next_restart_at:
        this.#state === 'backoff' && this.#nextRestartAt !== null ? new Date(this.#nextRestartAt).toISOString() : null,
    };
  }

  /**
   * Starts the instance unless it is already starting or running; resolves once the start is under way.
   * While a stop is in progress, the start follows the exit (the last command wins).
   */
  async start(reason = 'start requested'): Promise<void> {
    const afterExit = await this.#enqueue(async () => {
      if (this.#state === 'starting' || this.#state === 'ready') return false;
      if (this.#state === 'stopping') {
        this.#afterStop = 'start';
        this.#startReason = reason;
        return true;
      }
      // A pending backoff or port wait is replaced by this start.
      this.#clearTimer();
      if (this.#state === 'fatal') {
        this.#restartsAt = [];
        this.#attempt = 0;
      }
      await this.#launch(reason);
      return false;
    });
    if (!afterExit) return;
    await this.waitFor(['stopped', 'backoff', 'fatal']);
    // The exit handler launches right after its transition to stopped: let it finish.
    await this.#enqueue(() => undefined);
  }

  /** Stops the instance and resolves once no process of it is left. */
  async stop(reason = 'stop requested', { graceMs }: { graceMs?: number } = {}): Promise<void> {
    await this.#enqueue(async () => {
      this.#afterStop = 'stopped';
      if (this.#state === 'backoff' || this.#state === 'fatal') {
        this.#clearTimer();
        this.#transition('stopped', reason);
      } else if (this.#state === 'stopped') {
        // Nothing runs, but a start may be waiting for the port: cancel it.
        this.#clearTimer();
      } else if (this.#state === 'starting' || this.#state === 'ready') {
        this.#terminate(reason, 'stopped', graceMs);
      } else if (this.#state === 'stopping' && graceMs !== undefined) {
        // Already stopping (a restart, a liveness kill): a shutdown may only shorten the grace.
        this.#scheduleKill(graceMs);
      }
    });
    await this.waitFor(['stopped', 'fatal']);
  }

  /** Stop (if running), then start again, with the plan as it is now. */
  async restart(reason = 'restart requested'): Promise<void> {
    await this.stop(reason);
    await this.start(reason);
  }

  /** Takes a new plan; the caller restarts the instance when the launch itself changed. */
  setPlan(plan: InstancePlan): void {
    this.#plan = plan;
  }

  /** Resolves once the state is one of `states` (at once if it already is). */
  waitFor(states: readonly InstanceState[]): Promise<InstanceState> {
    if (states.includes(this.#state)) return Promise.resolve(this.#state);
    return new Promise((resolve) => {
      const listener = (event: TransitionEvent) => {
        if (!states.includes(event.to)) return;
        this.off('transition', listener);
        resolve(event.to);
      };
      this.on('transition', listener);
    });
  }

  // ---- the queue: one event at a time ----

  #enqueue<T>(handler: () => Promise<T> | T): Promise<T> {
    const run = this.#queue.then(handler);
    this.#queue = run.catch((err: unknown) => {
      this.#deps.log.error({ instance: this.name, err }, `${this.name}: internal error in event handler`);
    });
    return run;
  }

  #transition(to: InstanceState, reason: string): void {
    const from = this.#state;
    if (!TRANSITIONS[from].includes(to)) {
      throw new Error(`illegal transition ${from} -> ${to} for instance ${this.name} (${reason})`);
    }
    this.#state = to;
    const event: TransitionEvent = { instance: this.name, from, to, pid: this.#child?.pid ?? null, reason };
    const level = to === 'fatal' || to === 'backoff' ? 'warn' : 'info';
    this.#deps.log[level]({ ...event, event: 'transition' }, `${this.name}: ${from} -> ${to} (${reason})`);
    this.emit('transition', event);
  }

  // ---- starting ----

  // Preflight, then spawn; the transition to starting carries the new pid.
  async #launch(reason: string): Promise<void> {
    // Leftovers of the last run must be gone before the next one takes the port.
    if (this.#sweeping) await this.#sweeping;
    this.#sweeping = null;
    const plan = this.#plan;
    if (plan.model !== null && !this.#deps.fileExists(plan.model)) {
      return this.#fail(`model file not found: ${plan.model}`, { code: null, signal: null });
    }
    let holder: { pid: number; command: string } | null;
    try {
      holder = await this.#deps.findPortHolder(plan.port);
    } catch (err) {
      // /proc unreadable is no reason to refuse a start: llama-server reports a taken port itself.
      this.#deps.log.warn({ instance: this.name, err, event: 'port-check-failed' }, `${this.name}: cannot check port ${plan.port}: ${(err as Error).message}`);
      holder = null;
    }
    if (holder) {
      const own = holder.pid > 0 && (await this.#deps.isOwnProcess(holder.pid, plan.name));
      const now = this.#deps.clock.now();
      this.#portWaitSince ??= now;
      if (!own || now - this.#portWaitSince > PORT_RELEASE_WAIT_MS) {
        this.#portWaitSince = null;
        const who = holder.pid > 0 ? `pid ${holder.pid} (${holder.command})` : holder.command;
        return this.#fail(`port ${plan.port} is already in use by ${who}`, { code: null, signal: null });
      }
      // Our own previous process is still letting go of the port: look again shortly.
      this.#setTimer(STARTING_PROBE_INTERVAL_MS, () => this.#launch(reason));
      return;
    }
    this.#portWaitSince = null;
    const log = await this.#openLog(plan);
    if (log === null) return;
    let child: ChildHandle;
    try {
      child = await this.#deps.spawner.spawn(plan);
    } catch (err) {
      // A SpawnFailure is a config problem (missing executable, unknown user); anything else is ours, but still fatal, never a crash of PID 1.
      const message = err instanceof SpawnFailure ? err.message : `cannot start ${plan.executable}: ${(err as Error).message}`;
      if (!(err instanceof SpawnFailure)) this.#deps.log.error({ instance: this.name, err, event: 'spawn-error' }, message);
      log.appendRecord(`[supervisor] ${message}`);
      return this.#fail(message, { code: null, signal: null });
    }
    const generation = ++this.#generation;
    this.#child = child;
    this.#startedAt = this.#deps.clock.now();
    this.#readySince = null;
    this.#lastAnswer = '';
    this.#lastProgressAt = this.#startedAt;
    this.#healthFailures = 0;
    this.#pipeOutput(child, log);
    log.appendRecord(`[supervisor] started pid ${child.pid}: ${plan.executable} ${plan.args.join(' ')}`);
    // #enqueue logs a failing handler; the promise it returns is not passed on, so a failure is no unhandled rejection.
    void child.exited.then((status) => {
      void this.#enqueue(() => this.#onExit(generation, status));
    });
    this.#transition('starting', reason);
    this.#scheduleProbe(generation, STARTING_PROBE_INTERVAL_MS);
  }

  // The log of the plan's file, opened on first use and reopened when the plan moved it; null (and fatal) when it cannot be opened.
  async #openLog(plan: InstancePlan): Promise<InstanceLog | null> {
    if (this.#log !== null && this.#logFile === plan.logFile) return this.#log;
    const previous = this.#log;
    this.#log = null;
    this.#logFile = null;
    await previous?.close();
    try {
      this.#log = await this.#deps.openLog(plan);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#fail(`cannot open log file ${plan.logFile}: ${message}`, null);
      return null;
    }
    this.#logFile = plan.logFile;
    return this.#log;
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

  // ---- probes: readiness while starting, liveness once ready ----

  #scheduleProbe(generation: number, delayMs: number): void {
    this.#timer = this.#deps.clock.setTimeout(() => {
      this.#timer = null;
      const { host, port, policy } = this.#plan;
      const timeoutMs = Math.min(2000, policy.healthIntervalS * 1000);
      void this.#deps.prober
        .probe({ host, port, path: this.#plan.probe === 'tcp' ? null : policy.healthPath, timeoutMs })
        .then((result) => {
          void this.#enqueue(() => this.#onProbe(generation, result));
        });
    }, delayMs);
  }

  #onProbe(generation: number, result: ProbeResult): void {
    if (generation !== this.#generation || this.#child === null) return;
    const now = this.#deps.clock.now();
    const ok = 'status' in result && result.status === 200;
    const answer = 'status' in result ? `${result.status} ${result.body}` : `error ${result.error}`;
    if (this.#state === 'starting') {
      if (answer !== this.#lastAnswer) {
        this.#lastAnswer = answer;
        this.#lastProgressAt = now;
      }
      if (ok) {
        this.#readySince = now;
        this.#transition('ready', `health check ${this.#plan.policy.healthPath} answered 200`);
        this.#scheduleProbe(generation, this.#plan.policy.healthIntervalS * 1000);
        return;
      }
      const progressAt = Math.max(this.#lastProgressAt, this.#log?.lastWriteAt ?? 0);
      const stallMs = this.#plan.policy.startupStallS * 1000;
      if (now - progressAt >= stallMs) {
        this.#terminate(
          `stalled while starting: no log output and no change in the health answer for ${this.#plan.policy.startupStallS} s (last answer: ${answer.slice(0, 120)})`,
          'restart',
        );
        return;
      }
      this.#scheduleProbe(generation, STARTING_PROBE_INTERVAL_MS);
      return;
    }
    if (this.#state !== 'ready') return;
    this.#healthFailures = ok ? 0 : this.#healthFailures + 1;
    if (this.#healthFailures >= LIVENESS_FAILURES) {
      this.#terminate(`liveness: ${LIVENESS_FAILURES} failed health checks in a row (last: ${answer.slice(0, 120)})`, 'restart');
      return;
    }
    this.#scheduleProbe(generation, this.#plan.policy.healthIntervalS * 1000);
  }

  // ---- stopping ----

  // SIGTERM to the group now, SIGKILL after stop_timeout_s (or a shorter budget); the exit event finishes the stop.
  #terminate(reason: string, afterStop: AfterStop = 'stopped', graceMs?: number): void {
    const child = this.#child;
    if (child === null) return;
    this.#clearTimer();
    this.#afterStop = afterStop;
    this.#stopReason = reason;
    this.#transition('stopping', reason);
    this.#killDeadline = null;
    child.signal('SIGTERM');
    this.#scheduleKill(graceMs ?? this.#plan.policy.stopTimeoutS * 1000);
  }

  // Arms (or brings forward) the SIGKILL of the current child.
  #scheduleKill(graceMs: number): void {
    const child = this.#child;
    if (child === null) return;
    const deadline = this.#deps.clock.now() + graceMs;
    if (this.#killDeadline !== null && this.#killDeadline <= deadline) return;
    if (this.#killTimer) this.#deps.clock.clearTimeout(this.#killTimer);
    this.#killDeadline = deadline;
    const startedAt = this.#deps.clock.now();
    this.#killTimer = this.#deps.clock.setTimeout(() => {
      this.#killTimer = null;
      if (this.#child !== child) return;
      const waited = ((this.#deps.clock.now() - startedAt) / 1000).toFixed(1);
      this.#deps.log.warn(
        { instance: this.name, pid: child.pid, event: 'kill' },
        `${this.name}: still running ${waited} s after SIGTERM, sending SIGKILL`,
      );
      child.signal('SIGKILL');
    }, graceMs);
  }

  // ---- exits ----

  async #onExit(generation: number, status: ExitStatus): Promise<void> {
    if (generation !== this.#generation) return;
    const child = this.#child;
    this.#child = null;
    this.#clearTimer();
    if (this.#killTimer) this.#deps.clock.clearTimeout(this.#killTimer);
    this.#killTimer = null;
    // The sweep runs while the exit is handled: a restart's backoff starts now, and the next
    // launch waits for the sweep; a stop, a clean exit or a fatal one waits for it below.
    const sweep = this.#sweepLeftovers().then((swept) => {
      if (swept.length === 0) return;
      this.#deps.log.warn(
        { instance: this.name, pids: swept, event: 'sweep' },
        `${this.name}: killed ${swept.length} leftover process(es) that escaped the process group: ${swept.join(', ')}`,
      );
    });
    this.#sweeping = sweep;
    const tail = this.#log?.tail(EXIT_TAIL_LINES) ?? [];
    this.#lastTail = tail;
    const wasStopping = this.#state === 'stopping';
    const verdict = classifyExit(status, tail);
    const reason = wasStopping ? describeExit(status) : verdict.reason;
    this.#lastExit = { code: status.code, signal: status.signal, reason };
    this.#log?.appendRecord(`[supervisor] pid ${child?.pid} ${describeExit(status)}${wasStopping ? '' : `: ${reason}`}`);

    if (wasStopping) {
      await sweep;
      if (this.#afterStop === 'restart') {
        // A stall or failed liveness is a failure: the restart policy decides.
        this.#lastExit.reason = this.#stopReason;
        if (this.#plan.policy.restart === 'never') return this.#fail(`${this.#stopReason} (restart = "never")`, status);
        return this.#scheduleRestart(this.#stopReason, status);
      }
      this.#transition('stopped', reason);
      if (this.#afterStop === 'start') {
        this.#afterStop = 'stopped';
        await this.#launch(this.#startReason);
      }
      return;
    }
    const clean = status.code === 0;
    const { restart } = this.#plan.policy;
    if (!verdict.configFailure && (restart === 'always' || (restart === 'on-failure' && !clean))) {
      return this.#scheduleRestart(reason, status);
    }
    await sweep;
    if (verdict.configFailure) return this.#fail(reason, status);
    if (clean) return this.#transition('stopped', reason);
    return this.#fail(`${reason} (restart = "never")`, status);
  }

  // A failed sweep (e.g. /proc unreadable) is reported, and the exit is handled all the same.
  async #sweepLeftovers(): Promise<number[]> {
    try {
      return await this.#deps.sweepLeftovers(this.name);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.#deps.log.warn({ instance: this.name, err, event: 'sweep-failed' }, `${this.name}: cannot look for leftover processes: ${message}`);
      return [];
    }
  }

  #scheduleRestart(reason: string, status: ExitStatus): void {
    const now = this.#deps.clock.now();
    const policy = this.#plan.policy;
    if (this.#readySince !== null && now - this.#readySince >= BACKOFF_RESET_AFTER_READY_MS) this.#attempt = 0;
    const budget = checkRestartBudget({
      restartsAt: this.#restartsAt,
      now,
      maxRestarts: policy.maxRestarts,
      windowS: policy.restartWindowS,
    });
    if (!budget.allowed) {
      this.#restartsAt = budget.recent;
      return this.#fail(`gave up after ${budget.recent.length} restarts within ${policy.restartWindowS} s; last: ${reason}`, status);
    }
    const delay = nextBackoffMs({ attempt: this.#attempt, initialMs: policy.backoffInitialMs, maxMs: policy.backoffMaxMs });
    this.#attempt++;
    this.#restartsAt = [...budget.recent, now];
    this.#nextRestartAt = now + delay;
    this.#transition('backoff', `${reason}; restarting in ${delay} ms`);
    this.#setTimer(delay, async () => {
      if (this.#state !== 'backoff') return;
      this.#nextRestartAt = null;
      this.#restarts++;
      await this.#launch(`restart #${this.#restarts} after backoff`);
    });
  }

  // Gives up: fatal keeps the reason for status; nothing restarts it but a start command.
  #fail(reason: string, status: ExitStatus | null): void {
    this.#lastExit = { code: status?.code ?? null, signal: status?.signal ?? null, reason };
    if (this.#state === 'fatal') {
      // A start from fatal failed again before spawning: still fatal, and no fatal -> fatal event.
      this.#deps.log.warn({ instance: this.name, event: 'start-failed', reason }, `${this.name}: still fatal (${reason})`);
      return;
    }
    this.#transition('fatal', reason);
  }

  // Posts `handler` to the queue after ms, unless the timer is cleared or replaced before the handler runs.
  #setTimer(ms: number, handler: () => Promise<void> | void): void {
    if (this.#timer) this.#deps.clock.clearTimeout(this.#timer);
    const token = ++this.#timerToken;
    this.#timer = this.#deps.clock.setTimeout(() => {
      this.#timer = null;
      void this.#enqueue(() => (token === this.#timerToken ? handler() : undefined));
    }, ms);
  }

  #clearTimer(): void {
    if (this.#timer) this.#deps.clock.clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerToken++;
    this.#nextRestartAt = null;
    this.#portWaitSince = null;
  }

  /** Closes the log file; call once the instance is stopped for good. */
  async close(): Promise<void> {
    await this.#enqueue(async () => {
      await this.#log?.close();
      this.#log = null;
    });
  }
}
