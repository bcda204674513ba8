// Targets (issue 5): the gateway adds <= 1 ms at p50 and <= 5 ms at p99 to a
// non-streamed request with max_tokens 1, and <= 2 ms at p50 to the time to
// the first byte of a streamed one.
//
// Method: one real llama-server instance (tiny model, 1 thread) supervised
// together with the gateway (see gateway-harness.mjs for which process holds
// them). The same Anthropic /v1/messages request goes direct to the instance
// and through the gateway (x-api-key checked, model routed by alias), one at
// a time, alternating which goes first, over keep-alive connections on both
// paths, after unmeasured warm-up requests. The prompt is the same every
// time, so the instance's prompt cache makes its own time steady. Added
// latency = percentile(gateway) - percentile(direct), per percentile.
// Streamed: the time to the first body byte (the first SSE event), same method,
// but over a new connection per request on both paths: llama-server closes its
// end after every streamed answer, so a direct client cannot reuse one.
import { fmt, median, percentile, table } from './lib.mjs';
import { countDeltas, loadAverage, makeClient, startRig } from './gateway-harness.mjs';

export const name = 'gateway-latency';

const LIMITS = { p50: 1, p99: 5, ttfbP50: 2 };
const messages = [{ role: 'user', content: 'Say hello.' }];

export async function run({ quick }) {
  const pairs = quick ? 300 : 1500;
  const warmup = 50;
  const loadBefore = loadAverage();
  const rig = await startRig({ instances: 1, parallel: 4 });
  const clients = {
    kept: { direct: makeClient(rig.ports[0]), gateway: makeClient(rig.gatewayPort) },
    fresh: { direct: makeClient(rig.ports[0], { keepAlive: false }), gateway: makeClient(rig.gatewayPort, { keepAlive: false }) },
  };
  try {
    const plain = { model: 'tiny-0', max_tokens: 1, messages };
    const streamed = { ...plain, stream: true };
    const measure = async (body, pick) => {
      const { direct, gateway } = body.stream ? clients.fresh : clients.kept;
      const d = [];
      const g = [];
      for (let i = 0; i < warmup + pairs; i++) {
        const order = i % 2 === 0 ? [[direct, d], [gateway, g]] : [[gateway, g], [direct, d]];
        for (const [client, into] of order) {
          const r = await client.post('/v1/messages', body);
          if (r.status !== 200) throw new Error(`status ${r.status}: ${r.text.slice(0, 300)}`);
          if (body.stream && countDeltas(r.text) !== 1) throw new Error(`expected 1 token, got: ${r.text.slice(0, 300)}`);
          if (i >= warmup) into.push(pick(r));
        }
      }
      return { d, g };
    };
    const nonStream = await measure(plain, (r) => r.totalMs);
    const stream = await measure(streamed, (r) => r.firstByteMs);

    const loadAfter = loadAverage();
    const added = (x, p) => percentile(x.g, p) - percentile(x.d, p);
    // The same pairs as differences: less sensitive to the instance's own jitter (shown, not judged).
    const pairedMedian = (x) => median(x.g.map((v, i) => v - x.d[i]));
    const p50 = added(nonStream, 50);
    const p99 = added(nonStream, 99);
    const ttfb50 = added(stream, 50);
    const row = (label, v) => [label, fmt(median(v), 3), fmt(percentile(v, 90), 3), fmt(percentile(v, 99), 3), fmt(Math.max(...v), 3)];
    const md = table(['path (ms)', 'p50', 'p90', 'p99', 'max'], [
      row('non-streamed, direct', nonStream.d),
      row('non-streamed, gateway', nonStream.g),
      row('streamed first byte, direct', stream.d),
      row('streamed first byte, gateway', stream.g),
    ]);
    return {
      markdown: `### gateway-latency\n\n${pairs} interleaved pairs per row (after ${warmup} warm-up pairs); ${rig.kind}; llama-server ${rig.llamaServer}; load average ${fmt(loadBefore, 2)} before, ${fmt(loadAfter, 2)} after\n\n${md}\n\nadded: non-streamed p50 ${fmt(p50, 3)} ms, p99 ${fmt(p99, 3)} ms; streamed first byte p50 ${fmt(ttfb50, 3)} ms\n\nmedian of paired differences (gateway - direct, same pair): non-streamed ${fmt(pairedMedian(nonStream), 3)} ms, streamed first byte ${fmt(pairedMedian(stream), 3)} ms`,
      summary: [
        { benchmark: 'gateway added latency, max_tokens 1, p50', measured: `${fmt(p50, 3)} ms`, reference: `direct p50 ${fmt(median(nonStream.d), 2)} ms`, ratioOrLimit: `limit ${LIMITS.p50} ms`, target: `<= ${LIMITS.p50} ms`, pass: p50 <= LIMITS.p50 },
        { benchmark: 'gateway added latency, max_tokens 1, p99', measured: `${fmt(p99, 3)} ms`, reference: `direct p99 ${fmt(percentile(nonStream.d, 99), 2)} ms`, ratioOrLimit: `limit ${LIMITS.p99} ms`, target: `<= ${LIMITS.p99} ms`, pass: p99 <= LIMITS.p99 },
        { benchmark: 'gateway added time to first byte (stream), p50', measured: `${fmt(ttfb50, 3)} ms`, reference: `direct p50 ${fmt(median(stream.d), 2)} ms`, ratioOrLimit: `limit ${LIMITS.ttfbP50} ms`, target: `<= ${LIMITS.ttfbP50} ms`, pass: ttfb50 <= LIMITS.ttfbP50 },
      ],
      data: { kind: rig.kind, loadBefore, loadAfter, pairs, warmup, nonStream, stream, addedP50Ms: p50, addedP99Ms: p99, addedTtfbP50Ms: ttfb50 },
    };
  } finally {
    for (const pair of Object.values(clients)) for (const client of Object.values(pair)) client.close();
    await rig.stop();
  }
}
