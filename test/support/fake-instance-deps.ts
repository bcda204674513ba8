// Fakes for everything an Instance touches (InstanceDeps), so the state machine
// can be driven step by step on a FakeClock without a single real process:
// children that exit when told, a prober whose answers the test scripts, a port
// table, an in-memory log and an event log that keeps every entry.
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { DEFAULT_POLICY, type InstancePlan, type SupervisionPolicy } from '../../src/config/instance-plan.ts';
import type { HealthProber, ProbeResult } from '../../src/supervise/health-probe.ts';
import type { InstanceDeps, InstanceLog, TransitionEvent } from '../../src/supervise/instance.ts';
import { SpawnError } from '../../src/errors.ts';
import type { ChildHandle, ExitStatus, Spawner } from '../../src/supervise/spawn-instance.ts';
import type { DeviceMemory, InstanceGpu } from '../../src/gpu/instance-gpu.ts';
import { gpuBuffers, type LoadReport } from '../../src/gpu/load-report.ts';
import type { ExitSnapshot, ReleaseVerdict } from '../../src/gpu/release-barrier.ts';
import { GpuTurns } from '../../src/gpu/turns.ts';
import { FakeClock } from './fake-clock.ts';
import type { Log } from '../../src/logging/log.ts';

// ---- plans ----

export type PlanOverrides = Partial<Omit<InstancePlan, 'policy'>> & { policy?: Partial<SupervisionPolicy> };

let nextPort = 18_000;

/** An InstancePlan with DEFAULT_POLICY, a fresh port per call unless given, and the overrides on top. */
export function makePlan(overrides: PlanOverrides = {}): InstancePlan {
  const { policy, ...rest } = overrides;
  const name = rest.name ?? 'llm';
  return {
    name,
    enabled: true,
    executable: '/opt/llama/bin/llama-server',
    args: ['--model', `/models/${name}.gguf`, '--port', String(rest.port ?? nextPort)],
    env: {},
    logFile: `/logs/${name}.log`,
    gpuIds: null,
    host: '127.0.0.1',
    port: rest.port ?? nextPort++,
    probe: 'http',
    background: true,
    user: null,
    model: `/models/${name}.gguf`,
    ...rest,
    policy: { ...DEFAULT_POLICY, ...policy },
  };
}

// ---- children ----

/** What a fake child does when it receives SIGTERM. */
export type OnSigterm = 'exit' | 'ignore' | ExitStatus;

export interface FakeChildOptions {
  /** Default: exits with code 0. */
  onSigterm?: OnSigterm;
  /** The health answer while alive, when the prober has nothing scripted. Default 503 loading. */
  health?: ProbeResult;
}

/** A child process that does only what the test tells it. */
export class FakeChild implements ChildHandle {
  readonly pid: number;
  readonly plan: InstancePlan;
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  readonly exited: Promise<ExitStatus>;
  /** Every signal received through signal(), in order, while alive. */
  readonly signals: NodeJS.Signals[] = [];
  /** Fake-clock times at which each signal arrived (same order as signals). */
  readonly signalledAt: number[] = [];
  onSigterm: OnSigterm;
  health: ProbeResult;
  status: ExitStatus | null = null;
  readonly #clock: FakeClock;
  #resolve!: (status: ExitStatus) => void;

  constructor({ pid, plan, clock, options }: { pid: number; plan: InstancePlan; clock: FakeClock; options: FakeChildOptions }) {
    this.pid = pid;
    this.plan = plan;
    this.#clock = clock;
    this.onSigterm = options.onSigterm ?? 'exit';
    this.health = options.health ?? { status: 503, body: '{"error":{"message":"Loading model"}}' };
    this.exited = new Promise((resolve) => (this.#resolve = resolve));
  }

  get alive(): boolean {
    return this.status === null;
  }

  /** Like a group kill: false once the process is gone. */
  signal(signal: NodeJS.Signals): boolean {
    if (!this.alive) return false;
    this.signals.push(signal);
    this.signalledAt.push(this.#clock.now());
    if (signal === 'SIGKILL') this.exit(null, 'SIGKILL');
    else if (signal === 'SIGTERM' && this.onSigterm !== 'ignore') {
      const status = this.onSigterm === 'exit' ? { code: 0, signal: null } : this.onSigterm;
      this.exit(status.code, status.signal);
    }
    return true;
  }

  /** Ends the process: closes its pipes and resolves `exited`. A second call does nothing. */
  exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (!this.alive) return;
    this.status = { code, signal };
    this.stdout.end();
    this.stderr.end();
    this.#resolve(this.status);
  }

  /** The pipes end with the exit: nothing is left to drain. */
  async drainOutput(): Promise<boolean> {
    await this.exited;
    return true;
  }

  /** Writes one line to stderr, as llama-server logs. */
  print(line: string): void {
    this.stderr.write(`${line}\n`);
  }
}

/** Spawns FakeChilds with increasing pids; can be told to fail the next spawns. */
export class FakeSpawner implements Spawner {
  readonly children: FakeChild[] = [];
  /** Options for children of an instance (by name), or for all (key '*'). */
  readonly options = new Map<string, FakeChildOptions>();
  /** Thrown by the next spawn calls, first in first out. */
  readonly failures: Error[] = [];
  /** Called with each new child. */
  onSpawn: ((child: FakeChild) => void) | null = null;
  #nextPid = 4242;
  readonly #clock: FakeClock;

  constructor(clock: FakeClock) {
    this.#clock = clock;
  }

  async spawn(plan: InstancePlan): Promise<ChildHandle> {
    const failure = this.failures.shift();
    if (failure) throw failure;
    const options = this.options.get(plan.name) ?? this.options.get('*') ?? {};
    const child = new FakeChild({ pid: this.#nextPid++, plan, clock: this.#clock, options });
    this.children.push(child);
    this.onSpawn?.(child);
    return child;
  }

  /** The children spawned for one instance, oldest first. */
  of(name: string): FakeChild[] {
    return this.children.filter((c) => c.plan.name === name);
  }

  /** The newest child of an instance (throws if none). */
  last(name: string): FakeChild {
    const child = this.of(name).at(-1);
    if (!child) throw new Error(`no child spawned for ${name}`);
    return child;
  }

  get live(): FakeChild[] {
    return this.children.filter((c) => c.alive);
  }

  /** Makes the next spawn fail like a missing executable. */
  failNextWithEnoent(executable: string): void {
    this.failures.push(new SpawnError(`cannot run ${executable}: no such file (or not found on PATH)`, { errno: 'ENOENT' }));
  }
}

// ---- health probes ----

export type ProbeScript = ProbeResult | ((call: ProbeCall) => ProbeResult);

export interface ProbeCall {
  host: string;
  port: number;
  path: string | null;
  timeoutMs: number;
  at: number;
}

/** Answers probes from a per-port queue, then a per-port standing answer, then the live child on that port. */
export class FakeProber implements HealthProber {
  readonly calls: ProbeCall[] = [];
  readonly #queues = new Map<number, ProbeResult[]>();
  readonly #standing = new Map<number, ProbeScript>();
  readonly #clock: FakeClock;
  readonly #spawner: FakeSpawner;

  constructor({ clock, spawner }: { clock: FakeClock; spawner: FakeSpawner }) {
    this.#clock = clock;
    this.#spawner = spawner;
  }

  /** Answers the next probes of `port` with these, in order. */
  queue(port: number, ...results: ProbeResult[]): void {
    this.#queues.set(port, [...(this.#queues.get(port) ?? []), ...results]);
  }

  /** Answers every later probe of `port` with this (after the queue runs dry); null restores the default. */
  answer(port: number, script: ProbeScript | null): void {
    if (script === null) this.#standing.delete(port);
    else this.#standing.set(port, script);
  }

  async probe({ host, port, path, timeoutMs }: { host: string; port: number; path: string | null; timeoutMs: number }): Promise<ProbeResult> {
    const call = { host, port, path, timeoutMs, at: this.#clock.now() };
    this.calls.push(call);
    const queued = this.#queues.get(port)?.shift();
    if (queued) return queued;
    const standing = this.#standing.get(port);
    if (standing) return typeof standing === 'function' ? standing(call) : standing;
    const child = this.#spawner.live.find((c) => c.plan.port === port);
    return child ? child.health : { error: 'ECONNREFUSED' };
  }

  /** Probe times for one port. */
  timesFor(port: number): number[] {
    return this.calls.filter((c) => c.port === port).map((c) => c.at);
  }
}

export const OK: ProbeResult = Object.freeze({ status: 200, body: '{"status":"ok"}' });
export const LOADING: ProbeResult = Object.freeze({ status: 503, body: '{"error":{"message":"Loading model"}}' });

// ---- the instance log ----

/** InstanceLog in memory: lastWriteAt from the fake clock, backpressure on demand. */
export class FakeInstanceLog extends EventEmitter implements InstanceLog {
  readonly plan: InstancePlan;
  /** Everything written, child output and records, as the file would hold it. */
  text = '';
  readonly records: string[] = [];
  lastWriteAt: number | null = null;
  closed = false;
  /** While true, write() returns false (the file is "slow"); call drain() to release. */
  full = false;
  readonly #clock: FakeClock;

  constructor({ plan, clock }: { plan: InstancePlan; clock: FakeClock }) {
    super();
    this.plan = plan;
    this.#clock = clock;
  }

  write(chunk: Buffer): boolean {
    this.lastWriteAt = this.#clock.now();
    this.text += chunk.toString('utf8');
    return !this.full;
  }

  appendRecord(text: string): void {
    this.records.push(text);
    const line = text.endsWith('\n') ? text : `${text}\n`;
    this.text += this.text === '' || this.text.endsWith('\n') ? line : `\n${line}`;
  }

  tail(lines: number): string[] {
    if (lines <= 0) return [];
    const all = this.text.split('\n');
    if (all.at(-1) === '') all.pop();
    return all.slice(-lines);
  }

  /** Ends backpressure and tells the paused pipes to go on. */
  drain(): void {
    this.full = false;
    this.emit('drain');
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

// ---- the event log ----

export interface LogEntry {
  level: 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

/** Log that keeps every entry. */
export class RecordingEventLog implements Log {
  readonly entries: LogEntry[] = [];

  debug(): void {}
  info(obj: object, msg: string): void {
    this.entries.push({ level: 'info', obj: obj as Record<string, unknown>, msg });
  }
  warn(obj: object, msg: string): void {
    this.entries.push({ level: 'warn', obj: obj as Record<string, unknown>, msg });
  }
  error(obj: object, msg: string): void {
    this.entries.push({ level: 'error', obj: obj as Record<string, unknown>, msg });
  }

  /** The logged transitions, optionally of one instance, as `from->to`. */
  transitions(instance?: string): string[] {
    return this.entries
      .filter((e) => e.obj.event === 'transition' && (instance === undefined || e.obj.instance === instance))
      .map((e) => `${String(e.obj.from)}->${String(e.obj.to)}`);
  }

  /** Entries with this `event` field. */
  events(event: string): LogEntry[] {
    return this.entries.filter((e) => e.obj.event === event);
  }

  get errors(): LogEntry[] {
    return this.entries.filter((e) => e.level === 'error');
  }
}

// ---- ports, files, leftovers ----

interface Holder {
  pid: number;
  command: string;
  /** The instance this pid belongs to (isOwnProcess), if any. */
  owner?: string;
}

/** Who holds which port: explicit holders first, else a live fake child on that port. */
export class FakePorts {
  readonly holders = new Map<number, Holder>();
  readonly lookups: number[] = [];
  readonly ownChecks: Array<{ pid: number; instance: string }> = [];
  /** Whether live fake children count as listening on their plan's port. */
  childrenHoldPorts = true;
  readonly #spawner: FakeSpawner;

  constructor(spawner: FakeSpawner) {
    this.#spawner = spawner;
  }

  hold(port: number, holder: Holder): void {
    this.holders.set(port, holder);
  }

  release(port: number): void {
    this.holders.delete(port);
  }

  async findPortHolder(port: number): Promise<{ pid: number; command: string } | null> {
    this.lookups.push(port);
    const holder = this.holders.get(port);
    if (holder) return { pid: holder.pid, command: holder.command };
    const child = this.childrenHoldPorts ? this.#spawner.live.find((c) => c.plan.port === port) : undefined;
    return child ? { pid: child.pid, command: `${child.plan.executable} ${child.plan.args.join(' ')}` } : null;
  }

  async isOwnProcess(pid: number, instance: string): Promise<boolean> {
    this.ownChecks.push({ pid, instance });
    for (const holder of this.holders.values()) if (holder.pid === pid) return holder.owner === instance;
    return this.#spawner.children.some((c) => c.pid === pid && c.plan.name === instance);
  }
}

// ---- everything together ----

/** A whole fake outside world for instances, plus the InstanceDeps that use it. */
export class FakeWorld {
  readonly clock: FakeClock;
  readonly spawner: FakeSpawner;
  readonly prober: FakeProber;
  readonly ports: FakePorts;
  readonly log = new RecordingEventLog();
  /** Instance logs by log file; reopening the same file continues it. */
  readonly logs = new Map<string, FakeInstanceLog>();
  readonly openedLogs: string[] = [];
  /** Paths fileExists says are missing (everything else exists). */
  readonly missingFiles = new Set<string>();
  readonly fileChecks: string[] = [];
  /** Calls to sweepLeftovers: instance and fake time. */
  readonly sweeps: Array<{ instance: string; at: number }> = [];
  /** What the next sweepLeftovers calls return (default: nothing found). */
  sweepResults: number[][] = [];
  /** When set, openLog rejects with it. */
  openLogError: Error | null = null;
  readonly deps: InstanceDeps;

  /** With `gpu`, instances see a FakeGpu (set on deps.gpu). */
  constructor(start = 1_700_000_000_000, { gpu }: { gpu?: FakeGpu } = {}) {
    this.clock = new FakeClock(start);
    this.spawner = new FakeSpawner(this.clock);
    this.prober = new FakeProber({ clock: this.clock, spawner: this.spawner });
    this.ports = new FakePorts(this.spawner);
    this.deps = {
      clock: this.clock,
      spawner: this.spawner,
      prober: this.prober,
      log: this.log,
      openLog: async (plan) => {
        if (this.openLogError) throw this.openLogError;
        this.openedLogs.push(plan.logFile);
        let file = this.logs.get(plan.logFile);
        if (!file || file.closed) {
          file = new FakeInstanceLog({ plan, clock: this.clock });
          this.logs.set(plan.logFile, file);
        }
        return file;
      },
      findPortHolder: (port) => this.ports.findPortHolder(port),
      isOwnProcess: (pid, instance) => this.ports.isOwnProcess(pid, instance),
      fileExists: (path) => {
        this.fileChecks.push(path);
        return !this.missingFiles.has(path);
      },
      sweepLeftovers: async (instance) => {
        this.sweeps.push({ instance, at: this.clock.now() });
        return this.sweepResults.shift() ?? [];
      },
      gpu,
    };
  }

  /** The log of an instance's plan (throws if never opened). */
  logOf(plan: InstancePlan): FakeInstanceLog {
    const file = this.logs.get(plan.logFile);
    if (!file) throw new Error(`log ${plan.logFile} was never opened`);
    return file;
  }

  /** Lets pending promise callbacks, stream events and queued instance events run (no fake time passes). */
  async flush(rounds = 3): Promise<void> {
    for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Advances fake time, letting async handlers settle after every timer. */
  async advance(ms: number): Promise<void> {
    await this.clock.advanceAsync(ms);
    await this.flush();
  }
}

export interface TransitionRecord {
  /** `from->to`, in order. */
  list: string[];
  events: TransitionEvent[];
  /** Fake-clock time of each event (same order). */
  times: number[];
}

/** Records an instance's transition events as `from->to`, with the raw events and their times. */
export function recordTransitions(emitter: EventEmitter, clock: FakeClock): TransitionRecord {
  const record: TransitionRecord = { list: [], events: [], times: [] };
  emitter.on('transition', (event: TransitionEvent) => {
    record.events.push(event);
    record.list.push(`${event.from}->${event.to}`);
    record.times.push(clock.now());
  });
  return record;
}

/** Every event moves the state: none has from === to. */
export function selfTransitions(events: readonly TransitionEvent[]): TransitionEvent[] {
  return events.filter((e) => e.from === e.to);
}

// ---- GPUs ----

/** InstanceGpu whose answers the test sets: devices per instance, a release verdict, and real start turns. */
export class FakeGpu implements InstanceGpu {
  /** Instance name → its devices (default: [0]). */
  readonly devices = new Map<string, number[]>();
  /** What checkRelease answers, in order (then released). */
  readonly verdicts: ReleaseVerdict[] = [];
  readonly snapshots: Array<readonly number[]> = [];
  readonly turns = new GpuTurns();
  releaseChecks = 0;

  async devicesOf(plan: InstancePlan): Promise<number[]> {
    return this.devices.get(plan.name) ?? [0];
  }
  async snapshotExit(pids: readonly number[]): Promise<ExitSnapshot> {
    this.snapshots.push(pids);
    return { pids, listed: [...pids] };
  }
  async checkRelease(): Promise<ReleaseVerdict> {
    this.releaseChecks++;
    return this.verdicts.shift() ?? { released: true };
  }
  takeTurn(instance: string, devices: readonly number[]): string | null {
    return this.turns.take(instance, devices);
  }
  releaseTurn(instance: string): void {
    this.turns.release(instance);
  }
  async usedMiB(_devices: readonly number[], _maxAgeMs: number): Promise<Map<number, number>> {
    return new Map();
  }
  memoryOf({ report, devices }: { report: LoadReport | null; devices: readonly number[] }): DeviceMemory[] {
    return (report ? gpuBuffers(report) : []).map(({ device, mib }) => ({ gpu: devices[device], uuid: null, mib: Math.round(mib), source: 'buffers' as const }));
  }
  describeHolders(devices: readonly number[]): string {
    return devices.map((d) => `GPU ${d}: other (1 MiB)`).join('; ');
  }
}
