// The launch plan: what the supervisor runs, derived purely from the config.
// Everything the engine needs to start, watch and restart one llama-server.
import type { EngineName } from '../engines/engine.ts';
import type { GatewayPlan } from './gateway-plan.ts';

export type RestartPolicy = 'always' | 'on-failure' | 'never';

/** How one instance is supervised (the `[instance.*.control]` keys we added). */
export interface SupervisionPolicy {
  restart: RestartPolicy;
  /** More restarts than this within `restartWindowS` make the instance fatal. */
  maxRestarts: number;
  restartWindowS: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  /** SIGTERM → SIGKILL grace; 8 s fits inside `docker stop`'s 10 s. */
  stopTimeoutS: number;
  healthPath: string;
  healthIntervalS: number;
  /** A starting instance fails only when neither its log nor its health answer changed for this long. */
  startupStallS: number;
  logMaxBytes: number;
  logKeep: number;
  /** When llama.cpp's fit serves less than configured (a shorter context, layers on the CPU): say so, or fail the start. */
  onFitReduced: 'warn' | 'fail';
  /** How long a start waits for the last run's GPU memory to be released before it starts anyway. */
  gpuReleaseTimeoutS: number;
}

/** Defaults for SupervisionPolicy, in one place. */
export const DEFAULT_POLICY: Readonly<SupervisionPolicy> = Object.freeze({
  restart: 'on-failure',
  maxRestarts: 10,
  restartWindowS: 300,
  backoffInitialMs: 1000,
  backoffMaxMs: 60_000,
  stopTimeoutS: 8,
  healthPath: '/health',
  healthIntervalS: 10,
  startupStallS: 180,
  logMaxBytes: 50 * 1024 * 1024,
  logKeep: 5,
  onFitReduced: 'warn',
  gpuReleaseTimeoutS: 15,
});

/** Once ready this long, the backoff starts again from `backoffInitialMs`. */
export const BACKOFF_RESET_AFTER_READY_MS = 60_000;

/** The environment variable that tags every process of an instance, so leftovers can be found. */
export const INSTANCE_MARKER_ENV = 'INFER_DEV_INSTANCE';

/** Names the supervisor (its pid) that spawned a process, so two daemons on one host never sweep each other's. */
export const SUPERVISOR_MARKER_ENV = 'INFER_DEV_SUPERVISOR';

/**
 * Names the control socket of the supervisor that spawned a process: a new daemon sweeps only the leftovers of
 * earlier daemons on its own socket, never those of a dead daemon on another one (which its next daemon sweeps).
 */
export const SOCKET_MARKER_ENV = 'INFER_DEV_SUPERVISOR_SOCKET';

/** Everything needed to run one instance. */
export interface InstancePlan {
  name: string;
  enabled: boolean;
  /** As configured (a path, or a bare name looked up on PATH at spawn). */
  executable: string;
  args: string[];
  /** Only the variables the plan sets or changes; `null` value = unset (never produced today). */
  env: Record<string, string>;
  logFile: string;
  /** The configured value, normalised to a string; null when absent. */
  gpuIds: string | null;
  /** Where the health probe goes (`0.0.0.0` and `::` are probed on loopback). */
  host: string;
  port: number;
  /** How readiness is checked: GET policy.healthPath (llama-server), or a TCP connect (sshd). */
  probe: 'http' | 'tcp';
  /** A leader llama-server's RPC workers (its --rpc list): the start waits until each accepts TCP. Absent: none. */
  rpcWorkers?: readonly string[];
  /** false: the next instances start only once this one is ready or has failed. */
  background: boolean;
  /** Run as this user instead of root. */
  user: string | null;
  /** The `model` server value, checked for existence at start. */
  model: string | null;
  /**
   * The model names the server answers to (`--alias`), which the gateway routes by.
   * Set by the config planner; plans made elsewhere (sshd) leave it out.
   */
  aliases?: readonly string[];
  /** The key the server demands (`--api-key`), which the gateway sends it; null or absent: none. */
  apiKey?: string | null;
  /** The context size configured (`--ctx-size`); null or absent: the model's own. */
  ctxSize?: number | null;
  /** Why the planner added a variable to `env` (shown by `config print`). */
  envNotes?: Readonly<Record<string, string>>;
  /** What runs (src/engines/): llama-server (its log is read for the load's progress and fit), vLLM, SGLang, any command, or a service such as sshd. Absent: llama-server. */
  engine?: EngineName;
  /** Loading on demand; absent: started at boot, never unloaded. */
  lifecycle?: LifecyclePolicy;
  policy: SupervisionPolicy;
}

/** How an instance is loaded and unloaded (issue 13's keys). */
export interface LifecyclePolicy {
  /** Not started at boot: the first request (or `supervisor load`) loads it. */
  onDemand: boolean;
  /** Unloaded after this long with no request; 0: never. */
  idleUnloadS: number;
  /** At most one instance of a group is loaded at a time. */
  exclusiveGroup: string | null;
  /** MiB needed on each of its GPUs, as configured; null: estimated. */
  memoryMib: number | null;
  /** Never unloaded to make room. */
  pinned: boolean;
  /** Requests in flight at once through the gateway; null: the server's own slots. */
  maxConcurrent: number | null;
  /** Requests that wait beyond maxConcurrent before 429. */
  maxQueue: number;
}

/** Defaults for LifecyclePolicy. */
export const DEFAULT_LIFECYCLE: Readonly<LifecyclePolicy> = Object.freeze({
  onDemand: false,
  idleUnloadS: 0,
  exclusiveGroup: null,
  memoryMib: null,
  pinned: false,
  maxConcurrent: null,
  maxQueue: 256,
});

/** The whole resolved config. */
export interface LaunchPlan {
  /** `[master] enable`: false means nothing is launched. */
  enabled: boolean;
  instances: InstancePlan[];
  /** `[gateway]`; absent: off (no config yet). */
  gateway?: GatewayPlan;
  /** The `[gateway]` table as written (llama.cpp files only), planned again over the union when other engines' files join (combine-plans.ts). */
  gatewayTable?: unknown;
  /** `[master] memory_budget_mib`: memory per device for placement where nvidia-smi reports none; null: none set. */
  memoryBudgetMib?: number | null;
}
