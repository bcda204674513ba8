// Target 2: with 8 running instances the daemon's RSS is <= 64 MiB and it uses
// <= 1 % of a core while idle.
//
// Method: 8 real llama-server instances (the cached CPU build) serve the tiny
// model (ctx_size = 512, threads = 1, health_interval_s default 10); without a
// cached build, 8 fake servers stand in and the table says so. Once the daemon
// has logged all 8 `-> ready` transitions (read from its stdout, so no CLI call
// touches it), it is left alone for 1 s, then:
//   RSS: VmRSS from /proc/PID/status, read at the start and the end of the idle
//        window; the larger counts. VmHWM (peak since start) is shown too.
//   CPU: utime+stime from /proc/PID/stat, delta over the window (30 s; 10 s
//        with --quick), divided by window x CLK_TCK (`getconf CLK_TCK`).
// The instances' own CPU and memory are not counted: only the daemon's.
// Reference: the RSS of a bare idle `node` process, for scale.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  CLK_TCK,
  cpuTicks,
  fakeInstance,
  fakeMaster,
  findLlamaServer,
  llamaServerToml,
  fmt,
  freePorts,
  makeTempDir,
  sleep,
  startDaemon,
  statusKiB,
  table,
  writeTinyModel,
} from './lib.mjs';

export const name = 'daemon-footprint';

const INSTANCES = 8;
const RSS_LIMIT_MIB = 64;
const CPU_LIMIT_PCT = 1;

export async function run({ quick }) {
  const windowS = quick ? 10 : 30;
  const ports = await freePorts(INSTANCES);
  const llama = findLlamaServer();
  const { dir: modelDir, remove } = makeTempDir('svb-model');
  let config;
  let kind;
  if (llama.path) {
    const model = join(modelDir, 'tiny.gguf');
    writeTinyModel(model);
    kind = `real llama-server (${llama.path}), tiny model`;
    config = llamaServerToml({ llamaServer: llama.path, model, instances: ports.map((port, i) => ({ name: `i${i}`, port, alias: `tiny-${i}` })), server: ['ctx_size = 512'] });
  } else {
    kind = `FAKE servers (${llama.reason})`;
    config = `${fakeMaster()}
[instance.control]
log_dir = "@DIR@"
${ports.map((p, i) => fakeInstance(`i${i}`, p, ['--ready-after-ms', '0'])).join('\n')}`;
  }

  const reference = await idleNodeRssKiB();
  const emptyDaemon = await idleEmptyDaemonRssKiB();
  const daemon = await startDaemon(config);
  try {
    const t0 = performance.now();
    await Promise.all(ports.map((_, i) => daemon.waitTransition(`i${i}`, 'ready', 120_000)));
    const allReadyMs = performance.now() - t0;
    await sleep(1000);
    const pid = daemon.pid;
    const rssAfterReady = statusKiB(pid, 'VmRSS');
    // Other work on a shared machine may kill an instance (it happened: an outside SIGKILL);
    // a window with any transition in it is discarded and measured again, up to 3 times.
    const discarded = [];
    let w;
    for (let attempt = 1; attempt <= 3; attempt++) {
      await waitAllReady(daemon, INSTANCES);
      if (attempt > 1) await sleep(1000);
      w = await measureWindow(daemon, windowS);
      if (w.transitions.length === 0) break;
      discarded.push(w.transitions.map((e) => `${e.instance} ${e.from} -> ${e.to} at ${e.time} (${e.reason.slice(0, 60)})`).join('; '));
    }
    const { rssSamples, elapsedS, ticks, hwm } = w;
    const stillReady = w.transitions.length === 0;
    const rssStart = rssSamples[0];
    const rssEnd = rssSamples.at(-1);
    const rssMiB = Math.max(rssAfterReady, ...rssSamples) / 1024;
    const cpuS = ticks / CLK_TCK;
    const cpuPct = (100 * cpuS) / elapsedS;
    const md = table(['metric', 'value'], [
      ['instances', `${INSTANCES} x ${kind}`],
      ['all ready after', `${fmt(allReadyMs / 1000, 1)} s`],
      ['daemon VmRSS 1 s after all ready', `${fmt(rssAfterReady / 1024)} MiB`],
      ['daemon VmRSS at window start / min / max (1 s samples)', `${fmt(rssStart / 1024)} / ${fmt(Math.min(...rssSamples) / 1024)} / ${fmt(Math.max(...rssSamples) / 1024)} MiB`],
      ['daemon VmRSS at window end', `${fmt(rssEnd / 1024)} MiB`],
      ['daemon VmHWM (peak)', `${fmt(hwm / 1024)} MiB`],
      ['reference: idle bare `node` VmRSS', `${fmt(reference / 1024)} MiB`],
      ['reference: idle daemon with 0 instances VmRSS', `${fmt(emptyDaemon / 1024)} MiB`],
      ['idle window', `${fmt(elapsedS, 1)} s (CLK_TCK ${CLK_TCK})`],
      ['daemon CPU in window (utime+stime)', `${fmt(cpuS * 1000, 0)} ms = ${fmt(cpuPct, 2)} % of a core`],
      ['instances stayed ready in the measured window', stillReady ? 'yes' : 'NO (3 windows disturbed)'],
      ['discarded windows (outside interference)', discarded.length === 0 ? 'none' : discarded.map((d, i) => `${i + 1}: ${d}`).join(' / ')],
    ]);
    return {
      markdown: `### daemon-footprint\n\n${md}`,
      summary: [
        {
          benchmark: `daemon RSS, ${INSTANCES} ${llama.path ? 'llama-server' : 'FAKE'} instances`,
          measured: `${fmt(rssMiB)} MiB`,
          reference: `bare node ${fmt(reference / 1024)}, 0-instance daemon ${fmt(emptyDaemon / 1024)} MiB`,
          ratioOrLimit: `limit ${RSS_LIMIT_MIB} MiB`,
          target: `<= ${RSS_LIMIT_MIB} MiB`,
          pass: rssMiB <= RSS_LIMIT_MIB,
        },
        {
          benchmark: `daemon idle CPU over ${windowS} s`,
          measured: `${fmt(cpuPct, 2)} %`,
          reference: '-',
          ratioOrLimit: `limit ${CPU_LIMIT_PCT} %`,
          target: `<= ${CPU_LIMIT_PCT} % of a core`,
          pass: cpuPct <= CPU_LIMIT_PCT && stillReady,
        },
      ],
      data: { kind, llamaServer: llama.path, windowS: elapsedS, rssAfterReadyKiB: rssAfterReady, rssStartKiB: rssStart, rssEndKiB: rssEnd, rssSamplesKiB: rssSamples, discarded, emptyDaemonRssKiB: emptyDaemon, hwmKiB: hwm, referenceRssKiB: reference, cpuTicks: ticks, clkTck: CLK_TCK, cpuPct, allReadyMs, stillReady },
    };
  } finally {
    await daemon.stop();
    await remove();
  }
}

/** Resolves once the last transition of every instance i0..i(n-1) is into ready. */
async function waitAllReady(daemon, n) {
  await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const last = daemon.events.findLastIndex((e) => e.event === 'transition' && e.instance === `i${i}`);
      if (last >= 0 && daemon.events[last].to === 'ready') return null;
      return daemon.waitTransition(`i${i}`, 'ready', 120_000, last + 1);
    }),
  );
}

/** The daemon left alone for windowS: CPU ticks, RSS sampled once a second (reading /proc costs it nothing). */
async function measureWindow(daemon, windowS) {
  const pid = daemon.pid;
  const from = daemon.events.length;
  const rssSamples = [statusKiB(pid, 'VmRSS')];
  const ticksStart = cpuTicks(pid);
  const w0 = performance.now();
  while (performance.now() - w0 < windowS * 1000 - 1000) {
    await sleep(1000);
    rssSamples.push(statusKiB(pid, 'VmRSS'));
  }
  await sleep(Math.max(0, windowS * 1000 - (performance.now() - w0)));
  const ticks = cpuTicks(pid) - ticksStart;
  const elapsedS = (performance.now() - w0) / 1000;
  rssSamples.push(statusKiB(pid, 'VmRSS'));
  const transitions = daemon.events.slice(from).filter((e) => e.event === 'transition');
  return { rssSamples, ticks, elapsedS, hwm: statusKiB(pid, 'VmHWM'), transitions };
}

/** VmRSS of the daemon with no instance, 1 s after it listens. */
async function idleEmptyDaemonRssKiB() {
  const daemon = await startDaemon('[master]\nenable = true\n');
  try {
    await sleep(1000);
    return statusKiB(daemon.pid, 'VmRSS');
  } finally {
    await daemon.stop();
  }
}

/** VmRSS of a bare node process that has settled for a second. */
async function idleNodeRssKiB() {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  try {
    await sleep(1000);
    return statusKiB(child.pid, 'VmRSS');
  } finally {
    child.kill('SIGKILL');
  }
}
