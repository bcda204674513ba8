// Config text → launch plan: a pure function. The filesystem and PATH are
// asked through the injected context only (for the executable fallback), so
// every rule of upstream's runner (its TOML merge, argv and executable lookup) is tested from strings.
// The steps: read the TOML, merge the overrides, validate (validate-document.ts),
// build each instance (argv.ts, executable.ts), check ports and path lengths
// (ports.ts, path-limits.ts), plan
// the gateway (gateway-plan.ts); issues are located by issue-location.ts.
import type { ConfigIssue } from '../errors.ts';
import {
  findAliases,
  findApiKey,
  findCtxSize,
  findListenAddress,
  findModel,
  formatArg,
  LOAD_LOG_VERBOSITY,
  LOG_VERBOSITY_ENV,
  makeServerArgs,
  mergeServer,
  setsLogVerbosity,
} from './argv.ts';
import { resolveExecutable, type ExecutableLookup } from './executable.ts';
import { CONFIG_KINDS, type ConfigKind } from './config-kind.ts';
import type { EngineLaunch, EngineName } from '../engines/engine.ts';
import { makeCommandLaunch } from '../engines/command.ts';
import { makeLlamaLaunch } from '../engines/llama-server.ts';
import { findRpcWorkers, makeRpcWorkerLaunch, resolveRpcServer } from '../engines/rpc-worker.ts';
import type { UserLookup } from '../engines/python-runner.ts';
import { makeSglangLaunch } from '../engines/sglang.ts';
import { makeVllmLaunch } from '../engines/vllm.ts';
import { makeGatewayPlan } from './gateway-plan.ts';
import { checkGpuIds, selectGpus, type KnownGpu } from './gpu-ids.ts';
import {
  DEFAULT_LIFECYCLE,
  DEFAULT_POLICY,
  INSTANCE_MARKER_ENV,
  type InstancePlan,
  type LaunchPlan,
  type LifecyclePolicy,
  type SupervisionPolicy,
} from './instance-plan.ts';
import { makeReport, type Report } from './issue-location.ts';
import { mergeOverrides, OverridesSyntaxError, parseOverrides, type ConfigTable, type ConfigValue } from './overrides.ts';
import { checkPathLimits } from './path-limits.ts';
import { checkPorts } from './ports.ts';
import type { ControlTable } from './schema.ts';
import { readToml, TomlSyntaxError, type TomlSource } from './toml-source.ts';
import { validateDocument } from './validate-document.ts';

/** What the planner may ask of the outside world. */
export interface PlanContext extends ExecutableLookup {
  /** The supervisor's environment: overrides, LD_LIBRARY_PATH, the gateway key. */
  env: Readonly<Record<string, string | undefined>>;
  /** For messages only. */
  file: string | null;
  /** This machine's GPUs, for the gpu_ids checks; null or absent: not known (no nvidia-smi, or not asked). */
  gpus?: readonly KnownGpu[] | null;
  /** Which runner's TOML this is (default llama-cpp): its [master] keys, variables and default engine. */
  kind?: ConfigKind;
  /** Users for the vLLM/SGLang launch as AUTO_INFER_*_USER; absent: not asked (taken to exist). */
  users?: UserLookup;
}

export interface PlanResult {
  /** null when there is at least one error. */
  plan: LaunchPlan | null;
  issues: ConfigIssue[];
}

/** Turns config text into a launch plan, or into the list of everything wrong with it. */
export function makeLaunchPlan(text: string, ctx: PlanContext): PlanResult {
  const issues: ConfigIssue[] = [];
  let source: TomlSource;
  try {
    source = readToml(text);
  } catch (err) {
    if (!(err instanceof TomlSyntaxError)) throw err;
    return {
      plan: null,
      issues: [{ severity: 'error', file: ctx.file, line: err.line, column: err.column, path: '', message: `invalid TOML: ${err.message}` }],
    };
  }
  const document = source.document;
  const kind = ctx.kind ?? 'llama-cpp';
  const OVERRIDES_ENV = CONFIG_KINDS[kind].overridesEnv;
  let overrides: ConfigTable | null = null;
  const rawOverrides = ctx.env[OVERRIDES_ENV];
  if (rawOverrides !== undefined && rawOverrides.trim() !== '') {
    try {
      overrides = parseOverrides(rawOverrides);
      mergeOverrides(document, overrides);
    } catch (err) {
      if (!(err instanceof OverridesSyntaxError)) throw err;
      issues.push({ severity: 'error', file: OVERRIDES_ENV, path: '', message: `not usable as overrides: ${err.message}` });
      return { plan: null, issues };
    }
  }
  const report = makeReport({ into: issues, source, overrides, file: ctx.file, overridesFile: OVERRIDES_ENV });
  const failed = () => issues.some((i) => i.severity === 'error');

  validateDocument(document, report, kind);
  if (failed()) return { plan: null, issues };

  const plan = buildPlan({ document, ctx, source, kind, report });
  checkPorts(plan, report);
  checkPathLimits(plan, report);
  for (const issue of checkGpuIds(plan.enabled ? plan.instances : [], ctx.gpus ?? null)) report('warning', ['instance', issue.instance, 'control', 'gpu_ids'], issue.message);
  // The gateway is our own llama.cpp file's; vLLM's and SGLang's files have none.
  if (kind === 'llama-cpp') {
    const gateway = makeGatewayPlan(document.gateway, plan, ctx.env);
    for (const issue of gateway.issues) report(issue.severity, issue.path, issue.message);
    if (gateway.plan) plan.gateway = gateway.plan;
    plan.gatewayTable = document.gateway;
  }
  return { plan: failed() ? null : plan, issues };
}

function buildPlan({ document, ctx, source, kind, report }: { document: ConfigTable; ctx: PlanContext; source: TomlSource; kind: ConfigKind; report: Report }): LaunchPlan {
  const master = (document.master ?? {}) as ConfigTable;
  const enabled = master.enable !== false;
  const instances = (document.instance ?? {}) as ConfigTable;
  const globalControl = (instances.control ?? {}) as ConfigTable;
  const globalServer = (instances.server ?? {}) as ConfigTable;
  const names = Object.keys(instances).filter((name) => name !== 'control' && name !== 'server');
  sortByDocumentOrder(names, source);
  // Looked up once, and only when an instance runs llama-server.
  let executable: { path: string; libraryDir: string | null } | undefined;
  const llamaExecutable = () => (executable ??= resolveExecutable(master.llama_cpp_path as string | undefined, ctx));
  return {
    enabled,
    memoryBudgetMib: master.memory_budget_mib === undefined ? null : Number(master.memory_budget_mib),
    instances: names.map((name) => {
      const instance = instances[name] as ConfigTable;
      const engine = ((instance.engine as EngineName | undefined) ?? CONFIG_KINDS[kind].engine) as Exclude<EngineName, 'service'>;
      const control = { ...globalControl, ...((instance.control ?? {}) as ConfigTable) } as ControlTable & ConfigTable;
      const server = engine === 'command' || engine === 'rpc-worker' ? {} : mergeServer(globalServer, (instance.server ?? {}) as ConfigTable);
      // A leader's `rpc = [...]` is llama-server's --rpc, after the server keys.
      const rpc = ((instance.rpc as string[] | undefined) ?? []).map(String);
      const launch =
        engine === 'llama-server' ? withRpc(makeLlamaLaunch({ server, control, executable: llamaExecutable(), env: ctx.env }), rpc)
        : engine === 'rpc-worker' ? makeRpcWorkerLaunch({ instance, executable: resolveRpcServer(llamaExecutable(), ctx), env: ctx.env })
        : engine === 'command' ? makeCommandLaunch(instance)
        : (engine === 'vllm' ? makeVllmLaunch : makeSglangLaunch)({ server, master, user: control.user, env: ctx.env, users: ctx.users, isFile: ctx.isFile, which: ctx.which });
      for (const warning of launch.warnings) report('warning', ['instance', name, ...warning.path], warning.message);
      // No request ever reaches a worker: on demand it would stay idle, and its leader wait for it forever.
      if (engine === 'rpc-worker' && control.on_demand === true) {
        report('error', ['instance', name, 'control', 'on_demand'], 'an rpc-worker is loaded by no request (the gateway never routes to it): it cannot be on_demand; make its leader on_demand instead');
      }
      return buildInstance({ name, engine, control, launch, ctx });
    }),
  };
}

function withRpc<L extends EngineLaunch>(launch: L, rpc: readonly string[]): L {
  return rpc.length === 0 ? launch : { ...launch, args: [...launch.args, '--rpc', rpc.join(',')] };
}

// JavaScript lists integer-like keys first; TOML (and upstream) keep document order.
function sortByDocumentOrder(names: string[], source: TomlSource): void {
  const lineOf = (name: string) => source.locate(['instance', name])?.line ?? Number.MAX_SAFE_INTEGER;
  names.sort((a, b) => lineOf(a) - lineOf(b));
}

function buildInstance({
  name,
  engine,
  control: c,
  launch,
  ctx,
}: {
  name: string;
  engine: Exclude<EngineName, 'service'>;
  control: ControlTable & ConfigTable;
  launch: EngineLaunch & { apiKey?: string | null; ctxSize?: number | null };
  ctx: PlanContext;
}): InstancePlan {
  const gpuIds = c.gpu_ids === undefined ? null : String(c.gpu_ids);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(c.env ?? {})) env[key] = formatArg(value as ConfigValue);
  Object.assign(env, launch.env);
  const gpus = selectGpus(gpuIds);
  const notes: Record<string, string> = { ...launch.envNotes };
  if (gpus !== 'all') env.CUDA_VISIBLE_DEVICES = gpus === 'none' ? '' : gpus.join(',');
  if (Array.isArray(gpus) && env.CUDA_DEVICE_ORDER === undefined && ctx.env.CUDA_DEVICE_ORDER === undefined) {
    env.CUDA_DEVICE_ORDER = 'PCI_BUS_ID';
    notes.CUDA_DEVICE_ORDER = 'added by the supervisor: with explicit gpu_ids, index N is the GPU nvidia-smi lists as N';
  }
  env[INSTANCE_MARKER_ENV] = name;
  const logDir = (c.log_dir as string | undefined) ?? '/tmp';
  const policy = makePolicy(c);
  if (launch.healthPath !== null) policy.healthPath = launch.healthPath;
  return {
    name,
    enabled: c.enabled !== false,
    executable: launch.executable,
    args: launch.args,
    env,
    logFile: (c.log_file as string | undefined) ?? joinPath(logDir, `${launch.logPrefix}${name}.log`),
    gpuIds,
    host: launch.host,
    port: launch.port,
    probe: launch.probe ?? 'http',
    rpcWorkers: engine === 'llama-server' ? findRpcWorkers(launch.args) : [],
    background: c.background !== false,
    user: launch.user !== undefined ? launch.user : ((c.user as string | undefined) ?? null),
    model: launch.model,
    aliases: launch.aliases,
    apiKey: launch.apiKey ?? null,
    ctxSize: launch.ctxSize ?? null,
    envNotes: notes,
    engine,
    lifecycle: makeLifecycle(c),
    policy,
  };
}

function makeLifecycle(c: ControlTable & ConfigTable): LifecyclePolicy {
  const d = DEFAULT_LIFECYCLE;
  const num = (value: unknown) => (value === undefined ? null : Number(value));
  return {
    onDemand: c.on_demand ?? d.onDemand,
    idleUnloadS: num(c.idle_unload_s) ?? d.idleUnloadS,
    exclusiveGroup: c.exclusive_group ?? d.exclusiveGroup,
    memoryMib: num(c.memory_mib) ?? d.memoryMib,
    pinned: c.pinned ?? d.pinned,
    maxConcurrent: num(c.max_concurrent) ?? d.maxConcurrent,
    maxQueue: num(c.max_queue) ?? d.maxQueue,
  };
}

function makePolicy(c: ControlTable & ConfigTable): SupervisionPolicy {
  const num = (value: unknown, fallback: number) => (value === undefined ? fallback : Number(value));
  return {
    restart: c.restart ?? DEFAULT_POLICY.restart,
    maxRestarts: num(c.max_restarts, DEFAULT_POLICY.maxRestarts),
    restartWindowS: num(c.restart_window_s, DEFAULT_POLICY.restartWindowS),
    backoffInitialMs: num(c.backoff_initial_ms, DEFAULT_POLICY.backoffInitialMs),
    backoffMaxMs: num(c.backoff_max_ms, DEFAULT_POLICY.backoffMaxMs),
    stopTimeoutS: num(c.stop_timeout_s, DEFAULT_POLICY.stopTimeoutS),
    healthPath: c.health_path ?? DEFAULT_POLICY.healthPath,
    healthIntervalS: num(c.health_interval_s, DEFAULT_POLICY.healthIntervalS),
    startupStallS: num(c.startup_stall_s, DEFAULT_POLICY.startupStallS),
    logMaxBytes: num(c.log_max_bytes, DEFAULT_POLICY.logMaxBytes),
    logKeep: num(c.log_keep, DEFAULT_POLICY.logKeep),
    onFitReduced: c.on_fit_reduced ?? DEFAULT_POLICY.onFitReduced,
    gpuReleaseTimeoutS: num(c.gpu_release_timeout_s, DEFAULT_POLICY.gpuReleaseTimeoutS),
  };
}

// Python's os.path.join for a relative second part.
function joinPath(dir: string, file: string): string {
  if (dir === '' || dir.endsWith('/')) return dir + file;
  return `${dir}/${file}`;
}
