// Target 1: `supervisor status` wall time <= 2 x `node -e 0`.
//
// Method: a daemon (`node dist/cli.js run`) on a temp socket supervises two fake
// servers; once both are ready, `node dist/cli.js status` and `node -e 0` are run
// alternately (spawnSync, wall time with performance.now() around each spawn,
// after a few unmeasured warm-up runs of each). The medians are compared, so the
// Node start-up cost common to both cancels out of the ratio as far as it can.
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { CLI, fakeInstance, fakeMaster, fmt, freePorts, median, percentile, startDaemon, table } from './lib.mjs';

export const name = 'status-latency';

export async function run({ quick }) {
  const runs = 20; // the number; cheap enough for --quick too
  const warmup = quick ? 2 : 3;
  const [p1, p2] = await freePorts(2);
  const config = `${fakeMaster()}
[instance.control]
log_dir = "@DIR@"
${fakeInstance('a', p1, ['--ready-after-ms', '0'])}
${fakeInstance('b', p2, ['--ready-after-ms', '0'])}`;
  const daemon = await startDaemon(config);
  try {
    await daemon.waitTransition('a', 'ready');
    await daemon.waitTransition('b', 'ready');

    const timeIt = (args, env) => {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`);
      return { ms, stdout: r.stdout };
    };
    const nodeArgs = ['-e', '0'];
    const statusArgs = [CLI, 'status'];
    let lastStatus = '';
    for (let i = 0; i < warmup; i++) {
      timeIt(nodeArgs, process.env);
      lastStatus = timeIt(statusArgs, daemon.env).stdout;
    }
    if (!/\ba\b/.test(lastStatus) || !/\bready\b/.test(lastStatus)) throw new Error(`unexpected status output:\n${lastStatus}`);
    const node = [];
    const status = [];
    for (let i = 0; i < runs; i++) {
      // Alternate which goes first, so neither always follows the other.
      if (i % 2 === 0) {
        node.push(timeIt(nodeArgs, process.env).ms);
        status.push(timeIt(statusArgs, daemon.env).ms);
      } else {
        status.push(timeIt(statusArgs, daemon.env).ms);
        node.push(timeIt(nodeArgs, process.env).ms);
      }
    }
    const mStatus = median(status);
    const mNode = median(node);
    const ratio = mStatus / mNode;
    const row = (label, v) => [label, fmt(median(v)), fmt(Math.min(...v)), fmt(percentile(v, 90)), fmt(Math.max(...v))];
    const md = table(['command (20 runs, interleaved)', 'median ms', 'min ms', 'p90 ms', 'max ms'], [
      row('`supervisor status` (node dist/cli.js status)', status),
      row('`node -e 0` (reference)', node),
    ]);
    return {
      markdown: `### status-latency\n\n${md}\n\nratio of medians: ${fmt(ratio, 2)} (target <= 2.00)`,
      summary: [
        {
          benchmark: 'status wall time',
          measured: `${fmt(mStatus)} ms`,
          reference: `node -e 0: ${fmt(mNode)} ms`,
          ratioOrLimit: `${fmt(ratio, 2)}x`,
          target: '<= 2x',
          pass: ratio <= 2,
        },
      ],
      data: { runs, statusMs: status, nodeMs: node, medianStatusMs: mStatus, medianNodeMs: mNode, ratio },
    };
  } finally {
    await daemon.stop();
  }
}
