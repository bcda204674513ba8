// The daemon: load the config (for `run`, a broken one stops us before
// anything starts), open the control socket, start the instances, and stop
// them all within docker's grace. `supervisor run` and PID 1 (`boot`) both
// build on startDaemon; they differ only in signals and the main process.
import type { Logger } from 'pino';
import type { InstancePlan, LaunchPlan } from '../config/instance-plan.ts';
import { combinePlans, type PlanPart } from '../config/combine-plans.ts';
import type { ConfigKind } from '../config/config-kind.ts';
import { getConfigPath, loadLaunchPlan, missingConfigError } from '../config/load-config.ts';
import { makeControlHandler, type BootStepsView } from '../control/handlers.ts';
import { startControlServer, type ControlHandler, type ControlServer } from '../control/server.ts';
import { ConfigError, formatConfigIssue } from '../errors.ts';
import { createLogger } from '../logging/logger.ts';
import { makeInstanceDeps } from '../supervise/effects.ts';
import { getInstancesToDrain, makeDaemonGateway } from '../gateway/daemon-gateway.ts';
import { stopOrphans } from '../supervise/orphans.ts';
import { makeInstanceGpu } from '../gpu/instance-gpu.ts';
import { GpuMonitor } from '../gpu/monitor.ts';
import { LifecycleController, makeBudgets } from '../lifecycle/controller.ts';
import { realClock } from '../supervise/clock.ts';
import { Supervisor, type ReloadSummary } from '../supervise/supervisor.ts';

export interface DaemonOptions {
  /** The llama.cpp config file; null: none yet (boot without auto-serve; `supervisor serve` names it later). */
  configPath: string | null;
  /** Upstream's vLLM and SGLang runner files supervised beside it (`run` takes AUTO_INFER_VLLM_CONFIG / AUTO_INFER_SGLANG_CONFIG). */
  engineConfigs?: Partial<Record<Exclude<ConfigKind, 'llama-cpp'>, string>>;
  socketPath: string;
  version: string;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** false: start the daemon with no instance running; `serve` starts them (boot without auto-serve). */
  serveOnStart?: boolean;
  /** Services supervised besides the config's instances (sshd at boot). */
  systemPlans?: InstancePlan[];
  /** The boot steps, shown by `supervisor status` above the instances. */
  bootSteps?: BootStepsView;
  /**
   * Stop the instances a dead supervisor left behind before ours start (default true). PID 1 of a fresh
   * container has none to find, so boot skips the /proc scan.
   */
  stopOrphans?: boolean;
}

export interface Daemon {
  supervisor: Supervisor;
  /** The machine's GPUs, as nvidia-smi last said. */
  gpus: GpuMonitor;
  log: Logger;
  /** Re-reads the config; a config with errors is rejected and nothing running is touched. */
  reload(): Promise<ReloadSummary>;
  /** Starts the config's instances that are not running (idempotent); `configPath` replaces the current file of that kind (default llama-cpp). */
  serve(configPath?: string, kind?: ConfigKind): Promise<ReloadSummary>;
  /** Stops every instance (within budgetMs when given) and closes the socket. Safe to call twice. */
  shutdown(reason: string, options?: { budgetMs?: number }): Promise<void>;
  /** Resolves when the daemon has shut down. */
  done: Promise<void>;
}

const EMPTY_PLAN: LaunchPlan = { enabled: true, instances: [] };

/** Starts the daemon; resolves once the socket listens and the instances are being started. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const { socketPath, version, env = process.env, serveOnStart = true, systemPlans = [], bootSteps, stopOrphans: sweep = true } = options;
  // The config files by kind, in the order their instances are started: llama.cpp, vLLM, SGLang.
  const sources = new Map<ConfigKind, string>();
  if (options.configPath !== null) sources.set('llama-cpp', options.configPath);
  for (const kind of ['vllm', 'sglang'] as const) {
    const file = options.engineConfigs?.[kind];
    if (file !== undefined) sources.set(kind, file);
  }
  const log = options.log ?? (await createLogger({ env }));
  const read = (): LaunchPlan => {
    if (sources.size === 0) return EMPTY_PLAN;
    const parts: PlanPart[] = [];
    for (const kind of ['llama-cpp', 'vllm', 'sglang'] as const) {
      const file = sources.get(kind);
      if (file === undefined) continue;
      const loaded = loadLaunchPlan(file, env, kind);
      for (const warning of loaded.warnings) log.warn({ event: 'config-warning', ...warning }, formatConfigIssue(warning));
      parts.push({ kind, file, plan: loaded.plan });
    }
    const combined = combinePlans(parts, env);
    for (const warning of combined.issues.filter((i) => i.severity === 'warning')) log.warn({ event: 'config-warning', ...warning }, formatConfigIssue(warning));
    if (combined.plan === null) throw new ConfigError(combined.issues);
    return combined.plan;
  };
  const readOrLog = (): LaunchPlan => {
    try {
      return read();
    } catch (err) {
      if (err instanceof ConfigError) log.error({ event: 'config-rejected', issues: err.issues }, `config rejected, nothing changed:\n${err.message}`);
      throw err;
    }
  };
  const initial = serveOnStart ? read() : EMPTY_PLAN;
  if (sources.size === 0) log.warn({ event: 'no-config' }, 'no config file given: no instance is supervised yet');
  // The GPUs are asked for once now, in the background (a CPU machine answers "none" at once and never again).
  const gpus = new GpuMonitor();
  void gpus.snapshot();
  const instanceGpu = makeInstanceGpu({ monitor: gpus });
  const supervisor = new Supervisor({ plan: initial, deps: makeInstanceDeps({ log, gpu: instanceGpu, socketPath }) });
  // The gateway follows each (re)loaded plan's [gateway]; a listen failure is logged, the next reload retries.
  // /metrics shows the GPUs only where there are any; nvidia-smi's last answer, asked again in the background when old.
  const gpuMetrics = () => {
    const snapshot = gpus.peek();
    if (snapshot === null) return null;
    const instances = supervisor.instances.map((i) => {
      const status = i.status();
      return { name: i.name, memory: status.gpu?.memory ?? [], context: status.context, fitReducedCount: i.summary.fitReducedCount };
    });
    return { snapshot, instances };
  };
  // Models on demand: loads through the gateway's drain, budgets from the GPUs (or [master] memory_budget_mib).
  const lifecycle = new LifecycleController({
    instances: () => supervisor.instances,
    instance: (name) => supervisor.instance(name),
    withDrain: (names, fn) => gateway.withDrain(names, fn),
    waiting: (name) => {
      const stats = gateway.stats(name);
      return (stats?.held ?? 0) + (stats?.queued ?? 0);
    },
    devicesOf: async (plan) => {
      const devices = await instanceGpu.devicesOf(plan);
      return devices.length > 0 ? devices.map((d) => `gpu:${d}` as const) : ['host'];
    },
    budgets: () => makeBudgets({ gpus, hostMiB: supervisor.plan.memoryBudgetMib ?? null }),
    clock: realClock,
    log,
  });
  supervisor.watchTransitions((instance, event) => lifecycle.noteState(instance, event.to));
  // The dashboard acts through the control socket's own handler (set below, before the gateway first starts).
  let control: ControlHandler | null = null;
  const gateway = makeDaemonGateway({ supervisor, log: log.child({ component: 'gateway' }), gpu: gpuMetrics, lifecycle, control: () => control });
  const applyGateway = (plan: LaunchPlan) =>
    gateway.apply(plan.gateway).catch((err: Error) => log.error({ err, event: 'gateway-failed' }, `gateway: ${err.message}`));

  let server: ControlServer | null = null;
  let closing: Promise<void> | null = null;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));

  const daemon: Daemon = {
    supervisor,
    gpus,
    log,
    done,
    async reload() {
      const next = readOrLog();
      // Instances about to restart are drained first: in-flight requests finish, new ones wait.
      const summary = await gateway.withDrain(getInstancesToDrain(supervisor, next), () => supervisor.reload(next));
      await applyGateway(next);
      return summary;
    },
    async serve(path, kind = 'llama-cpp') {
      const file = path ?? sources.get(kind) ?? getConfigPath(undefined, env, kind);
      if (file === null) throw missingConfigError(kind);
      const previous = sources.get(kind);
      sources.set(kind, file);
      let next: LaunchPlan;
      try {
        next = readOrLog();
      } catch (err) {
        // A rejected file is not kept: the next reload reads what was running.
        if (previous === undefined) sources.delete(kind);
        else sources.set(kind, previous);
        throw err;
      }
      const summary = await supervisor.serve(next);
      await applyGateway(next);
      return summary;
    },
    shutdown(reason, { budgetMs } = {}) {
      closing ??= (async () => {
        log.info({ event: 'shutdown', reason }, `stopping all instances (${reason})`);
        await Promise.all([gateway.close(), supervisor.shutdown(reason, { budgetMs })]);
        await server?.close();
        log.info({ event: 'shutdown-complete' }, 'all instances stopped');
        resolveDone();
      })();
      return closing;
    },
  };

  control = makeControlHandler({ supervisor, reload: daemon.reload, serve: daemon.serve, version, bootSteps, gateway, gpus, lifecycle });
  server = await startControlServer({ path: socketPath, handle: control, log });
  log.info({ event: 'listening', socket: socketPath, config: sources.get('llama-cpp') ?? null, configs: Object.fromEntries(sources), version, daemon_pid: process.pid }, `supervisor ${version} listening on ${socketPath}`);
  // After the socket: a second daemon on the same socket has been refused by now, so what we find is truly orphaned.
  if (sweep) await stopOrphans({ log, socketPath });
  await applyGateway(initial);
  for (const plan of systemPlans) {
    supervisor.addSystemInstance(plan).catch((err: Error) => log.error({ err, event: 'system-start-failed' }, `${plan.name}: ${err.message}`));
  }
  supervisor.startAll().catch((err: Error) => log.error({ err, event: 'start-all-failed' }, `starting the instances failed: ${err.message}`));
  return daemon;
}

/** `supervisor run`: the daemon in the foreground until SIGTERM/SIGINT; returns the exit code. */
export async function runDaemon(options: DaemonOptions): Promise<number> {
  const daemon = await startDaemon(options);
  const stop = (signal: NodeJS.Signals) => void daemon.shutdown(`received ${signal}`);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    daemon.log.info({ event: 'sighup' }, 'SIGHUP: reloading the config');
    daemon.reload().catch((err: Error) => {
      if (!(err instanceof ConfigError)) daemon.log.error({ err }, `reload failed: ${err.message}`);
    });
  });
  await daemon.done;
  return 0;
}
