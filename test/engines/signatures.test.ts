// Each engine's configuration failures, through the one classifier supervision
// uses: such an exit is fatal with its line; any other exit is a crash for the
// restart policy. The lines are as vLLM, SGLang and torch word them.
import { describe, expect, it } from 'vitest';
import { engineFacts } from '../../src/engines/registry.ts';
import type { EngineName } from '../../src/engines/engine.ts';
import { classifyExit } from '../../src/supervise/exit-reason.ts';

const started = '[supervisor] started pid 42: pixi run ...';
const code1 = { code: 1, signal: null };
const classify = (engine: EngineName, lines: string[]) => classifyExit(code1, [started, ...lines], engineFacts(engine).configFailures);

describe('vLLM', () => {
  it.each([
    'ValueError: Free memory on device (10.52/79.19 GiB) on startup is less than desired GPU memory utilization (0.9, 71.27 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.',
    'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.02 GiB is free.',
    'ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when initializing the engine.',
    "ValueError: The model's max seq len (32768) is larger than the maximum number of tokens that can be stored in KV cache (16000). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.",
    "OSError: /llm-models/x does not appear to have a file named config.json. Checkout 'https://huggingface.co//llm-models/x/tree/None' for available files.",
    "huggingface_hub.errors.HFValidationError: Repo id must be in the form 'repo_name' or 'namespace/repo_name': '/llm-models/x'. Use `repo_type` argument if needed.",
    'api_server.py: error: unrecognized arguments: --no-such-flag',
    "api_server.py: error: argument --port: invalid int value: 'x'",
    'OSError: [Errno 98] Address already in use',
  ])('fatal with its line: %s', (line) => {
    const verdict = classify('vllm', ['INFO 12-03 06:27:17 [api_server.py] vLLM API server version 0.8.3', 'Traceback (most recent call last):', line]);
    expect(verdict).toEqual({ configFailure: true, reason: `exited with code 1: ${line}` });
  });

  it('any other exit is a crash for the restart policy (an engine core that died, a segfault)', () => {
    expect(classify('vllm', ['ERROR 12-03 [core.py] EngineCore failed to start.', 'RuntimeError: Engine core initialization failed.']).configFailure).toBe(false);
    expect(classifyExit({ code: null, signal: 'SIGSEGV' }, [started, 'CUDA out of memory'], engineFacts('vllm').configFailures).configFailure).toBe(false);
  });
});

describe('SGLang', () => {
  it.each([
    'RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.',
    'torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB.',
    "OSError: zai-org/GLM-4.7x is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'",
    'launch_server.py: error: unrecognized arguments: --tp-sizee 8',
  ])('fatal with its line: %s', (line) => {
    expect(classify('sglang', [line]).configFailure).toBe(true);
  });
});

describe('llama-server lines are llama-server\'s only', () => {
  it("a vLLM log line that llama-server's list would take is not a vLLM config failure, and the reverse", () => {
    expect(classify('vllm', ['error loading model architecture: unknown model architecture']).configFailure).toBe(false);
    expect(classify('llama-server', ['error loading model architecture: unknown model architecture']).configFailure).toBe(true);
    expect(classify('llama-server', ['ValueError: Free memory on device (1/2 GiB) on startup is less than desired GPU memory utilization (0.9, 1.8 GiB).']).configFailure).toBe(false);
  });

  it('command: only a taken port is known to repeat', () => {
    expect(classify('command', ['bind: Address already in use']).configFailure).toBe(true);
    expect(classify('command', ['Error: model not found']).configFailure).toBe(false);
  });
});

describe('rpc-worker (rpc-server) and an RPC leader', () => {
  it.each(['error: unknown argument: --no-such-flag', 'error: unknown device: CUDA9', 'error: invalid number of threads: 0', 'Invalid parameters', 'Failed to create server socket'])(
    'rpc-server: fatal with its line: %s',
    (line) => {
      expect(classify('rpc-worker', [line])).toEqual({ configFailure: true, reason: `exited with code 1: ${line}` });
    },
  );

  it('a leader that lost a worker, or cannot reach one, is a crash (its restart waits for the worker); another version is fatal', () => {
    expect(classify('llama-server', ['/src/ggml-rpc.cpp:35: GGML_ABORT Remote RPC server crashed or returned malformed response']).configFailure).toBe(false);
    expect(classify('llama-server', ['ggml-rpc.cpp:547: Failed to connect to 127.0.0.1:50052']).configFailure).toBe(false);
    expect(classify('llama-server', ['RPC server version mismatch: 2.0.0']).configFailure).toBe(true);
  });
});
