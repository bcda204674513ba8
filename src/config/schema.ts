// The zod schema of the TOML file: the single source of what keys exist, their
// types and ranges. It validates a plain view of the document (bigints turned
// into numbers) and is exported as JSON Schema for editors
// (config-examples/infer-dev.schema.json).
import { z } from 'zod';

/** `[instance.*] names`: upstream's schema pattern. */
export const INSTANCE_NAME = /^(?!control$)(?!server$)[A-Za-z0-9][A-Za-z0-9._-]*$/;

const gpuIds = z
  .union([
    z.string().regex(/^(all|none|\d+(,\d+)*)$/i, { error: 'expected "all", "none" or GPU indices such as "0,1"' }),
    z.number().int().min(0),
  ])
  .describe('GPUs for CUDA_VISIBLE_DEVICES: "all" (inherit), "none" (hide all GPUs) or indices such as "0,1"');

const positive = (what: string) => z.number().positive().describe(what);

/** `[instance.control]` and `[instance.<name>.control]`. */
export const controlSchema = z
  .object({
    enabled: z.boolean().describe('Start this instance (default true)'),
    background: z
      .boolean()
      .describe('false: start the next instances only once this one is ready or has failed (default true)'),
    log_dir: z.string().min(1).describe('Directory of the default log file llama-server-<name>.log (default /tmp)'),
    log_file: z.string().min(1).describe('Log file of the instance (default <log_dir>/llama-server-<name>.log)'),
    gpu_ids: gpuIds,
    restart: z.enum(['always', 'on-failure', 'never']).describe('When to restart after an exit (default on-failure)'),
    max_restarts: z
      .number()
      .int()
      .min(0)
      .describe('More restarts than this within restart_window_s make the instance fatal (default 10)'),
    restart_window_s: positive('Window for max_restarts, in seconds (default 300)'),
    backoff_initial_ms: z.number().int().min(0).describe('First restart delay, doubled per attempt (default 1000)'),
    backoff_max_ms: z.number().int().min(0).describe('Largest restart delay (default 60000)'),
    stop_timeout_s: positive('SIGTERM to SIGKILL grace in seconds (default 8, fits docker stop)'),
    health_path: z
      .string()
      .regex(/^\//, { error: 'expected a path starting with "/"' })
      .describe('Readiness and liveness endpoint (default /health)'),
    health_interval_s: positive('Liveness probe interval once ready, seconds (default 10)'),
    startup_stall_s: positive(
      'A starting instance fails when neither its log nor its health answer changed for this long (default 180)',
    ),
    env: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'expected an environment variable name' }),
        z.union([z.string(), z.number()]),
      )
      .describe('Extra environment variables for the instance'),
    user: z.string().min(1).describe('Run the instance as this user instead of root'),
    log_max_bytes: z.number().int().min(4096).describe('Rotate the log file at this size (default 52428800)'),
    log_keep: z.number().int().min(1).describe('Rotated log files to keep (default 5)'),
  })
  .partial()
  .strict();

const serverScalar = z.union([z.string(), z.number(), z.boolean()]);

/** `[instance.server]` and `[instance.<name>.server]`: llama-server flags, key → `--key-with-dashes`. */
export const serverSchema = z
  .object({
    extra_args: z.array(z.string()).describe('Raw arguments placed before every generated flag'),
    host: z.string().describe('Listen address (llama-server default 127.0.0.1)'),
    port: z.number().int().min(1).max(65535).describe('Listen port (llama-server default 8080)'),
    model: z.string().min(1).describe('Path of the .gguf model (for shards, the first shard)'),
    alias: z.string().describe('Model name served to clients'),
    ctx_size: z.number().int().min(0).describe('Context size (0 = from the model)'),
    n_predict: z.number().int().min(-1),
    n_gpu_layers: z.union([z.number().int().min(-1), z.string()]).describe('Layers offloaded to GPU (-1 or 99: all)'),
    metrics: z.boolean().describe('Enable the /metrics endpoint'),
    flash_attn: z
      .union([z.enum(['on', 'off', 'auto']), z.boolean()])
      .describe('Flash attention: "on", "off" or "auto" (a bare boolean is the upstream example\'s mistake)'),
  })
  .partial()
  .catchall(z.union([serverScalar, z.array(z.union([z.string(), z.number()]))]));

const instanceSchema = z
  .object({
    control: controlSchema,
    server: serverSchema,
  })
  .partial()
  .strict();

/** `[master]`. */
export const masterSchema = z
  .object({
    enable: z.boolean().describe('Master switch: false launches nothing (default true)'),
    llama_cpp_path: z
      .string()
      .min(1)
      .describe(
        'llama-server executable; default: /soft/app/llama-cpp/bin/llama-server, then /hard/volume/workspace/llama-cpp/build/bin/llama-server, then llama-server on PATH',
      ),
  })
  .partial()
  .strict();

/** The whole document. */
export const documentSchema = z
  .object({
    master: masterSchema,
    instance: z
      .object({ control: controlSchema, server: serverSchema })
      .partial()
      .catchall(instanceSchema)
      .describe('Globals ([instance.control], [instance.server]) and one [instance.<name>] table per llama-server'),
  })
  .partial()
  .strict();

export type ControlTable = z.infer<typeof controlSchema>;

/** The JSON Schema (2020-12) shipped for editors. */
export function makeJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(documentSchema, { target: 'draft-2020-12' }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    $id: 'https://infer-dev.local/infer-dev.schema.json',
    title: 'infer-dev llama-server supervisor config',
    ...schema,
  };
}
