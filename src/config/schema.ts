// The zod schema of the TOML file: the single source of what keys exist, their
// types and ranges. It validates a plain view of the document (bigints turned
// into numbers) and is exported as JSON Schema for editors by json-schema.ts
// (config-examples/infer-dev.schema.json).
//
// zod/mini, not classic zod: the same core (same checks, same issues, same JSON
// Schema) without the method-chaining API, which cannot be tree-shaken and
// costs the daemon ~5 MiB RSS. Keep classic zod (the 'zod' entry point) off the daemon path.
import * as z from 'zod/mini';
import { gatewaySchema } from './gateway-plan.ts';
import { GPU_IDS_PATTERN } from './gpu-ids.ts';
import { RPC_ADDRESS } from '../engines/rpc-worker.ts';

/** `[instance.*] names`: upstream's schema pattern. */
export const INSTANCE_NAME = /^(?!control$)(?!server$)[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** A non-negative integer (classic `z.number().int().min(0)`). */
const count = (min = 0) => z.number().check(z.int(), z.minimum(min));

const gpuIds = z
  .union([
    z.string().check(z.regex(GPU_IDS_PATTERN, { error: 'expected "all", "none", or GPU indices or UUIDs such as "0,1" or "GPU-5f2c…"' })),
    count(0),
  ])
  .check(z.describe('GPUs for CUDA_VISIBLE_DEVICES: "all" (inherit), "none" (hide all GPUs), or indices or UUIDs such as "0,1" (indices as nvidia-smi lists them)'));

const positive = (what: string) => z.number().check(z.positive(), z.describe(what));

/** `[instance.control]` and `[instance.<name>.control]`. */
export const controlSchema = z.partial(
  z.strictObject({
    enabled: z.boolean().check(z.describe('Start this instance (default true)')),
    background: z
      .boolean()
      .check(z.describe('false: start the next instances only once this one is ready or has failed (default true)')),
    log_dir: z
      .string()
      .check(z.minLength(1), z.describe('Directory of the default log file llama-server-<name>.log (default /tmp)')),
    log_file: z
      .string()
      .check(z.minLength(1), z.describe('Log file of the instance (default <log_dir>/llama-server-<name>.log)')),
    gpu_ids: gpuIds,
    restart: z
      .enum(['always', 'on-failure', 'never'])
      .check(z.describe('When to restart after an exit (default on-failure)')),
    max_restarts: count(0).check(
      z.describe('More restarts than this within restart_window_s make the instance fatal (default 10)'),
    ),
    restart_window_s: positive('Window for max_restarts, in seconds (default 300)'),
    backoff_initial_ms: count(0).check(z.describe('First restart delay, doubled per attempt (default 1000)')),
    backoff_max_ms: count(0).check(z.describe('Largest restart delay (default 60000)')),
    stop_timeout_s: positive('SIGTERM to SIGKILL grace in seconds (default 8, fits docker stop)'),
    health_path: z
      .string()
      .check(
        z.regex(/^\//, { error: 'expected a path starting with "/"' }),
        z.describe('Readiness and liveness endpoint (default /health)'),
      ),
    health_interval_s: positive('Liveness probe interval once ready, seconds (default 10)'),
    startup_stall_s: positive(
      'A starting instance fails when neither its log nor its health answer changed for this long (default 180)',
    ),
    env: z
      .record(
        z.string().check(z.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected an environment variable name' })),
        z.union([z.string(), z.number()]),
      )
      .check(z.describe('Extra environment variables for the instance')),
    user: z.string().check(z.minLength(1), z.describe('Run the instance as this user instead of root')),
    log_max_bytes: count(4096).check(z.describe('Rotate the log file at this size (default 52428800)')),
    log_keep: count(1).check(z.describe('Rotated log files to keep (default 5)')),
    on_fit_reduced: z
      .enum(['warn', 'fail'])
      .check(z.describe('When llama.cpp fits a shorter context or moves layers off the GPU: "warn" (default) or "fail" the start')),
    on_demand: z.boolean().check(z.describe('Not started at boot: loaded by the first gateway request routed to it, or supervisor load (default false)')),
    idle_unload_s: z
      .number()
      .check(z.minimum(0), z.describe('Unload after this many seconds with no request in flight or arriving (default 0 = never); also for instances started at boot')),
    exclusive_group: z
      .string()
      .check(z.minLength(1), z.describe('At most one instance of a group is loaded at a time; loading one unloads the other, drained first')),
    memory_mib: count(1).check(z.describe('MiB the instance needs on each of its GPUs (default: estimated from the GGUF, then what the first load really used)')),
    pinned: z.boolean().check(z.describe('Never unloaded to make room (default false)')),
    max_concurrent: count(1).check(z.describe("Requests in flight at once through the gateway (default: the server's slots, --parallel)")),
    max_queue: count(0).check(z.describe('Requests that wait beyond max_concurrent; more get 429 with retry-after (default 256)')),
    gpu_release_timeout_s: z
      .number()
      .check(z.minimum(0), z.maximum(600), z.describe('A start waits this long for the last run\'s GPU memory to come back, then starts anyway (default 15)')),
  }),
);

const serverScalar = z.union([z.string(), z.number(), z.boolean()]);

/** `[instance.server]` and `[instance.<name>.server]`: llama-server flags, key → `--key-with-dashes`. */
export const serverSchema = z.catchall(
  z.partial(
    z.object({
      extra_args: z.array(z.string()).check(z.describe('Raw arguments placed before every generated flag')),
      host: z.string().check(z.describe('Listen address (llama-server default 127.0.0.1)')),
      port: z
        .number()
        .check(z.int(), z.minimum(1), z.maximum(65535), z.describe('Listen port (llama-server default 8080)')),
      model: z.string().check(z.minLength(1), z.describe('Path of the .gguf model (for shards, the first shard)')),
      alias: z.string().check(z.describe('Model name served to clients')),
      ctx_size: count(0).check(z.describe('Context size (0 = from the model)')),
      n_predict: count(-1),
      n_gpu_layers: z.union([count(-1), z.string()]).check(z.describe('Layers offloaded to GPU (-1 or 99: all)')),
      metrics: z.boolean().check(z.describe('Enable the /metrics endpoint')),
      flash_attn: z
        .union([z.enum(['on', 'off', 'auto']), z.boolean()])
        .check(z.describe('Flash attention: "on", "off" or "auto" (a bare boolean is the upstream example\'s mistake)')),
    }),
  ),
  z.union([serverScalar, z.array(z.union([z.string(), z.number()]))]),
);

/** The instance-level keys besides control and server: the engine, and a command instance's launch (src/engines/command.ts). */
const instanceKeys = {
  engine: z
    .enum(['llama-server', 'vllm', 'sglang', 'command', 'rpc-worker'])
    .check(
      z.describe(
        'What runs: the file\'s own engine (default: llama-server here, vllm/sglang in their runners\' files), "command" for any HTTP server, or "rpc-worker" for llama.cpp\'s rpc-server',
      ),
    ),
  command: z
    .array(z.string().check(z.minLength(1)))
    .check(z.minLength(1), z.describe('engine = "command": the program and its arguments, run without a shell')),
  host: z.string().check(z.minLength(1), z.describe('engine = "command" or "rpc-worker": where it listens (default 127.0.0.1)')),
  port: z
    .number()
    .check(z.int(), z.minimum(1), z.maximum(65535), z.describe('engine = "command": the port it listens on (required); "rpc-worker": default 50052')),
  health_path: z
    .string()
    .check(z.regex(/^\//, { error: 'expected a path starting with "/"' }), z.describe('engine = "command": readiness path answering 200 (default: control.health_path, /health)')),
  aliases: z.array(z.string().check(z.minLength(1))).check(z.describe('engine = "command": model names the gateway routes to it')),
  allow_network: z.boolean().check(z.describe('engine = "rpc-worker": listening on a non-loopback host is meant (RPC is unauthenticated); without it config check warns')),
  cache: z.boolean().check(z.describe('engine = "rpc-worker": rpc-server --cache, a local cache of the tensors the leader sends')),
  threads: z.number().check(z.int(), z.minimum(1), z.describe('engine = "rpc-worker": rpc-server --threads (CPU backend)')),
  device: z.string().check(z.minLength(1), z.describe('engine = "rpc-worker": rpc-server --device, the devices it serves (e.g. "CUDA0,CUDA1")')),
  rpc: z
    .array(z.string().check(z.regex(RPC_ADDRESS, { error: 'expected "host:port"' })))
    .check(z.describe('engine = "llama-server": RPC workers, rendered as --rpc host:port,...; the start waits until every one accepts TCP')),
};

/** Keys only a command instance has. */
export const COMMAND_ONLY_KEYS = ['command', 'host', 'port', 'health_path', 'aliases'] as const;
/** Keys of an rpc-worker instance (host and port are shared with command). */
export const RPC_WORKER_KEYS = ['host', 'port', 'allow_network', 'cache', 'threads', 'device'] as const;

export const instanceSchema = z.partial(
  z.strictObject({
    control: controlSchema,
    server: serverSchema,
    ...instanceKeys,
  }),
);

/** `[master]`. */
export const masterSchema = z.partial(
  z.strictObject({
    enable: z.boolean().check(z.describe('Master switch: false launches nothing (default true)')),
    memory_budget_mib: count(1).check(
      z.describe('Memory per device that on-demand loading plans with when no nvidia-smi reports it (CPU machines); with a GPU, its total minus a reserve'),
    ),
    llama_cpp_path: z
      .string()
      .check(
        z.minLength(1),
        z.describe(
          'llama-server executable; default: /soft/app/llama-cpp/bin/llama-server, then /hard/volume/workspace/llama-cpp/build/bin/llama-server, then llama-server on PATH',
        ),
      ),
  }),
);

/** The whole document. */
export const documentSchema = z.partial(
  z.strictObject({
    master: masterSchema,
    instance: z
      .catchall(z.partial(z.object({ control: controlSchema, server: serverSchema })), instanceSchema)
      .check(
        z.describe('Globals ([instance.control], [instance.server]) and one [instance.<name>] table per llama-server'),
      ),
    gateway: gatewaySchema.check(z.describe('Built-in gateway for Claude Code, the Anthropic SDK and OpenAI clients')),
  }),
);

/** `[master]` of upstream's vLLM runner (check-and-run-vllm.sh). */
export const vllmMasterSchema = z.partial(
  z.strictObject({
    enable: z.boolean(),
    pixi_project_dir: z.string().check(z.minLength(1)),
    pixi_environment: z.string().check(z.minLength(1)),
    api_server_module: z.string().check(z.minLength(1)),
  }),
);

/** `[master]` of upstream's SGLang runner (check-and-run-sglang.sh). */
export const sglangMasterSchema = z.partial(
  z.strictObject({
    enable: z.boolean(),
    project_dir: z.string().check(z.minLength(1)),
    python_path: z.string().check(z.minLength(1)),
    server_module: z.string().check(z.minLength(1)),
  }),
);

export type ControlTable = z.infer<typeof controlSchema>;
