// Target (issue 19): the gateway's added latency for inference requests stays
// as it is (<= 1 ms at p50) with dashboard pages open.
//
// Method: as gateway-latency.mjs (one real llama-server, tiny model; the same
// non-streamed Anthropic request with max_tokens 1 direct and through the
// gateway, interleaved, keep-alive), in blocks of P pairs (400; 150 with
// --quick) alternating none open / 5 pages open, twice each. The pages
// (dashboard-harness.mjs) hold /ui/events and tail the instance's log (which
// grows with every request) with the gateway's key as Bearer. Added latency =
// p50(gateway) - p50(direct) over each condition's pairs.
import { fmt, median, percentile, table } from './lib.mjs';
import { API_KEY, loadAverage, makeClient, startRig } from './gateway-harness.mjs';
import { openPages } from './dashboard-harness.mjs';

export const name = 'dashboard-gateway';

const PAGES = 5;
const LIMIT_P50 = 1;
/** Pages open count as "unchanged" within this much of none open. */
const SAME_MS = 0.2;
const messages = [{ role: 'user', content: 'Say hello.' }];

export async function run({ quick }) {
  const pairs = quick ? 150 : 400;
  const loadBefore = loadAverage();
  const rig = await startRig({ instances: 1, parallel: 4 });
  const direct = makeClient(rig.ports[0]);
  const gateway = makeClient(rig.gatewayPort);
  const body = { model: 'tiny-0', max_tokens: 1, messages };
  const results = { none: { d: [], g: [] }, pages: { d: [], g: [] } };
  let bytes = 0;
  try {
    const block = async (into, n) => {
      for (let i = 0; i < n; i++) {
        const order = i % 2 === 0 ? [[direct, into.d], [gateway, into.g]] : [[gateway, into.g], [direct, into.d]];
        for (const [client, list] of order) {
          const r = await client.post('/v1/messages', body);
          if (r.status !== 200) throw new Error(`status ${r.status}: ${r.text.slice(0, 300)}`);
          list.push(r.totalMs);
        }
      }
    };
    await block({ d: [], g: [] }, 50);
    for (const condition of ['none', 'pages', 'none', 'pages']) {
      const open = condition === 'pages' ? openPages(rig.gatewayPort, PAGES, { logOf: 'gwbench0', headers: { authorization: `Bearer ${API_KEY}` } }) : null;
      if (open) await new Promise((r) => setTimeout(r, 500));
      await block(results[condition], pairs);
      if (open) {
        bytes += open.bytes();
        open.close();
      }
    }
    const loadAfter = loadAverage();
    const added = (x, p) => percentile(x.g, p) - percentile(x.d, p);
    const rows = Object.entries(results).map(([k, x]) => [k === 'none' ? 'no page open' : `${PAGES} pages open`, x.d.length, fmt(median(x.d), 3), fmt(median(x.g), 3), fmt(added(x, 50), 3), fmt(added(x, 99), 3)]);
    const md = table(['condition', 'pairs', 'direct p50 (ms)', 'gateway p50 (ms)', 'added p50 (ms)', 'added p99 (ms)'], rows);
    const none50 = added(results.none, 50);
    const pages50 = added(results.pages, 50);
    return {
      markdown: `### dashboard-gateway\n\n${rig.kind}; blocks of ${pairs} pairs alternating none / ${PAGES} pages (events + log tail, ${fmt(bytes / 1024, 0)} KiB sent to them); load average ${fmt(loadBefore, 2)} before, ${fmt(loadAfter, 2)} after\n\n${md}`,
      summary: [
        // "Unchanged": within the limit, or (on a machine so loaded that the gateway misses it with no page open) no worse than without pages.
        {
          benchmark: `gateway added latency p50 with ${PAGES} dashboard pages open`,
          measured: `${fmt(pages50, 3)} ms`,
          reference: `none open ${fmt(none50, 3)} ms`,
          ratioOrLimit: `limit ${LIMIT_P50} ms, or <= none + ${SAME_MS} ms`,
          target: `<= ${LIMIT_P50} ms or unchanged`,
          pass: pages50 <= LIMIT_P50 || pages50 - none50 <= SAME_MS,
        },
      ],
      data: { results, none50, pages50, loadBefore, loadAfter },
    };
  } finally {
    direct.close();
    gateway.close();
    await rig.stop();
  }
}
