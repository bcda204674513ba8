// llama-server (llama.cpp). Its argv is upstream's runner's (config/argv.ts:
// extra_args first, then --key-with-dashes per server key), its executable
// upstream's fallback order (config/executable.ts), with that executable's
// directory in front of LD_LIBRARY_PATH; readiness is GET /health (503 while
// loading, 200 once listening and loaded); its log carries the load phases and
// fit decisions (gpu/load-report.ts).
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
  setsLogVerbosity,
} from '../config/argv.ts';
import type { ConfigTable, ConfigValue } from '../config/overrides.ts';
import { PORT_TAKEN, type EngineFacts, type EngineLaunch } from './engine.ts';

/** llama-server's own listen defaults. */
export const LLAMA_SERVER_DEFAULTS = { host: '127.0.0.1', port: 8080 } as const;

export const llamaServer: EngineFacts = {
  name: 'llama-server',
  readsLoadLog: true,
  // As llama-server prints them (measured on llama.cpp 80fb11a, the source node-llama-cpp@3.21.1 ships).
  configFailures: [
    // `error: invalid argument: --no-such-flag` (the only line printed)
    /\b(invalid|unknown|unrecognized) (argument|option)\b/i,
    /\berror while handling argument\b/i,
    // `gguf_init_from_file: failed to open GGUF file '/x.gguf' (No such file or directory)`
    /\bgguf_init_from_\w+: (failed|invalid)\b/i,
    /\bfailed to open gguf\b/i,
    /\bmodel is corrupted\b/i,
    /\berror loading model\b/i,
    /\bfailed to load model\b/i,
    /\bexiting due to model loading error\b/i,
    // `start: couldn't bind HTTP server socket, hostname: 127.0.0.1, port: 8080`
    ...PORT_TAKEN,
    /\bexiting due to HTTP server error\b/i,
    // A leader and an RPC worker of different llama.cpp versions (ggml-rpc.cpp); an unreachable worker is not
    // one: its start waits for the worker, and a crash on a lost one is a restart.
    /\bRPC server version mismatch\b/,
    /\bFailed to parse endpoint\b/,
  ],
};

/** The launch of one llama-server instance: upstream's argv, its LD_LIBRARY_PATH rule, and the verbosity that makes its load visible. */
export function makeLlamaLaunch({
  server,
  control,
  executable,
  env: outer,
}: {
  /** The merged `[instance.server]` + `[instance.<name>.server]`. */
  server: ConfigTable;
  /** The merged control table (its `env` is read). */
  control: ConfigTable;
  executable: { path: string; libraryDir: string | null };
  /** The supervisor's environment. */
  env: Readonly<Record<string, string | undefined>>;
}): EngineLaunch & { apiKey: string | null; ctxSize: number | null } {
  const args = makeServerArgs(server);
  const own: Record<string, string> = {};
  for (const [key, value] of Object.entries((control.env ?? {}) as ConfigTable)) own[key] = formatArg(value as ConfigValue);
  const env: Record<string, string> = {};
  const notes: Record<string, string> = {};
  if (executable.libraryDir !== null) {
    const previous = own.LD_LIBRARY_PATH ?? outer.LD_LIBRARY_PATH;
    env.LD_LIBRARY_PATH = previous ? `${executable.libraryDir}:${previous}` : executable.libraryDir;
  }
  if (own[LOG_VERBOSITY_ENV] === undefined && outer[LOG_VERBOSITY_ENV] === undefined && !setsLogVerbosity(args)) {
    env[LOG_VERBOSITY_ENV] = LOAD_LOG_VERBOSITY;
    notes[LOG_VERBOSITY_ENV] = `added by the supervisor (argv unchanged): at verbosity ${LOAD_LOG_VERBOSITY} llama-server logs its buffers, offload and fit decisions, which status shows; set it or -v yourself to choose`;
  }
  const all = { ...own, ...env };
  const listen = findListenAddress(args);
  return {
    executable: executable.path,
    args,
    env,
    envNotes: notes,
    host: listen.host,
    port: listen.port,
    model: findModel(args),
    aliases: findAliases(args, all),
    healthPath: null,
    logPrefix: 'llama-server-',
    warnings: [],
    apiKey: findApiKey(args, all),
    ctxSize: findCtxSize(args, all),
  };
}
