// llama-server (llama.cpp). Its argv is upstream's runner's (config/argv.ts:
// extra_args first, then --key-with-dashes per server key), its executable
// upstream's fallback order (config/executable.ts); readiness is GET /health
// (503 while loading, 200 once listening and loaded); its log carries the
// load phases and fit decisions (gpu/load-report.ts).
import { PORT_TAKEN, type EngineFacts } from './engine.ts';

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
  ],
};
