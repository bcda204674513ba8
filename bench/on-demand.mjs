// Targets (issue 13), one daemon, real llama-server instances of the tiny model on the CPU:
// - cold: a request to an unloaded on-demand instance -> its first token, against the same
//   server spawned by hand (the argv and environment the daemon gave it, read from /proc),
//   polled on /health every 5 ms until ready, then the same request: overhead <= 50 ms (medians).
// - A/B: 8 clients alternating two models of one exclusive group for T s: requests per second
//   and swaps, against a naive proxy written here (~50 lines) that serves requests in arrival
//   order and swaps whenever the next one wants the other model: >= 3x its throughput.
// - loaded: the gateway's added latency for a loaded on-demand instance, interleaved pairs
//   direct vs gateway (gateway-latency's method): <= 1 ms at p50.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { findLlamaServer, fmt, freePorts, llamaServerToml, makeTempDir, median, percentile, sleep, startDaemon, table, waitFor, writeTinyModel } from './lib.mjs';
import { loadAverage, makeClient } from './gateway-harness.mjs';

export const name = 'on-demand';

const LIMITS = { coldOverheadMs: 50, abRatio: 3, loadedP50Ms: 1 };
const CLIENTS = 8;
const chat = (model, maxTokens, stream = false) => ({ model, max_tokens: maxTokens, stream, messages: [{ role: 'user', content: 'Say hello.' }] });

/** POSTs a streamed chat request; resolves with the status and ms to the first token (the first content delta). */
function firstToken(port, body) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const t0 = performance.now();
    let tokenMs = null;
    let text = '';
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent: false, headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        text += chunk;
        // Keep-alive comments and the role delta come first; the token is the first `"content":"`.
        if (tokenMs === null && /"content":"/.test(text)) tokenMs = performance.now() - t0;
      });
      res.on('end', () => (tokenMs === null ? reject(new Error(`no token (status ${res.statusCode}): ${text.slice(0, 300)}`)) : resolve({ status: res.statusCode, tokenMs })));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function getStatus(port, path) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
  });
}

const post = (port, path, body) =>
  new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body));
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent: false, headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', reject);
    req.end(payload);
  });

/** The argv and environment the daemon gave instance `name` (read from /proc while it runs). */
function launchOf(daemon, name) {
  const status = JSON.parse(daemon.cli('status', '--json').stdout);
  const pid = status.find((i) => i.name === name)?.pid;
  if (!pid) throw new Error(`${name} has no pid in status`);
  const split = (file) => readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').filter(Boolean);
  const [file, ...args] = split('cmdline');
  return { file, args, env: Object.fromEntries(split('environ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) };
}

/** Spawns a launch by hand; stop() ends it and waits for its exit. */
function spawnByHand(launch) {
  const child = spawn(launch.file, launch.args, { env: launch.env, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const portOf = (launch) => Number(launch.args[launch.args.indexOf('--port') + 1]);

/** The naive reference: one model loaded at a time, requests in arrival order, a swap whenever the next wants the other. */
function startNaiveProxy(launches) {
  const queue = [];
  let current = null;
  let inflight = 0;
  let swapping = false;
  let swaps = 0;
  const forward = (job) => {
    inflight++;
    const up = http.request({ host: '127.0.0.1', port: portOf(launches[job.model]), method: 'POST', path: job.req.url, headers: job.req.headers, agent: false }, (res) => {
      job.res.writeHead(res.statusCode, res.headers);
      res.pipe(job.res);
      res.on('end', () => {
        inflight--;
        pump();
      });
    });
    up.on('error', (err) => {
      inflight--;
      job.res.writeHead(502).end(String(err));
      pump();
    });
    up.end(job.body);
  };
  const swapTo = async (model) => {
    swapping = true;
    swaps++;
    await current?.process.stop();
    current = { model, process: spawnByHand(launches[model]) };
    await waitFor(async () => (await getStatus(portOf(launches[model]), '/health')) === 200, 60_000, `${model} ready`, 5);
    swapping = false;
    pump();
  };
  const pump = () => {
    while (!swapping && queue.length > 0) {
      if (current?.model === queue[0].model) forward(queue.shift());
      else if (inflight === 0) return void swapTo(queue[0].model);
      else return;
    }
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      queue.push({ req, res, body, model: JSON.parse(body.toString()).model });
      pump();
    });
  });
  return {
    server,
    get swaps() {
      return swaps;
    },
    close: async () => {
      server.close();
      await current?.process.stop();
    },
  };
}

/** CLIENTS clients, each alternating `models` for `ms`: how many answered (all must be 200) and the rate. */
async function alternate(port, models, ms) {
  const until = performance.now() + ms;
  const t0 = performance.now();
  let answered = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      for (let i = c; performance.now() < until; i++) {
        const r = await post(port, '/v1/chat/completions', chat(models[i % 2], 4));
        if (r.status !== 200) throw new Error(`status ${r.status}: ${r.text.slice(0, 300)}`);
        answered++;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { answered, seconds, rps: answered / seconds };
}

export async function run({ quick }) {
  const llama = findLlamaServer();
  if (!llama.path) throw new Error(`the on-demand benchmark needs a real llama-server: ${llama.reason}`);
  const rounds = quick ? 5 : 15;
  const abMs = quick ? 10_000 : 20_000;
  const pairs = quick ? 300 : 1000;
  const loadBefore = loadAverage();
  const { dir, remove } = makeTempDir('svb-od');
  const model = `${dir}/tiny.gguf`;
  writeTinyModel(model);
  const [gatewayPort, coldPort, aPort, bPort, naivePort] = await freePorts(5);
  const toml = [
    llamaServerToml({
      llamaServer: llama.path,
      model,
      instances: [
        { name: 'cold', port: coldPort, alias: 'cold' },
        { name: 'a', port: aPort, alias: 'a' },
        { name: 'b', port: bPort, alias: 'b' },
      ],
      control: ['on_demand = true'],
      server: ['ctx_size = 2048', 'parallel = 4', 'ignore_eos = true'],
    }),
    '[instance.a.control]\nexclusive_group = "pair"\n',
    '[instance.b.control]\nexclusive_group = "pair"\n',
    `[gateway]\nhost = "127.0.0.1"\nport = ${gatewayPort}\ndefault = false\n`,
  ].join('\n');
  const daemon = await startDaemon(toml);
  let naive = null;
  try {
    await waitFor(async () => (await getStatus(gatewayPort, '/health')) === 200, 30_000, 'the gateway');
    const unload = async (instance) => {
      const from = daemon.events.length;
      const r = await post(gatewayPort, '/models/unload', { model: instance });
      if (r.status !== 200) throw new Error(`unload ${instance}: ${r.status} ${r.text}`);
      await daemon.waitTransition(instance, 'idle', 30_000, from);
    };

    // Cold: warm the page cache and learn the launch once, then interleave the two paths.
    if ((await firstToken(gatewayPort, chat('cold', 1, true))).status !== 200) throw new Error('cold warm-up failed');
    const coldLaunch = launchOf(daemon, 'cold');
    await unload('cold');
    const cold = { supervised: [], byHand: [] };
    const supervised = async () => {
      const r = await firstToken(gatewayPort, chat('cold', 1, true));
      if (r.status !== 200) throw new Error(`cold request: ${r.status}`);
      cold.supervised.push(r.tokenMs);
      await unload('cold');
    };
    const byHand = async () => {
      const t0 = performance.now();
      const server = spawnByHand(coldLaunch);
      await waitFor(async () => (await getStatus(coldPort, '/health')) === 200, 60_000, 'the hand-spawned server', 5);
      const r = await firstToken(coldPort, chat('cold', 1, true));
      const tokenAt = performance.now() - t0;
      if (r.status !== 200) throw new Error(`direct request: ${r.status}`);
      cold.byHand.push(tokenAt);
      await server.stop();
    };
    for (let i = 0; i < rounds; i++) {
      if (i % 2 === 0) {
        await supervised();
        await byHand();
      } else {
        await byHand();
        await supervised();
      }
    }
    const coldOverhead = median(cold.supervised) - median(cold.byHand);

    // A/B: the daemon's exclusive group, then the naive proxy over the same two launches.
    let from = daemon.events.length;
    await post(gatewayPort, '/models/load', { model: 'a' });
    await daemon.waitTransition('a', 'ready', 30_000, from);
    // b's launch is a's on b's port and alias (the config differs in nothing else).
    const launches = { a: launchOf(daemon, 'a') };
    launches.b = { ...launches.a, args: launches.a.args.map((a, i, all) => (all[i - 1] === '--port' ? String(bPort) : all[i - 1] === '--alias' ? 'b' : a)) };
    from = daemon.events.length;
    const ours = await alternate(gatewayPort, ['a', 'b'], abMs);
    const ourSwaps = daemon.events.slice(from).filter((e) => e.event === 'transition' && e.to === 'unloading' && ['a', 'b'].includes(e.instance)).length;
    await unload('a').catch(() => undefined);
    await unload('b').catch(() => undefined);
    naive = startNaiveProxy(launches);
    await new Promise((resolve) => naive.server.listen(naivePort, '127.0.0.1', resolve));
    const theirs = await alternate(naivePort, ['a', 'b'], abMs);
    const naiveSwaps = naive.swaps;
    await naive.close();
    naive = null;
    const abRatio = ours.rps / theirs.rps;

    // Loaded: an on-demand instance that is loaded costs what any instance does at the gateway.
    from = daemon.events.length;
    await post(gatewayPort, '/models/load', { model: 'cold' });
    await daemon.waitTransition('cold', 'ready', 30_000, from);
    const direct = makeClient(coldPort);
    const gateway = makeClient(gatewayPort);
    const d = [];
    const g = [];
    try {
      for (let i = 0; i < 50 + pairs; i++) {
        const order = i % 2 === 0 ? [[direct, d], [gateway, g]] : [[gateway, g], [direct, d]];
        for (const [client, into] of order) {
          const r = await client.post('/v1/chat/completions', chat('cold', 1));
          if (r.status !== 200) throw new Error(`loaded request: ${r.status} ${r.text.slice(0, 200)}`);
          if (i >= 50) into.push(r.totalMs);
        }
      }
    } finally {
      direct.close();
      gateway.close();
    }
    const loadedP50 = percentile(g, 50) - percentile(d, 50);
    const loadAfter = loadAverage();

    const row = (label, v) => [label, fmt(median(v), 1), fmt(Math.min(...v), 1), fmt(Math.max(...v), 1)];
    const md = [
      `### on-demand\n\nreal llama-server (${llama.path}), tiny model on the CPU, 1 thread; load average ${fmt(loadBefore, 2)} before, ${fmt(loadAfter, 2)} after`,
      `**Cold start** (${rounds} rounds each, interleaved): request -> first token\n\n${table(['path (ms)', 'median', 'min', 'max'], [row('unloaded on-demand instance, through the gateway', cold.supervised), row('same launch spawned by hand, /health polled every 5 ms, then the request', cold.byHand)])}\n\nsupervisor overhead (median difference): ${fmt(coldOverhead, 1)} ms`,
      `**A/B exclusive group**, ${CLIENTS} clients alternating a and b for ${abMs / 1000} s each run\n\n${table(['proxy', 'requests', 'req/s', 'swaps', 'requests per swap'], [
        ['supervisor gateway (exclusive_group)', ours.answered, fmt(ours.rps, 1), ourSwaps, fmt(ours.answered / Math.max(ourSwaps, 1), 1)],
        ['naive proxy (swap per request, arrival order)', theirs.answered, fmt(theirs.rps, 1), naiveSwaps, fmt(theirs.answered / Math.max(naiveSwaps, 1), 1)],
      ])}\n\nthroughput ratio ${fmt(abRatio, 2)}x`,
      `**Loaded on-demand instance**, ${pairs} interleaved pairs, non-streamed max_tokens 1\n\n${table(['path (ms)', 'p50', 'p99'], [['direct', fmt(percentile(d, 50), 3), fmt(percentile(d, 99), 3)], ['gateway', fmt(percentile(g, 50), 3), fmt(percentile(g, 99), 3)]])}\n\nadded p50 ${fmt(loadedP50, 3)} ms`,
    ].join('\n\n');
    return {
      markdown: md,
      summary: [
        { benchmark: 'on-demand cold request -> first token, overhead', measured: `${fmt(median(cold.supervised), 1)} ms`, reference: `by hand ${fmt(median(cold.byHand), 1)} ms`, ratioOrLimit: `+${fmt(coldOverhead, 1)} ms`, target: `<= +${LIMITS.coldOverheadMs} ms`, pass: coldOverhead <= LIMITS.coldOverheadMs },
        { benchmark: 'on-demand A/B alternating, throughput', measured: `${fmt(ours.rps, 1)} req/s, ${ourSwaps} swaps`, reference: `naive ${fmt(theirs.rps, 1)} req/s, ${naiveSwaps} swaps`, ratioOrLimit: `${fmt(abRatio, 2)}x`, target: `>= ${LIMITS.abRatio}x`, pass: abRatio >= LIMITS.abRatio },
        { benchmark: 'on-demand loaded, gateway added latency p50', measured: `${fmt(loadedP50, 3)} ms`, reference: `direct p50 ${fmt(percentile(d, 50), 2)} ms`, ratioOrLimit: `limit ${LIMITS.loadedP50Ms} ms`, target: `<= ${LIMITS.loadedP50Ms} ms`, pass: loadedP50 <= LIMITS.loadedP50Ms },
      ],
      data: { loadBefore, loadAfter, cold, coldOverheadMs: coldOverhead, ab: { ours: { ...ours, swaps: ourSwaps }, naive: { ...theirs, swaps: naiveSwaps }, ratio: abRatio }, loaded: { d, g, addedP50Ms: loadedP50 } },
    };
  } finally {
    await naive?.close().catch(() => undefined);
    await daemon.stop();
    await remove();
    await sleep(0);
  }
}
