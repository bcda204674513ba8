// The rulebook of one supervised process, as a pure reducer:
// (machine, event, context) → (machine, effects). Nothing here touches a
// process, a file or a clock: commands, probe answers, exits and timers come
// in as events, and what to do about them goes out as effects that
// instance.ts carries out. Every state change is one `transition` effect,
// checked against TRANSITIONS.
//
// Longer than our usual 250 lines on purpose: the table and every handler
// that moves along it belong together, readable in one place.
import { BACKOFF_RESET_AFTER_READY_MS, type InstancePlan } from '../config/instance-plan.ts';
import type { ExitStatus } from '../process/spawn-group.ts';
import { checkRestartBudget, nextBackoffMs } from './backoff.ts';
import { engineFacts } from '../engines/registry.ts';
import { classifyExit, describeExit } from './exit-reason.ts';

/**
 * What `status` shows:
 * - stopped: nothing runs (never started, stopped by hand, or exited cleanly);
 * - waiting: a start waits for something outside (our own previous process still holding the port);
 * - starting: spawned, not yet answering its health check;
 * - ready: answering;
 * - stopping: being stopped, will stay stopped;
 * - restarting: being stopped, starts again right after (a restart, or a start during a stop);
 * - failing: being stopped because it failed (stalled start, failed liveness); then the restart policy decides;
 * - backoff: crashed, restarts at `next_restart_at`;
 * - fatal: given up (config failure, restart budget spent, restart = "never"); only a command starts it;
 * - idle: loaded on demand and not loaded now (never yet, unloaded when idle, or to make room); a request loads it;
 * - unloading: being stopped to become idle (idle timeout, room for another, supervisor unload).
 */
export type InstanceState = 'stopped' | 'idle' | 'waiting' | 'starting' | 'ready' | 'stopping' | 'unloading' | 'restarting' | 'failing' | 'backoff' | 'fatal';

export const INSTANCE_STATES: readonly InstanceState[] = ['stopped', 'idle', 'waiting', 'starting', 'ready', 'stopping', 'unloading', 'restarting', 'failing', 'backoff', 'fatal'];

/** The whole rulebook: the states each state may move to. */
export const TRANSITIONS: Readonly<Record<InstanceState, readonly InstanceState[]>> = {
  stopped: ['starting', 'waiting', 'fatal', 'idle'],
  idle: ['starting', 'waiting', 'fatal', 'stopped'],
  waiting: ['starting', 'stopped', 'fatal', 'idle'],
  starting: ['ready', 'stopping', 'unloading', 'restarting', 'failing', 'backoff', 'fatal', 'stopped'],
  ready: ['stopping', 'unloading', 'restarting', 'failing', 'backoff', 'fatal', 'stopped'],
  stopping: ['stopped', 'restarting'],
  unloading: ['idle', 'stopping', 'restarting'],
  restarting: ['starting', 'waiting', 'stopping', 'unloading', 'stopped', 'idle', 'fatal'],
  failing: ['backoff', 'fatal', 'restarting', 'stopping', 'unloading'],
  backoff: ['starting', 'waiting', 'stopped', 'fatal', 'idle'],
  fatal: ['starting', 'waiting', 'stopped', 'idle'],
};

/** While starting, probe this often so readiness is seen within 250 ms. */
export const STARTING_PROBE_INTERVAL_MS = 200;
/** Failed probes in a row, once ready, before the instance is restarted. */
export const LIVENESS_FAILURES = 3;
/** While waiting, look again this often. */
const WAIT_RETRY_MS = 200;

/** How the last run ended, as `status` shows it. */
export interface LastExit {
  code: number | null;
  signal: string | null;
  reason: string;
}

/** The timers an instance runs; setting one replaces it. */
export type TimerName = 'probe' | 'kill' | 'backoff' | 'retry';

/** A start on its way to a process: the checks before the spawn, then the spawn itself. */
export interface Launch {
  generation: number;
  reason: string;
  stage: 'preflight' | 'spawn';
  /** A stop (or an unload) came while the spawn was under way: stop the process as soon as it exists. */
  stopAfterSpawn: 'stopping' | 'unloading' | null;
}

/** Everything the rulebook knows about one instance. */
export interface Machine {
  readonly state: InstanceState;
  /** When the state was entered, and why. */
  readonly since: number | null;
  readonly reason: string;
  /** Of the current launch or process; events of an older one are ignored. */
  readonly generation: number;
  readonly pid: number | null;
  readonly launch: Launch | null;
  readonly startedAt: number | null;
  readonly readySince: number | null;
  readonly restarts: number;
  readonly restartsAt: readonly number[];
  readonly attempt: number;
  readonly nextRestartAt: number | null;
  readonly lastExit: LastExit | null;
  readonly healthFailures: number;
  readonly lastAnswer: string;
  readonly lastProgressAt: number;
  readonly waitSince: number | null;
  /** Why the current (or next) process is stopped; a failing one's exit is recorded with it. */
  readonly stopReason: string;
  /** The reason of the start that follows a restart or a wait. */
  readonly startReason: string;
  readonly termAt: number | null;
  readonly killDeadline: number | null;
  /** The process is being stopped for a reason a restart would not fix (on_fit_reduced = "fail"): fatal after the exit. */
  readonly giveUp: boolean;
}

/** What the checks before a spawn found. */
export type PreflightOutcome =
  | { kind: 'ok' }
  /** Try again shortly; after limitMs of waiting, fail with giveUp. */
  | { kind: 'wait'; reason: string; limitMs: number; giveUp: string }
  | { kind: 'fail'; reason: string };

export type InstanceEvent =
  | { type: 'start'; reason: string }
  | { type: 'stop'; reason: string; graceMs?: number }
  | { type: 'restart'; reason: string }
  /** An on-demand instance that is not loaded now: stopped → idle. */
  | { type: 'park'; reason: string }
  /** Stop it to become idle (idle timeout, room for another, a command). */
  | { type: 'unload'; reason: string; graceMs?: number }
  | { type: 'preflight-done'; generation: number; outcome: PreflightOutcome }
  | { type: 'spawned'; generation: number; pid: number }
  | { type: 'spawn-failed'; generation: number; reason: string }
  | { type: 'probed'; generation: number; ok: boolean; answer: string; logWriteAt: number | null }
  /** The process exited, its leftovers are swept and its output drained; `at` is the exit's time. */
  | { type: 'exited'; generation: number; status: ExitStatus; tail: readonly string[]; at: number }
  | { type: 'timer'; timer: Exclude<TimerName, 'probe'> }
  /** llama.cpp's fit served less than configured (a shorter context, layers on the CPU). */
  | { type: 'fit-reduced'; generation: number; reason: string };

export type InstanceEffect =
  | { type: 'transition'; from: InstanceState; to: InstanceState; pid: number | null; reason: string }
  | { type: 'preflight'; generation: number }
  | { type: 'spawn'; generation: number }
  | { type: 'signal'; signal: 'SIGTERM' | 'SIGKILL' }
  | { type: 'probe'; generation: number; afterMs: number }
  | { type: 'set-timer'; timer: Exclude<TimerName, 'probe'>; ms: number }
  | { type: 'cancel-timer'; timer: TimerName }
  /** A line in the instance's own log file. */
  | { type: 'record'; text: string }
  /** A daemon log line that is not a transition. */
  | { type: 'log'; level: 'info' | 'warn'; event: string; message: string; fields?: Record<string, unknown> };

/** What the reducer may read besides the machine. */
export interface ReduceContext {
  now: number;
  plan: InstancePlan;
}

export interface ReduceResult {
  machine: Machine;
  effects: InstanceEffect[];
}

/** A move TRANSITIONS does not allow: a bug in the reducer, never a user error. */
class IllegalTransitionError extends Error {}

/** A fresh, never started instance. */
export function initialMachine(): Machine {
  return {
    state: 'stopped',
    since: null,
    reason: '',
    generation: 0,
    pid: null,
    launch: null,
    startedAt: null,
    readySince: null,
    restarts: 0,
    restartsAt: [],
    attempt: 0,
    nextRestartAt: null,
    lastExit: null,
    healthFailures: 0,
    lastAnswer: '',
    lastProgressAt: 0,
    waitSince: null,
    stopReason: '',
    startReason: '',
    termAt: null,
    killDeadline: null,
    giveUp: false,
  };
}

/** The states in which a process of the instance is alive (or still being stopped). */
const RUNNING: readonly InstanceState[] = ['starting', 'ready', 'stopping', 'unloading', 'restarting', 'failing'];
/** The states in which the process is being stopped. */
const TERMINATING: readonly InstanceState[] = ['stopping', 'unloading', 'restarting', 'failing'];

/** Is a start under way or done (for `start()` and `restart()` to return)? */
export function isStartSettled(m: Machine): boolean {
  return m.launch === null && !TERMINATING.includes(m.state);
}

/** Is nothing of the instance running, nor about to (for `stop()` to return)? */
export function isStopSettled(m: Machine): boolean {
  return m.launch === null && (m.state === 'stopped' || m.state === 'fatal');
}

/** Is the instance unloaded (or was never loaded), for `unload()` to return? */
export function isUnloadSettled(m: Machine): boolean {
  return m.launch === null && (m.state === 'idle' || m.state === 'stopped' || m.state === 'fatal');
}

/** Applies one event: the next machine and what to do. Throws IllegalTransitionError only on a bug. */
export function reduce(machine: Machine, event: InstanceEvent, ctx: ReduceContext): ReduceResult {
  const step = new Step(machine, ctx);
  step.handle(event);
  return { machine: step.m, effects: step.effects };
}

// One reduction: a draft of the machine and the effects so far. Handlers read and
// write the draft; only go() changes the state.
class Step {
  m: { -readonly [K in keyof Machine]: Machine[K] };
  readonly effects: InstanceEffect[] = [];
  readonly #ctx: ReduceContext;

  constructor(machine: Machine, ctx: ReduceContext) {
    this.m = { ...machine, launch: machine.launch && { ...machine.launch } };
    this.#ctx = ctx;
  }

  get now(): number {
    return this.#ctx.now;
  }
  get plan(): InstancePlan {
    return this.#ctx.plan;
  }

  handle(event: InstanceEvent): void {
    switch (event.type) {
      case 'start':
        return this.onStart(event.reason);
      case 'stop':
        return this.onStop(event.reason, event.graceMs);
      case 'restart':
        return this.onRestart(event.reason);
      case 'park':
        return this.onPark(event.reason);
      case 'unload':
        return this.onUnload(event.reason, event.graceMs);
      case 'preflight-done':
        return this.onPreflight(event.generation, event.outcome);
      case 'spawned':
        return this.onSpawned(event.generation, event.pid);
      case 'spawn-failed':
        return this.onSpawnFailed(event.generation, event.reason);
      case 'probed':
        return this.onProbe(event);
      case 'exited':
        return this.onExit(event);
      case 'timer':
        return this.onTimer(event.timer);
      case 'fit-reduced':
        return this.onFitReduced(event.generation, event.reason);
    }
  }

  // ---- commands ----

  onStart(reason: string): void {
    const { state } = this.m;
    if (state === 'stopping' || state === 'unloading' || state === 'failing') {
      // The last command wins: start again right after the exit.
      this.m.startReason = reason;
      return this.go('restarting', reason);
    }
    if (RUNNING.includes(state)) return;
    if (this.m.launch) {
      this.m.launch.stopAfterSpawn = null;
      return;
    }
    if (state === 'fatal') {
      this.m.restartsAt = [];
      this.m.attempt = 0;
    }
    this.cancel('backoff', 'retry');
    this.m.nextRestartAt = null;
    this.m.waitSince = null;
    this.beginLaunch(reason);
  }

  onStop(reason: string, graceMs: number | undefined): void {
    const { state } = this.m;
    if (state === 'starting' || state === 'ready') return this.terminate('stopping', reason, graceMs);
    if (TERMINATING.includes(state) && this.m.pid !== null) {
      // Already on its way down: the stop wins over what was to follow, and a shutdown may only shorten the grace.
      if (state !== 'stopping') this.go('stopping', reason);
      if (graceMs !== undefined) this.armKill(graceMs);
      return;
    }
    // Nothing runs: a launch under way is cancelled, or stopped as soon as its process exists.
    this.cancel('backoff', 'retry');
    this.m.nextRestartAt = null;
    this.m.waitSince = null;
    if (this.m.launch?.stage === 'spawn') {
      this.m.launch.stopAfterSpawn = 'stopping';
      return;
    }
    this.m.launch = null;
    if (state !== 'stopped') this.go('stopped', reason);
  }

  onPark(reason: string): void {
    if (this.m.state === 'stopped' && this.m.launch === null) this.go('idle', reason);
  }

  // Like a stop, but the instance rests idle: the next request loads it again.
  onUnload(reason: string, graceMs: number | undefined): void {
    const { state } = this.m;
    if (state === 'starting' || state === 'ready') return this.terminate('unloading', reason, graceMs);
    if ((state === 'restarting' || state === 'failing') && this.m.pid !== null) {
      this.go('unloading', reason);
      if (graceMs !== undefined) this.armKill(graceMs);
      return;
    }
    // Stopped by hand stays stopped; already on its way down or unloaded: nothing to do.
    if (state === 'stopping' || state === 'unloading' || state === 'idle' || (state === 'stopped' && this.m.launch === null)) return;
    this.cancel('backoff', 'retry');
    this.m.nextRestartAt = null;
    this.m.waitSince = null;
    if (this.m.launch?.stage === 'spawn') {
      this.m.launch.stopAfterSpawn = 'unloading';
      return;
    }
    this.m.launch = null;
    this.go('idle', reason);
  }

  onRestart(reason: string): void {
    const { state } = this.m;
    if (state === 'starting' || state === 'ready') {
      this.m.startReason = reason;
      return this.terminate('restarting', reason);
    }
    this.onStart(reason);
  }

  // ---- the way to a process ----

  beginLaunch(reason: string): void {
    this.m.generation += 1;
    this.m.launch = { generation: this.m.generation, reason, stage: 'preflight', stopAfterSpawn: null };
    this.m.giveUp = false;
    this.m.startReason = reason;
    this.effects.push({ type: 'preflight', generation: this.m.generation });
  }

  onPreflight(generation: number, outcome: PreflightOutcome): void {
    const launch = this.m.launch;
    if (launch === null || launch.generation !== generation || launch.stage !== 'preflight') return;
    if (outcome.kind === 'ok') {
      launch.stage = 'spawn';
      this.effects.push({ type: 'spawn', generation });
      return;
    }
    this.m.launch = null;
    if (outcome.kind === 'fail') {
      this.m.waitSince = null;
      return this.fail(outcome.reason, null);
    }
    this.m.waitSince ??= this.now;
    if (this.now - this.m.waitSince > outcome.limitMs) {
      this.m.waitSince = null;
      return this.fail(outcome.giveUp, null);
    }
    if (this.m.state !== 'waiting') this.go('waiting', outcome.reason);
    // Still waiting, for something else now (one RPC worker of two is up): status says what is left.
    else this.m.reason = outcome.reason;
    this.effects.push({ type: 'set-timer', timer: 'retry', ms: WAIT_RETRY_MS });
  }

  onSpawned(generation: number, pid: number): void {
    const launch = this.m.launch;
    if (launch === null || launch.generation !== generation || launch.stage !== 'spawn') return;
    this.m.launch = null;
    Object.assign(this.m, { pid, startedAt: this.now, readySince: null, lastAnswer: '', lastProgressAt: this.now, healthFailures: 0, waitSince: null });
    this.effects.push({ type: 'record', text: `[supervisor] started pid ${pid}: ${this.plan.executable} ${this.plan.args.join(' ')}` });
    this.go('starting', launch.reason);
    if (launch.stopAfterSpawn !== null) return this.terminate(launch.stopAfterSpawn, `${launch.stopAfterSpawn === 'stopping' ? 'stop' : 'unload'} requested while starting`);
    this.effects.push({ type: 'probe', generation, afterMs: STARTING_PROBE_INTERVAL_MS });
  }

  onSpawnFailed(generation: number, reason: string): void {
    const launch = this.m.launch;
    if (launch === null || launch.generation !== generation || launch.stage !== 'spawn') return;
    this.m.launch = null;
    this.effects.push({ type: 'record', text: `[supervisor] ${reason}` });
    if (launch.stopAfterSpawn === null) return this.fail(reason, null);
    this.m.lastExit = { code: null, signal: null, reason };
    const rest = launch.stopAfterSpawn === 'unloading' ? 'idle' : 'stopped';
    if (this.m.state !== rest) this.go(rest, reason);
  }

  // ---- probes: readiness while starting, liveness once ready ----

  onProbe({ generation, ok, answer, logWriteAt }: Extract<InstanceEvent, { type: 'probed' }>): void {
    if (generation !== this.m.generation || this.m.pid === null) return;
    const { policy } = this.plan;
    if (this.m.state === 'starting') {
      if (answer !== this.m.lastAnswer) {
        this.m.lastAnswer = answer;
        this.m.lastProgressAt = this.now;
      }
      if (ok) {
        this.m.readySince = this.now;
        this.go('ready', `health check ${policy.healthPath} answered 200`);
        this.effects.push({ type: 'probe', generation, afterMs: policy.healthIntervalS * 1000 });
        return;
      }
      const progressAt = Math.max(this.m.lastProgressAt, logWriteAt ?? 0);
      if (this.now - progressAt >= policy.startupStallS * 1000) {
        const why = `stalled while starting: no log output and no change in the health answer for ${policy.startupStallS} s (last answer: ${answer.slice(0, 120)})`;
        return this.terminate('failing', why);
      }
      this.effects.push({ type: 'probe', generation, afterMs: STARTING_PROBE_INTERVAL_MS });
      return;
    }
    if (this.m.state !== 'ready') return;
    this.m.healthFailures = ok ? 0 : this.m.healthFailures + 1;
    if (this.m.healthFailures >= LIVENESS_FAILURES) {
      return this.terminate('failing', `liveness: ${LIVENESS_FAILURES} failed health checks in a row (last: ${answer.slice(0, 120)})`);
    }
    this.effects.push({ type: 'probe', generation, afterMs: policy.healthIntervalS * 1000 });
  }

  // A smaller model than configured: said (warn), or the start fails for good (a restart would fit the same way).
  onFitReduced(generation: number, reason: string): void {
    if (generation !== this.m.generation || this.m.pid === null || (this.m.state !== 'starting' && this.m.state !== 'ready')) return;
    if (this.plan.policy.onFitReduced === 'fail') {
      this.m.giveUp = true;
      return this.terminate('failing', `${reason} (on_fit_reduced = "fail")`);
    }
    this.effects.push({ type: 'log', level: 'warn', event: 'fit-reduced', message: reason, fields: { reason } });
  }

  // ---- stopping ----

  // SIGTERM to the group now, SIGKILL after stop_timeout_s (or a shorter grace); the exit finishes the stop.
  terminate(to: 'stopping' | 'unloading' | 'restarting' | 'failing', reason: string, graceMs?: number): void {
    this.cancel('probe');
    this.m.stopReason = reason;
    this.go(to, reason);
    this.m.termAt = this.now;
    this.m.killDeadline = null;
    this.effects.push({ type: 'signal', signal: 'SIGTERM' });
    this.armKill(graceMs ?? this.plan.policy.stopTimeoutS * 1000);
  }

  // Arms (or brings forward) the SIGKILL of the current process.
  armKill(graceMs: number): void {
    if (this.m.pid === null) return;
    const deadline = this.now + graceMs;
    if (this.m.killDeadline !== null && this.m.killDeadline <= deadline) return;
    this.m.killDeadline = deadline;
    this.effects.push({ type: 'set-timer', timer: 'kill', ms: graceMs });
  }

  // ---- exits ----

  onExit({ generation, status, tail, at }: Extract<InstanceEvent, { type: 'exited' }>): void {
    if (generation !== this.m.generation || this.m.pid === null) return;
    const pid = this.m.pid;
    this.m.pid = null;
    this.m.killDeadline = null;
    this.m.termAt = null;
    this.cancel('probe', 'kill');
    const { state } = this.m;
    const stopped = TERMINATING.includes(state);
    const verdict = classifyExit(status, tail, engineFacts(this.plan.engine).configFailures);
    const reason = stopped ? describeExit(status) : verdict.reason;
    this.m.lastExit = { code: status.code, signal: status.signal, reason };
    this.effects.push({ type: 'record', text: `[supervisor] pid ${pid} ${describeExit(status)}${stopped ? '' : `: ${reason}`}` });

    if (state === 'stopping') return this.go('stopped', reason);
    if (state === 'unloading') return this.go('idle', reason);
    if (state === 'restarting') return this.beginLaunch(this.m.startReason);
    if (state === 'failing') {
      // A stall or failed liveness is a failure: the restart policy decides.
      this.m.lastExit = { ...this.m.lastExit, reason: this.m.stopReason };
      if (this.m.giveUp) return this.fail(this.m.stopReason, status);
      if (this.plan.policy.restart === 'never') return this.fail(`${this.m.stopReason} (restart = "never")`, status);
      return this.scheduleRestart(this.m.stopReason, at);
    }
    const clean = status.code === 0;
    const { restart } = this.plan.policy;
    if (!verdict.configFailure && (restart === 'always' || (restart === 'on-failure' && !clean))) return this.scheduleRestart(reason, at);
    if (verdict.configFailure) return this.fail(reason, status);
    if (clean) return this.go('stopped', reason);
    this.fail(`${reason} (restart = "never")`, status);
  }

  // The backoff counts from the exit, so the time spent sweeping leftovers is not added to it.
  scheduleRestart(reason: string, exitAt: number): void {
    const { policy } = this.plan;
    if (this.m.readySince !== null && this.now - this.m.readySince >= BACKOFF_RESET_AFTER_READY_MS) this.m.attempt = 0;
    const budget = checkRestartBudget({ restartsAt: [...this.m.restartsAt], now: this.now, maxRestarts: policy.maxRestarts, windowS: policy.restartWindowS });
    if (!budget.allowed) {
      this.m.restartsAt = budget.recent;
      return this.fail(`gave up after ${budget.recent.length} restarts within ${policy.restartWindowS} s; last: ${reason}`, this.m.lastExit);
    }
    const delay = nextBackoffMs({ attempt: this.m.attempt, initialMs: policy.backoffInitialMs, maxMs: policy.backoffMaxMs });
    this.m.attempt += 1;
    this.m.restartsAt = [...budget.recent, this.now];
    this.m.nextRestartAt = Math.min(this.now, exitAt) + delay;
    this.go('backoff', `${reason}; restarting in ${delay} ms`);
    this.effects.push({ type: 'set-timer', timer: 'backoff', ms: Math.max(0, this.m.nextRestartAt - this.now) });
  }

  // ---- timers ----

  onTimer(timer: Exclude<TimerName, 'probe'>): void {
    if (timer === 'backoff') {
      if (this.m.state !== 'backoff' || this.m.launch) return;
      this.m.nextRestartAt = null;
      this.m.restarts += 1;
      return this.beginLaunch(`restart #${this.m.restarts} after backoff`);
    }
    if (timer === 'retry') {
      if (this.m.state !== 'waiting' || this.m.launch) return;
      return this.beginLaunch(this.m.startReason);
    }
    if (this.m.pid === null || !TERMINATING.includes(this.m.state)) return;
    const waited = this.m.termAt === null ? 0 : (this.now - this.m.termAt) / 1000;
    this.m.killDeadline = null;
    this.effects.push({ type: 'log', level: 'warn', event: 'kill', message: `still running ${waited.toFixed(1)} s after SIGTERM, sending SIGKILL`, fields: { pid: this.m.pid } });
    this.effects.push({ type: 'signal', signal: 'SIGKILL' });
  }

  // ---- moving ----

  // Gives up: fatal keeps the reason for status; nothing restarts it but a command.
  fail(reason: string, status: { code: number | null; signal: string | null } | null): void {
    this.m.lastExit = { code: status?.code ?? null, signal: status?.signal ?? null, reason };
    if (this.m.state === 'fatal') {
      // A start from fatal failed again before spawning: still fatal, and no fatal -> fatal event.
      this.effects.push({ type: 'log', level: 'warn', event: 'start-failed', message: `still fatal (${reason})`, fields: { reason } });
      return;
    }
    this.go('fatal', reason);
  }

  go(to: InstanceState, reason: string): void {
    const from = this.m.state;
    if (!TRANSITIONS[from].includes(to)) throw new IllegalTransitionError(`illegal transition ${from} -> ${to} (${reason})`);
    this.m.state = to;
    this.m.since = this.now;
    this.m.reason = reason;
    this.effects.push({ type: 'transition', from, to, pid: this.m.pid, reason });
  }

  cancel(...timers: TimerName[]): void {
    for (const timer of timers) this.effects.push({ type: 'cancel-timer', timer });
  }
}
