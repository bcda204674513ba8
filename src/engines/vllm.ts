// vLLM, started exactly as upstream's check-and-run-vllm.sh did:
// `pixi run --manifest-path <pixi_project_dir> --environment <pixi_environment>
// --frozen python -m <api_server_module> <args>` as AUTO_INFER_VLLM_USER, the
// args by the llama.cpp runner's rules (extra_args first). Readiness: GET
// /health, 200 once the engine serves; it answers 503 when the engine died
// under a live API server, which the liveness probe turns into a restart.
import { findFlagValue, findFlagValues, makeServerArgs } from '../config/argv.ts';
import type { ConfigTable } from '../config/overrides.ts';
import { ARGPARSE_FAILURES, CUDA_OUT_OF_MEMORY, MISSING_MODEL, PORT_TAKEN, type EngineFacts, type EngineLaunch } from './engine.ts';
import { makeRunnerIdentity, type UserLookup } from './python-runner.ts';

/** Upstream's fallbacks: `[master]` key, then the variable, then the default. */
export const VLLM_DEFAULTS = {
  projectDirEnv: 'AUTO_INFER_VLLM_PIXI_PROJECT_DIR',
  projectDir: '/hard/volume/workspace/vllm-pixi-offline',
  environment: 'default',
  module: 'vllm.entrypoints.openai.api_server',
  userEnv: 'AUTO_INFER_VLLM_USER',
  /** vLLM listens on all interfaces, port 8000, unless told otherwise. */
  host: '0.0.0.0',
  port: 8000,
} as const;

export const vllm: EngineFacts = {
  name: 'vllm',
  readsLoadLog: false,
  configFailures: [
    // `ValueError: Free memory on device (10.1/79.2 GiB) on startup is less than desired GPU memory utilization (0.9, 71.3 GiB).`
    /\bFree memory on device\b.*\bis less than desired GPU memory utilization\b/,
    // `ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` …`
    /\bNo available memory for the cache blocks\b/,
    // `ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (…)`
    /\bmax seq len \(\d+\) is larger than the maximum number of tokens\b/,
    ...CUDA_OUT_OF_MEMORY,
    ...MISSING_MODEL,
    ...ARGPARSE_FAILURES,
    ...PORT_TAKEN,
  ],
};

export interface PythonEngineInput {
  /** The merged `[instance.server]` + `[instance.<name>.server]`. */
  server: ConfigTable;
  master: ConfigTable;
  /** `[instance.*.control] user`, if set. */
  user: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  users?: UserLookup;
  isFile(path: string): boolean;
  which(name: string, path?: string): string | null;
}

const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);

/** The vLLM launch of one instance. */
export function makeVllmLaunch(input: PythonEngineInput): EngineLaunch {
  const { master, env } = input;
  const projectDir = text(master.pixi_project_dir) ?? text(env[VLLM_DEFAULTS.projectDirEnv]) ?? VLLM_DEFAULTS.projectDir;
  const environment = text(master.pixi_environment) ?? VLLM_DEFAULTS.environment;
  const module = text(master.api_server_module) ?? VLLM_DEFAULTS.module;
  const serverArgs = makeServerArgs(input.server);
  const who = makeRunnerIdentity({ configured: input.user, userEnv: VLLM_DEFAULTS.userEnv, env, users: input.users });
  const warnings = [...who.warnings];
  if (input.which('pixi', who.env.PATH) === null) {
    warnings.push({ path: [], message: `pixi not found on the launch PATH (${who.env.PATH}): this instance fails at start (upstream's runner exited 1)` });
  }
  const model = findFlagValue(serverArgs, ['--model']);
  const served = findFlagValues(serverArgs, '--served-model-name');
  return {
    executable: 'pixi',
    args: ['run', '--manifest-path', projectDir, '--environment', environment, '--frozen', 'python', '-m', module, ...serverArgs],
    env: who.env,
    envNotes: who.envNotes,
    host: findFlagValue(serverArgs, ['--host']) ?? VLLM_DEFAULTS.host,
    port: Number(findFlagValue(serverArgs, ['--port']) ?? VLLM_DEFAULTS.port),
    user: who.user,
    model: null,
    aliases: served.length > 0 ? served : model === null ? [] : [model],
    healthPath: null,
    logPrefix: 'vllm-server-',
    warnings,
  };
}
