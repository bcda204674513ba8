// Shared by the gateway benchmarks (not a benchmark itself): real llama-server
// instances serving the tiny model, supervised together with the gateway in
// one process, plus small HTTP clients that time requests direct to an
// instance and through the gateway, side by side.
//
// The process that holds the supervisor and the gateway is the built daemon
// (`node dist/cli.js run`) when it knows `[gateway]`; until then it is a host
// bundled on the fly from src/ (esbuild, a devDependency) that wires the same
// modules the daemon will: Supervisor + fromSupervisor + startGateway. The
// tables say which one ran.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  CLI,
  REPO_ROOT,
  findLlamaServer,
  freePorts,
  makeTempDir,
  onCleanup,
  pidsWithEnv,
  sleep,
  startDaemon,
  waitFor,
  writeTinyModel,
} from './lib.mjs';

export const API_KEY = 'bench-key';

// The host used until the daemon runs the gateway itself: same modules, same wiring.
const HOST_SOURCE = `
import { readFileSync } from 'node:fs';
import { makeLaunchPlan } from './src/config/launch-plan.ts';
import { which } from './src/config/load-config.ts';
import { readToml } from './src/config/toml-source.ts';
import { makeGatewayPlan } from './src/gateway/gateway-config.ts';
import { startGateway } from './src/gateway/server.ts';
import { fromSupervisor } from './src/gateway/targets.ts';
import { makeInstanceDeps } from './src/supervise/effects.ts';
import { Supervisor } from './src/supervise/supervisor.ts';

const [instancesFile, gatewayFile] = process.argv.slice(2);
const out = (level) => (obj, msg) => process.stdout.write(JSON.stringify({ level, ...obj, msg, time: new Date().toISOString() }) + '\\n');
const log = { info: out('info'), warn: out('warn'), error: out('error') };
const planned = makeLaunchPlan(readFileSync(instancesFile, 'utf8'), { env: process.env, file: instancesFile, isFile: () => false, which: (n) => which(n, process.env.PATH) });
if (!planned.plan) throw new Error(JSON.stringify(planned.issues));
const made = makeGatewayPlan(readToml(readFileSync(gatewayFile, 'utf8')).document.gateway, planned.plan, process.env);
if (!made.plan) throw new Error(JSON.stringify(made.issues));
const supervisor = new Supervisor({ plan: planned.plan, deps: makeInstanceDeps({ log }) });
const gateway = await startGateway({ plan: made.plan, targets: fromSupervisor(supervisor), log });
void supervisor.startAll();
process.on('SIGTERM', async () => {
  await gateway.close();
  await supervisor.shutdown('SIGTERM');
  process.exit(0);
});
`;

/** Does the built daemon accept a [gateway] table (integration done)? */
function daemonKnowsGateway(dir) {
  const file = join(dir, 'probe.toml');
  writeFileSync(file, '[gateway]\nenable = false\n');
  return spawnSync(process.execPath, [CLI, 'config', 'check', file], { encoding: 'utf8' }).status === 0;
}

// Bundles HOST_SOURCE into dir/gateway-host.mjs.
async function buildHost(dir) {
  const { build } = await import('esbuild');
  const outfile = join(dir, 'gateway-host.mjs');
  await build({
    stdin: { contents: HOST_SOURCE, resolveDir: REPO_ROOT, loader: 'ts', sourcefile: 'gateway-host.ts' },
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
  });
  return outfile;
}

/** Starts the host process (bundled) for the given TOML texts; resolves once the gateway answers. */
async function startHost({ dir, instancesToml, gatewayToml, gatewayPort }) {
  const instancesFile = join(dir, 'instances.toml');
  const gatewayFile = join(dir, 'gateway.toml');
  writeFileSync(instancesFile, instancesToml.replaceAll('@DIR@', dir));
  writeFileSync(gatewayFile, gatewayToml);
  const host = await buildHost(dir);
  const marker = `INFER_DEV_BENCH_HOST=${dir}`;
  // BENCH_GATEWAY_NODE_ARGS: extra node flags for the host (e.g. --cpu-prof), for looking into a result.
  const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...nodeArgs, host, instancesFile, gatewayFile], {
    env: { ...process.env, INFER_DEV_BENCH_HOST: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  // The host's event log (transitions and the like), kept with the instance logs for a look after a surprise.
  proc.stdout.pipe(createWriteStream(join(dir, 'host-events.jsonl')));
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  const stop = onCleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    for (const pid of pidsWithEnv(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`gateway host exited (${proc.exitCode}): ${stderr}`);
    return (await headStatus(gatewayPort)) === 200;
  }, 30_000, 'the gateway host to listen');
  return { pid: proc.pid, stop, kind: 'gateway host bundled from src/ (Supervisor + startGateway in one process; daemon integration pending)' };
}

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
export async function startRig({ instances = 1, parallel = 4, ctxPerSlot = 512, extraServer = '' } = {}) {
  const llama = findLlamaServer();
  if (!llama.path) throw new Error(`the gateway benchmarks need a real llama-server: ${llama.reason}`);
  const { dir } = makeTempDir('svb-gw');
  const model = join(dir, 'tiny.gguf');
  writeTinyModel(model);
  const [gatewayPort, ...ports] = await freePorts(instances + 1);
  const instancesToml = `[master]
llama_cpp_path = ${JSON.stringify(llama.path)}

[instance.control]
log_dir = "@DIR@"

[instance.server]
host = "127.0.0.1"
model = ${JSON.stringify(model)}
threads = 1
parallel = ${parallel}
ctx_size = ${parallel * ctxPerSlot}
ignore_eos = true
${extraServer}
${ports.map((p, i) => `\n[instance.gwbench${i}.server]\nport = ${p}\nalias = "tiny-${i}"\n`).join('')}`;
  const gatewayToml = `[gateway]\nhost = "127.0.0.1"\nport = ${gatewayPort}\napi_key = "${API_KEY}"\n`;

  let rig;
  if (daemonKnowsGateway(dir)) {
    const daemon = await startDaemon(`${instancesToml}\n${gatewayToml}`);
    await waitFor(async () => (await headStatus(gatewayPort)) === 200, 30_000, 'the daemon gateway to listen');
    rig = { pid: daemon.pid, stop: daemon.stop, kind: 'the built daemon (node dist/cli.js run) with [gateway]' };
  } else {
    rig = await startHost({ dir, instancesToml, gatewayToml, gatewayPort });
  }
  // Ready = each instance answers /health with 200 (through the gateway's /health for all of them).
  await waitFor(async () => (await getStatus(gatewayPort, '/health')) === 200, 120_000, 'every instance to be ready', 50);
  return { ...rig, dir, gatewayPort, ports, llamaServer: llama.path };
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
