// Which upstream runner's TOML a config file is: llama.cpp's (ours, with the
// supervisor's additions), vLLM's or SGLang's. They share upstream's merge and
// argv rules; each has its own [master] keys, variables and default engine.
import type { EngineName } from '../engines/engine.ts';

export type ConfigKind = 'llama-cpp' | 'vllm' | 'sglang';

export interface ConfigKindFacts {
  kind: ConfigKind;
  /** The variable naming the config file. */
  configEnv: string;
  /** The JSON overrides deep-merged over it. */
  overridesEnv: string;
  /** The boot switch that serves it. */
  onBootEnv: string;
  /** What an `[instance.x]` without `engine` runs; `engine` may also say this or "command". */
  engine: Exclude<EngineName, 'command' | 'rpc-worker' | 'service'>;
  /** Upstream's script this replaces (for messages). */
  runner: string;
}

export const CONFIG_KINDS: Readonly<Record<ConfigKind, ConfigKindFacts>> = Object.freeze({
  'llama-cpp': {
    kind: 'llama-cpp',
    configEnv: 'AUTO_INFER_LLAMA_CPP_CONFIG',
    overridesEnv: 'AUTO_INFER_LLAMA_CPP_OVERRIDES',
    onBootEnv: 'AUTO_INFER_LLAMA_CPP_ON_BOOT',
    engine: 'llama-server',
    runner: 'check-and-run-llama-cpp.sh',
  },
  vllm: {
    kind: 'vllm',
    configEnv: 'AUTO_INFER_VLLM_CONFIG',
    overridesEnv: 'AUTO_INFER_VLLM_OVERRIDES',
    onBootEnv: 'AUTO_INFER_VLLM_ON_BOOT',
    engine: 'vllm',
    runner: 'check-and-run-vllm.sh',
  },
  sglang: {
    kind: 'sglang',
    configEnv: 'AUTO_INFER_SGLANG_CONFIG',
    overridesEnv: 'AUTO_INFER_SGLANG_OVERRIDES',
    onBootEnv: 'AUTO_INFER_SGLANG_ON_BOOT',
    engine: 'sglang',
    runner: 'check-and-run-sglang.sh',
  },
});

/** `--engine` on the command line: the engine names and the config kinds both work. */
export function parseConfigKind(word: string): ConfigKind | null {
  if (word === 'llama-cpp' || word === 'llama-server' || word === 'llama.cpp' || word === 'llama') return 'llama-cpp';
  if (word === 'vllm' || word === 'sglang') return word;
  return null;
}
