// Shared by the gateway benchmarks (not a benchmark itself): real llama-server
// instances serving the tiny model, supervised by the built daemon
// (`dist/cli.js run`) together with its gateway, plus small HTTP clients that
// time requests direct to an instance and through the gateway, side by side.
//
// BENCH_GPU_LAYERS=N offloads N layers to the GPU (a CUDA build of
// llama-server, given by LLAMA_SERVER_BIN_DIR): inference then leaves the host
// CPUs to the client and the gateway, as in production. bench/gpu-gateway.sh
// runs it so on a GPU machine. The tables say which ran.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { findLlamaServer, freePorts, llamaServerToml, makeTempDir, sleep, startDaemon, waitFor, writeTinyModel } from './lib.mjs';

export const API_KEY = 'bench-key';

/** HEAD / on a port: the status, or 0 when nothing answers. */
function headStatus(port) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'HEAD', path: '/', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/**
 * Starts `instances` real llama-server instances (tiny model, --ignore-eos so every
 * request generates exactly max_tokens) and the gateway in front of them.
 * Returns their ports, the pid whose RSS is the daemon's, and stop().
 */
export async function startRig({ instances = 1, parallel = 4, ctxPerSlot = 512 } = {}) {
  const llama = findLlamaServer();
  if (!llama.path) throw new Error(`the gateway benchmarks need a real llama-server: ${llama.reason}`);
  const gpuLayers = process.env.BENCH_GPU_LAYERS ? Number(process.env.BENCH_GPU_LAYERS) : null;
  const { dir } = makeTempDir('svb-gw');
  const model = join(dir, 'tiny.gguf');
  writeTinyModel(model);
  const [gatewayPort, ...ports] = await freePorts(instances + 1);
  const instancesToml = llamaServerToml({
    llamaServer: llama.path,
    model,
    instances: ports.map((port, i) => ({ name: `gwbench${i}`, port, alias: `tiny-${i}` })),
    server: [`parallel = ${parallel}`, `ctx_size = ${parallel * ctxPerSlot}`, 'ignore_eos = true', ...(gpuLayers === null ? [] : [`n_gpu_layers = ${gpuLayers}`])],
  });
  const gatewayToml = `[gateway]\nhost = "127.0.0.1"\nport = ${gatewayPort}\napi_key = "${API_KEY}"\n`;

  const daemon = await startDaemon(`${instancesToml}\n${gatewayToml}`);
  await waitFor(async () => (await headStatus(gatewayPort)) === 200, 30_000, 'the daemon gateway to listen');
  const inference = gpuLayers ? `inference on the GPU (n_gpu_layers ${gpuLayers})` : `inference on the CPU${gpuLayers === 0 ? " (n_gpu_layers 0)" : ""}`;
  const rig = { pid: daemon.pid, stop: daemon.stop, kind: `the built daemon (dist/cli.js run) with [gateway]; ${inference}; ${cpus().length} CPUs` };
  // Ready = each instance answers /health with 200 (through the gateway's /health for all of them).
  await waitFor(async () => (await getStatus(gatewayPort, '/health')) === 200, 120_000, 'every instance to be ready', 50);
  return { ...rig, dir, gatewayPort, ports, llamaServer: llama.path, inferenceOnCpu: !gpuLayers };
}

function getStatus(port, path) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'GET', path, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** A keep-alive client for one port: post(body) resolves with status, ms to the headers, to the first body byte and to the end, and the text. */
export function makeClient(port, { maxSockets = Infinity, keepAlive = true } = {}) {
  // keepAlive false: a new connection per request (llama-server closes its end after every streamed answer).
  const agent = new http.Agent({ keepAlive, maxSockets });
  const headers = { 'content-type': 'application/json', 'x-api-key': API_KEY, 'anthropic-version': '2023-06-01' };
  return {
    post(path, body) {
      const payload = Buffer.from(JSON.stringify(body));
      return new Promise((resolve, reject) => {
        const t0 = performance.now();
        let firstByteMs = null;
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent, headers: { ...headers, 'content-length': payload.length } }, (res) => {
          const headersMs = performance.now() - t0;
          const chunks = [];
          res.on('data', (c) => {
            firstByteMs ??= performance.now() - t0;
            chunks.push(c);
          });
          res.on('end', () => resolve({ status: res.statusCode, headersMs, firstByteMs, totalMs: performance.now() - t0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}

/** The 1-minute load average: on a shared 2-core box other work moves these numbers, so each table says what it was. */
export function loadAverage() {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** Counts Anthropic SSE text deltas (one per generated token) in a stream body. */
export function countDeltas(text) {
  let n = 0;
  for (let i = text.indexOf('event: content_block_delta'); i >= 0; i = text.indexOf('event: content_block_delta', i + 1)) n++;
  return n;
}

export { sleep };
