// Targets (issue 9, fault 4): while 100 clients send 32 MB request bodies to
// the gateway at once, the daemon's RSS peaks at <= 256 MiB and is back within
// 16 MiB of its idle RSS afterwards, and its event loop stays responsive: the
// gateway's own GET /health answers within 100 ms (p99) while the bodies
// stream, and while a 30 MB body of `[` (JSON nested 30 million deep) is
// refused.
//
// Method: the built daemon (`dist/cli.js run`) supervises one "instance" that
// is a small Node sink (written to the temp dir): it answers /health, reads
// each request body to the end without keeping it and answers how many bytes
// it got. 100 POST /v1/chat/completions of the same valid 32,000,000-byte JSON
// body (`model` first, one huge message) go through the gateway at once, each
// on its own connection; every answer must be 200 with the full byte count.
// Meanwhile VmRSS of the daemon is read from /proc every 20 ms, and GET /health
// goes to the gateway every 50 ms (one at a time, timed, from a process of its
// own, so that the client's own event loop pushing 3.2 GB is not what is
// measured). Reference, same run:
// the same 100 bodies straight to the sink (the time a gateway cannot beat),
// and /health of the idle daemon (1 s, every 20 ms). Afterwards VmRSS is polled until it is back
// within 16 MiB of idle (up to 30 s). Then one 30 MB body of `[`: its answer
// time and status, with /health timed alongside.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fmt, freePorts, makeTempDir, median, percentile, sleep, startDaemon, statusKiB, table, waitFor } from './lib.mjs';

export const name = 'gateway-bodies';

const CLIENTS = 100;
const BODY_BYTES = 32_000_000;
const LIMITS = { peakMiB: 256, settleMiB: 16, healthP99Ms: 100 };

// The upstream: answers /health, drains every body, says how much it got.
const SINK = `import http from 'node:http';
const port = Number(process.argv[process.argv.indexOf('--port') + 1]);
const send = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};
http.createServer((req, res) => {
  if (req.url === '/health') return send(res, 200, { status: 'ok' });
  let received = 0;
  req.on('data', (chunk) => (received += chunk.length));
  req.on('end', () => send(res, 200, { received }));
}).listen(port, '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;

// The prober: GET /health every EVERY ms, one at a time; prints "ready" after a first (unmeasured) one, and on
// "stop" from stdin the latencies (ms) as JSON.
const PROBER = `import http from 'node:http';
const [port, every] = process.argv.slice(2).map(Number);
const ms = [];
let running = true;
process.stdin.on('data', () => (running = false));
const once = () => new Promise((resolve, reject) => {
  const t0 = performance.now();
  const req = http.request({ host: '127.0.0.1', port, method: 'GET', path: '/health', agent: false }, (res) => {
    res.resume();
    res.on('end', () => resolve(performance.now() - t0));
  });
  req.on('error', reject);
  req.end();
});
await once();
process.stdout.write('ready\\n');
while (running) {
  ms.push(await once());
  await new Promise((r) => setTimeout(r, every));
}
process.stdout.write(JSON.stringify(ms));
process.exit(0);
`;

/** One POST of `body` on a connection of its own: status, parsed answer and ms. */
function post(port, body) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const req = http.request(
      { host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent: false, headers: { 'content-type': 'application/json', 'content-length': body.length } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {
            // reported through `text`
          }
          resolve({ status: res.statusCode, json, text, ms: performance.now() - t0 });
        });
      },
    );
    // A gateway that refuses early may close before the whole body is sent.
    req.on('error', (err) => resolve({ status: 0, json: null, text: err.message, ms: performance.now() - t0 }));
    req.end(body);
  });
}

/** Times GET /health every `everyMs` from a process of its own until stop() is called; stop() resolves with the latencies. */
async function sampleHealth(prober, port, everyMs = 50) {
  const child = spawn(process.execPath, [prober, String(port), String(everyMs)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('\n')) resolve();
    });
    exited.then(() => reject(new Error(`the /health prober exited early: ${out}`)));
  });
  return async () => {
    child.stdin.end('stop\n');
    await exited;
    return JSON.parse(out.slice(out.indexOf('\n') + 1));
  };
}

/** Reads VmRSS (KiB) of `pid` every `everyMs` until stop(); stop() returns the samples. */
function sampleRss(pid, everyMs = 20) {
  const kib = [];
  const timer = setInterval(() => kib.push(statusKiB(pid, 'VmRSS')), everyMs);
  return () => {
    clearInterval(timer);
    return kib;
  };
}

export async function run() {
  const [sinkPort, gatewayPort] = await freePorts(2);
  const { dir } = makeTempDir('svb-sink');
  const sink = join(dir, 'sink.mjs');
  writeFileSync(sink, SINK);
  const prober = join(dir, 'prober.mjs');
  writeFileSync(prober, PROBER);
  const body = Buffer.alloc(BODY_BYTES, 'x');
  const head = '{"model":"sink","messages":[{"role":"user","content":"';
  body.write(head, 0);
  body.write('"}]}', BODY_BYTES - 4);
  const config = `[master]
llama_cpp_path = ${JSON.stringify(process.execPath)}
[instance.control]
log_dir = "@DIR@"
[instance.sink.server]
extra_args = [${JSON.stringify(sink)}]
host = "127.0.0.1"
port = ${sinkPort}
alias = "sink"
[gateway]
host = "127.0.0.1"
port = ${gatewayPort}
`;
  const daemon = await startDaemon(config);
  try {
    await daemon.waitTransition('sink', 'ready', 60_000);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${gatewayPort}/health`).catch(() => null))?.status === 200, 10_000, 'the gateway');
    const pid = daemon.pid;

    // Reference: straight to the sink.
    const d0 = performance.now();
    const direct = await Promise.all(Array.from({ length: CLIENTS }, () => post(sinkPort, body)));
    const directS = (performance.now() - d0) / 1000;
    if (!direct.every((r) => r.status === 200 && r.json?.received === BODY_BYTES)) throw new Error(`direct: ${direct.find((r) => r.status !== 200)?.text}`);

    await sleep(2000);
    const idleKiB = statusKiB(pid, 'VmRSS');
    const stopIdleHealth = await sampleHealth(prober, gatewayPort, 20);
    await sleep(1000);
    const idleHealth = await stopIdleHealth();

    // Through the gateway.
    const stopRss = sampleRss(pid);
    const stopHealth = await sampleHealth(prober, gatewayPort);
    const g0 = performance.now();
    const results = await Promise.all(Array.from({ length: CLIENTS }, () => post(gatewayPort, body)));
    const gatewayS = (performance.now() - g0) / 1000;
    const busyHealth = await stopHealth();
    const rssKiB = stopRss();
    const hwmKiB = statusKiB(pid, 'VmHWM');
    const ok = results.filter((r) => r.status === 200 && r.json?.received === BODY_BYTES).length;
    const statuses = [...new Set(results.map((r) => r.status))].sort().join(', ');

    // Back to idle?
    const s0 = performance.now();
    let afterKiB = statusKiB(pid, 'VmRSS');
    while (afterKiB > idleKiB + LIMITS.settleMiB * 1024 && performance.now() - s0 < 30_000) {
      await sleep(250);
      afterKiB = statusKiB(pid, 'VmRSS');
    }
    const settleS = (performance.now() - s0) / 1000;

    // One body nested 30 million deep.
    const brackets = Buffer.alloc(30_000_000, '[');
    const stopDeepHealth = await sampleHealth(prober, gatewayPort, 20);
    await sleep(100);
    const deep = await post(gatewayPort, brackets);
    await sleep(100);
    const deepHealth = await stopDeepHealth();

    const peakMiB = Math.max(hwmKiB, ...rssKiB) / 1024;
    const backMiB = (afterKiB - idleKiB) / 1024;
    const p99 = percentile(busyHealth, 99);
    const deepMax = Math.max(...deepHealth);
    const lat = (v) => `${fmt(median(v), 1)} / ${fmt(percentile(v, 99), 1)} / ${fmt(Math.max(...v), 1)}`;
    const md = table(['metric', 'value'], [
      ['bodies', `${CLIENTS} concurrent x ${fmt(BODY_BYTES / 1e6, 0)} MB (valid JSON), one connection each`],
      ['answered 200 with every byte forwarded', `${ok} of ${CLIENTS} (statuses: ${statuses})`],
      ['wall time through the gateway / reference: direct to the sink', `${fmt(gatewayS, 2)} s / ${fmt(directS, 2)} s`],
      ['daemon VmRSS idle before', `${fmt(idleKiB / 1024)} MiB`],
      ['daemon VmRSS peak (VmHWM; 20 ms samples)', `${fmt(hwmKiB / 1024)} MiB (${fmt(Math.max(...rssKiB) / 1024)} MiB)`],
      ['daemon VmRSS afterwards, minus idle', `${fmt(backMiB)} MiB after ${fmt(settleS, 1)} s`],
      ['gateway GET /health ms, idle: p50 / p99 / max', lat(idleHealth)],
      [`gateway GET /health ms, during the bodies (${busyHealth.length} probes): p50 / p99 / max`, lat(busyHealth)],
      ['30 MB body of `[`: answer, time', `${deep.status} ${(deep.json?.error?.message ?? deep.text).slice(0, 80)}, ${fmt(deep.ms, 0)} ms`],
      [`gateway GET /health ms meanwhile (${deepHealth.length} probes): p50 / p99 / max`, lat(deepHealth)],
    ]);
    return {
      markdown: `### gateway-bodies\n\n${md}`,
      summary: [
        { benchmark: `daemon RSS peak, ${CLIENTS} x 32 MB gateway bodies`, measured: `${fmt(peakMiB)} MiB`, reference: `idle ${fmt(idleKiB / 1024)} MiB`, ratioOrLimit: `limit ${LIMITS.peakMiB} MiB`, target: `<= ${LIMITS.peakMiB} MiB, all 200`, pass: peakMiB <= LIMITS.peakMiB && ok === CLIENTS },
        { benchmark: 'daemon RSS after the bodies, above idle', measured: `${fmt(backMiB)} MiB`, reference: `idle ${fmt(idleKiB / 1024)} MiB`, ratioOrLimit: `limit ${LIMITS.settleMiB} MiB`, target: `<= ${LIMITS.settleMiB} MiB within 30 s`, pass: backMiB <= LIMITS.settleMiB },
        { benchmark: 'gateway /health p99 during the bodies', measured: `${fmt(p99, 1)} ms`, reference: `idle p99 ${fmt(percentile(idleHealth, 99), 1)} ms`, ratioOrLimit: `limit ${LIMITS.healthP99Ms} ms`, target: `<= ${LIMITS.healthP99Ms} ms`, pass: p99 <= LIMITS.healthP99Ms },
        { benchmark: 'gateway /health max during a 30 MB `[` body', measured: `${fmt(deepMax, 1)} ms`, reference: `answer ${deep.status} in ${fmt(deep.ms, 0)} ms`, ratioOrLimit: `limit ${LIMITS.healthP99Ms} ms`, target: `<= ${LIMITS.healthP99Ms} ms, 400`, pass: deepMax <= LIMITS.healthP99Ms && deep.status === 400 },
      ],
      data: { idleKiB, hwmKiB, rssKiB, afterKiB, settleS, gatewayS, directS, idleHealth, busyHealth, deepHealth, deep: { status: deep.status, ms: deep.ms }, ok },
    };
  } finally {
    await daemon.stop();
  }
}
