// Targets (issue 5): with 64 concurrent streams, total tokens per second
// through the gateway >= 0.95 x direct; the RSS of the process that holds the
// gateway grows by <= 32 MiB under that load over its idle value.
//
// Method: one real llama-server instance (tiny model, --parallel 64,
// --ignore-eos so every stream is exactly max_tokens long) supervised together
// with the gateway (see gateway-harness.mjs for which process holds them).
// A round = 64 streamed Anthropic /v1/messages requests started at once; its
// throughput = text deltas received (one per token) / wall time from the first
// request to the last byte. Rounds alternate direct, gateway, direct, ...
// (after one unmeasured round of each); the medians are compared. New
// connections per request on both paths (llama-server closes its end after
// each stream). RSS: VmRSS of that process 1 s after all instances are ready
// and idle, then sampled every 100 ms during the gateway rounds; the largest
// sample minus the idle value is the growth.
//
// Where it is judged: inference must not share the host CPUs with the client
// and the gateway (on a 2-core box it does, and any extra hop trails direct;
// the table then says so). bench/gpu-gateway.sh runs it with the model on a GPU.
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fmt, median, sleep, statusKiB, table } from './lib.mjs';
import { countDeltas, loadAverage, makeClient, startRig } from './gateway-harness.mjs';

export const name = 'gateway-throughput';

const STREAMS = 64;
const RATIO_LIMIT = 0.95;
const RSS_LIMIT_MIB = 32;

export async function run({ quick }) {
  const rounds = quick ? 5 : 9;
  const maxTokens = quick ? 64 : 128;
  const loadBefore = loadAverage();
  const rig = await startRig({ instances: 1, parallel: STREAMS, ctxPerSlot: 256 });
  const direct = makeClient(rig.ports[0], { keepAlive: false });
  const gateway = makeClient(rig.gatewayPort, { keepAlive: false });
  try {
    await sleep(1000);
    const idleKiB = statusKiB(rig.pid, 'VmRSS');
    const body = { model: 'tiny-0', max_tokens: maxTokens, stream: true, messages: [{ role: 'user', content: 'Say hello.' }] };
    const round = async (client) => {
      const t0 = performance.now();
      const results = await Promise.all(Array.from({ length: STREAMS }, () => client.post('/v1/messages', body)));
      const seconds = (performance.now() - t0) / 1000;
      for (const r of results) if (r.status !== 200) throw new Error(`status ${r.status}: ${r.text.slice(0, 300)}`);
      const tokens = results.reduce((sum, r) => sum + countDeltas(r.text), 0);
      if (tokens !== STREAMS * maxTokens) throw new Error(`expected ${STREAMS * maxTokens} tokens, got ${tokens}`);
      return tokens / seconds;
    };
    await round(direct);
    await round(gateway);
    const rssSamples = [idleKiB];
    let sampling = false;
    const sampler = setInterval(() => sampling && rssSamples.push(statusKiB(rig.pid, 'VmRSS')), 100);
    const d = [];
    const g = [];
    try {
      for (let i = 0; i < rounds; i++) {
        d.push(await round(direct));
        sampling = true;
        g.push(await round(gateway));
        sampling = false;
      }
    } finally {
      clearInterval(sampler);
    }
    const loadAfter = loadAverage();
    const ratio = median(g) / median(d);
    const growthMiB = (Math.max(...rssSamples) - idleKiB) / 1024;
    // llama-server (compute thread + HTTP threads), the client and the gateway each keep about a core busy.
    const shared = rig.inferenceOnCpu && cpus().length < 4
      ? `\n\nnote: inference runs on the ${cpus().length} CPUs that the client and the gateway also use, so every CPU cycle the gateway spends is taken from llama-server; any extra process hop trails direct here. Production offloads inference to GPUs (bench/gpu-gateway.sh measures that).`
      : '';
    const md = table(['metric', 'direct', 'gateway'], [
      [`tokens/s, ${STREAMS} streams x ${maxTokens} tokens, median of ${rounds} rounds`, fmt(median(d), 0), fmt(median(g), 0)],
      ['tokens/s, min / max', `${fmt(Math.min(...d), 0)} / ${fmt(Math.max(...d), 0)}`, `${fmt(Math.min(...g), 0)} / ${fmt(Math.max(...g), 0)}`],
      ['holder VmRSS idle / max under gateway load', '-', `${fmt(idleKiB / 1024)} / ${fmt(Math.max(...rssSamples) / 1024)} MiB (${rssSamples.length} samples)`],
      ['holder VmHWM after the run', '-', `${fmt(statusKiB(rig.pid, 'VmHWM') / 1024)} MiB`],
    ]);
    return {
      markdown: `### gateway-throughput\n\n${rig.kind}; llama-server ${rig.llamaServer}; load average ${fmt(loadBefore, 2)} before, ${fmt(loadAfter, 2)} after\n\n${md}\n\nratio of medians ${fmt(ratio, 3)} (target >= ${RATIO_LIMIT}); RSS growth ${fmt(growthMiB)} MiB (target <= ${RSS_LIMIT_MIB})${shared}`,
      summary: [
        { benchmark: `gateway tokens/s, ${STREAMS} concurrent streams`, measured: fmt(median(g), 0), reference: `direct ${fmt(median(d), 0)}`, ratioOrLimit: `${fmt(ratio, 3)}x`, target: `>= ${RATIO_LIMIT}x`, pass: ratio >= RATIO_LIMIT },
        { benchmark: `gateway RSS growth under ${STREAMS} streams`, measured: `${fmt(growthMiB)} MiB`, reference: `idle ${fmt(idleKiB / 1024)} MiB`, ratioOrLimit: `limit ${RSS_LIMIT_MIB} MiB`, target: `<= ${RSS_LIMIT_MIB} MiB`, pass: growthMiB <= RSS_LIMIT_MIB },
      ],
      data: { kind: rig.kind, loadBefore, loadAfter, rounds, maxTokens, streams: STREAMS, directTps: d, gatewayTps: g, ratio, idleKiB, rssSamplesKiB: rssSamples },
    };
  } finally {
    direct.close();
    gateway.close();
    await rig.stop();
  }
}
