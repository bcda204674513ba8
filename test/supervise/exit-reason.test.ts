// Exit classification against what the real llama-server (llama.cpp 80fb11a) prints.
import { describe, expect, it } from 'vitest';
import { classifyExit, describeExit } from '../../src/supervise/exit-reason.ts';
import { llamaServer } from '../../src/engines/llama-server.ts';

const classify = (status: Parameters<typeof classifyExit>[0], tail: readonly string[]) => classifyExit(status, tail, llamaServer.configFailures);

const started = '[supervisor] started pid 42: llama-server --port 8080';
const CORS = [
  "0.00.010.000 W srv  llama_server: CORS is set to allow all origins ('*') and no API key is set",
  '0.00.010.001 W srv  llama_server: consider setting --api-key',
];
const code1 = { code: 1, signal: null };

describe('classifyExit', () => {
  it('unknown flag: the single error line is the reason', () => {
    const v = classify(code1, [started, 'error: invalid argument: --no-such-flag']);
    expect(v).toEqual({ configFailure: true, reason: 'exited with code 1: error: invalid argument: --no-such-flag' });
  });

  it('missing or corrupt model: the first error, not the last, is the cause', () => {
    const missing = [
      started,
      ...CORS,
      "E gguf_init_from_file: failed to open GGUF file '/nonexistent.gguf' (No such file or directory)",
      'E llama_model_load: error loading model: llama_model_loader: failed to load model from /nonexistent.gguf',
      'E llama_model_load_from_file_impl: failed to load model',
      "E srv    load_model: failed to load model, '/nonexistent.gguf'",
      'I srv    operator(): operator(): cleaning up before exit...',
      'E srv  llama_server: exiting due to model loading error',
    ];
    expect(classify(code1, missing).reason).toBe(
      "exited with code 1: E gguf_init_from_file: failed to open GGUF file '/nonexistent.gguf' (No such file or directory)",
    );
    const corrupt = [started, "E gguf_init_from_reader: invalid magic characters: '??v?', expected 'GGUF'", 'E srv  llama_server: exiting due to model loading error'];
    expect(classify(code1, corrupt)).toMatchObject({ configFailure: true, reason: expect.stringContaining('invalid magic') });
  });

  it('port in use', () => {
    const v = classify(code1, [
      started,
      ...CORS,
      'E srv         start: couldn\'t bind HTTP server socket, hostname: 127.0.0.1, port: 18557',
      'E srv  llama_server: exiting due to HTTP server error',
    ]);
    expect(v.configFailure).toBe(true);
    expect(v.reason).toContain("couldn't bind HTTP server socket");
  });

  it('a crash is not a config failure; its last output is kept; an earlier run does not count', () => {
    const tail = [
      '[supervisor] started pid 1: x',
      'error: invalid argument: --old-flag',
      '[supervisor] pid 1 exited with code 1',
      started,
      ...CORS,
      'I srv  llama_server: model loaded',
      'GGML_ASSERT(n_tokens > 0) failed',
    ];
    expect(classify({ code: null, signal: 'SIGABRT' }, tail)).toEqual({
      configFailure: false,
      reason: 'killed by SIGABRT (134); last output: GGML_ASSERT(n_tokens > 0) failed',
    });
    expect(classify(code1, tail).configFailure).toBe(false);
  });

  it('a signal never counts as a config failure', () => {
    expect(classify({ code: null, signal: 'SIGKILL' }, [started, 'error: invalid argument: x']).configFailure).toBe(false);
    expect(describeExit({ code: null, signal: 'SIGKILL' })).toBe('killed by SIGKILL (137)');
  });
});
