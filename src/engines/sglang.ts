// SGLang, started exactly as upstream's check-and-run-sglang.sh did:
// `<python_path> -m <server_module> <args>` as AUTO_INFER_SGLANG_USER, with the
// python of the unpacked bundle (`<project_dir>/env/bin/python`) by default.
// Readiness: GET /health.
import { findFlagValue, makeServerArgs } from '../config/argv.ts';
import { ARGPARSE_FAILURES, CUDA_OUT_OF_MEMORY, MISSING_MODEL, PORT_TAKEN, type EngineFacts, type EngineLaunch } from './engine.ts';
import { makeRunnerIdentity } from './python-runner.ts';
import type { PythonEngineInput } from './vllm.ts';

export const SGLANG_DEFAULTS = {
  projectDirEnv: 'AUTO_INFER_SGLANG_PROJECT_DIR',
  projectDir: '/hard/volume/workspace/sglang-pixi-offline',
  pythonEnv: 'AUTO_INFER_SGLANG_PYTHON',
  module: 'sglang.launch_server',
  userEnv: 'AUTO_INFER_SGLANG_USER',
  host: '127.0.0.1',
  port: 30000,
} as const;

export const sglang: EngineFacts = {
  name: 'sglang',
  readsLoadLog: false,
  configFailures: [
    // `RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.`
    /\bNot enough memory\. Please try to increase --mem-fraction-static\b/,
    // `ValueError: … mem_fraction_static … is too small` and the like
    /\bmem[-_]fraction[-_]static\b.*\b(too (small|large)|increase|decrease)\b/i,
    ...CUDA_OUT_OF_MEMORY,
    ...MISSING_MODEL,
    ...ARGPARSE_FAILURES,
    ...PORT_TAKEN,
  ],
};

const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : undefined);

/** The SGLang launch of one instance. */
export function makeSglangLaunch(input: PythonEngineInput): EngineLaunch {
  const { master, env } = input;
  const projectDir = text(master.project_dir) ?? text(env[SGLANG_DEFAULTS.projectDirEnv]) ?? SGLANG_DEFAULTS.projectDir;
  const python = text(master.python_path) ?? text(env[SGLANG_DEFAULTS.pythonEnv]) ?? `${projectDir}/env/bin/python`;
  const module = text(master.server_module) ?? SGLANG_DEFAULTS.module;
  const serverArgs = makeServerArgs(input.server);
  const who = makeRunnerIdentity({ configured: input.user, userEnv: SGLANG_DEFAULTS.userEnv, env, users: input.users });
  const warnings = [...who.warnings];
  const found = python.includes('/') ? input.isFile(python) : input.which(python, who.env.PATH) !== null;
  if (!found) warnings.push({ path: [], message: `python not found: ${python} (is the SGLang bundle installed?); this instance fails at start` });
  const modelPath = findFlagValue(serverArgs, ['--model-path', '--model']);
  const served = findFlagValue(serverArgs, ['--served-model-name']);
  return {
    executable: python,
    args: ['-m', module, ...serverArgs],
    env: who.env,
    envNotes: who.envNotes,
    host: findFlagValue(serverArgs, ['--host']) ?? SGLANG_DEFAULTS.host,
    port: Number(findFlagValue(serverArgs, ['--port']) ?? SGLANG_DEFAULTS.port),
    user: who.user,
    model: null,
    aliases: served !== null ? [served] : modelPath === null ? [] : [modelPath],
    healthPath: null,
    logPrefix: 'sglang-server-',
    warnings,
  };
}
