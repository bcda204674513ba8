// What every engine says about itself to the supervision code: which of its
// log lines mean "this start will fail the same way again", and whether its
// log carries llama.cpp's load progress. Supervision (states, backoff, logs,
// probes, drain, on-demand) is one code path; only these facts differ.

/** The engines an instance can run. `service`: a system service the boot adds (sshd). */
export type EngineName = 'llama-server' | 'vllm' | 'sglang' | 'command' | 'rpc-worker' | 'service';

export interface EngineFacts {
  name: EngineName;
  /** Log lines of an exited run that make the exit a configuration failure: fatal at once with that line, no restart loop. */
  configFailures: readonly RegExp[];
  /** The log is read for llama.cpp's load phases and fit lines (status' load and fit). */
  readsLoadLog: boolean;
}

/** A port taken by someone else fails every engine the same way again. */
export const PORT_TAKEN: readonly RegExp[] = [/\baddress already in use\b/i, /\bcouldn'?t bind\b/i];

/** Python's argparse on a bad command line (vLLM, SGLang): `error: unrecognized arguments: --x`, `error: argument --port: invalid int value`. */
export const ARGPARSE_FAILURES: readonly RegExp[] = [/\berror: unrecognized arguments\b/, /\berror: argument -/, /\berror: the following arguments are required\b/];

/** A model path or id that does not resolve, as transformers and huggingface_hub say it (vLLM, SGLang). */
export const MISSING_MODEL: readonly RegExp[] = [
  /\bdoes not appear to have a file named config\.json\b/,
  /\bis not a local folder and is not a valid model identifier\b/,
  /\bRepository Not Found\b/,
  /\bRepo id must (be in the form|use alphanumeric)\b/,
  /\bInvalid repository ID or local directory specified\b/,
  /\bNo such file or directory: '[^']*(config\.json|tokenizer)[^']*'/,
];

/** CUDA's out-of-memory, as torch raises it (`torch.OutOfMemoryError: CUDA out of memory. Tried to allocate …`). */
export const CUDA_OUT_OF_MEMORY: readonly RegExp[] = [/\bCUDA out of memory\b/, /\bOutOfMemoryError\b/];

/** How one instance of an engine is started and found, as its builder makes it from the config. */
export interface EngineLaunch {
  executable: string;
  args: string[];
  /** Variables the engine sets on top of the instance's own `env`. */
  env: Record<string, string>;
  /** Why a variable was added (shown by `config print`). */
  envNotes: Record<string, string>;
  /** Where it listens (probed on loopback for 0.0.0.0 and ::). */
  host: string;
  port: number;
  /** Run as this user; undefined: control.user decides. */
  user?: string | null;
  /** A model file that must exist before a start (llama-server's GGUF); null: none checked. */
  model: string | null;
  /** The model names it answers to, which the gateway routes by. */
  aliases: string[];
  /** The readiness path when the engine knows a better one than control.health_path; null: the policy's. */
  healthPath: string | null;
  /** The default log file is `<log_dir>/<logPrefix><name>.log`. */
  logPrefix: string;
  /** Config warnings at key paths below the instance (`['control', 'user']`), or at the document root when absolute. */
  warnings: Array<{ path: string[]; message: string }>;
  /** How readiness is probed; absent: GET healthPath (HTTP). */
  probe?: 'tcp';
}
