// Target 3a: `kill -9` of an instance -> its new process is spawned within the
// configured backoff + 20 ms (median).
// Target 3b: the health endpoint answering 200 -> the instance is `ready`
// within 250 ms (median).
//
// 3a method: one fake-server instance with backoff_initial_ms = backoff_max_ms
// = 200 (so every restart waits exactly 200 ms however many crashes came
// before) and a large max_restarts. For each sample, once it is ready and has
// settled for 300 ms: note the pids in /proc, take performance.now(), SIGKILL
// the child, then poll /proc every 1 ms (synchronously) for a new pid whose
// parent is the daemon. The time it first appears is "spawned". The pid is
// checked against the daemon's `backoff -> starting` event. As a cross-check
// and breakdown, the daemon's own event times (ISO ms in its pino lines, same
// wall clock) are shown: kill -> `-> backoff` (exit noticed) and kill ->
// `-> starting` (logged right after spawn).
//
// 3b method: K fake-server instances (enabled = false) with --ready-after-ms
// N_i spread over the daemon's 200 ms starting-probe period, so the flip lands
// at a different phase of the probe cycle each time. Each is started alone
// (`supervisor start`) while this process polls its /health itself, one request
// at a time every ~5 ms. The flip to 200 happened after the last non-200 poll
// was sent and before the first 200 poll came back. Latency = the daemon's
// `-> ready` event time minus the send time of the last non-200 poll: an upper
// bound (it over-estimates by at most one poll interval plus a round trip).
// The lower bound (ready minus the first 200's receive time) and the cruder
// `ready - (starting + N)` (over-estimates by the fake server's node start-up)
// are shown too.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  fakeInstance,
  fakeMaster,
  fmt,
  freePorts,
  listPids,
  median,
  readStat,
  sleep,
  sleepSync,
  startDaemon,
  table,
} from './lib.mjs';

export const name = 'restart-latency';

const BACKOFF_MS = 200;
const SPAWN_SLACK_MS = 20;
const READY_LIMIT_MS = 250;
const PROBE_PERIOD_MS = 200; // STARTING_PROBE_INTERVAL_MS in src/supervise/instance.ts
const POLL_MS = 5;

export async function run({ quick }) {
  const kills = quick ? 5 : 10;
  const readies = quick ? 5 : 10;
  const ports = await freePorts(1 + readies);
  const readyAfter = Array.from({ length: readies }, (_, i) => 500 + Math.round((i * (PROBE_PERIOD_MS + 10)) / readies));
  const config = `${fakeMaster()}
[instance.control]
log_dir = "@DIR@"
backoff_initial_ms = ${BACKOFF_MS}
backoff_max_ms = ${BACKOFF_MS}
max_restarts = 1000
stop_timeout_s = 2
${fakeInstance('crash', ports[0], ['--ready-after-ms', '0'])}
${readyAfter.map((n, i) => fakeInstance(`ready${i}`, ports[1 + i], ['--ready-after-ms', n], 'enabled = false')).join('\n')}`;
  const daemon = await startDaemon(config);
  try {
    // ---- 3a: kill -9 -> new process ----
    const killRows = [];
    let from = 0;
    let starting = await daemon.waitTransition('crash', 'starting', 20_000, from);
    for (let i = 0; i < kills; i++) {
      await daemon.waitTransition('crash', 'ready', 20_000, daemon.events.indexOf(starting));
      await sleep(300);
      const victim = starting.pid;
      from = daemon.events.length;
      const baseline = new Set(listPids());
      const wall0 = Date.now();
      const t0 = performance.now();
      process.kill(victim, 'SIGKILL');
      let newPid = null;
      let spawnMs = NaN;
      while (newPid === null) {
        for (const pid of listPids()) {
          if (baseline.has(pid)) continue;
          const stat = readStat(pid);
          if (stat && Number(stat[1]) === daemon.pid) {
            spawnMs = performance.now() - t0;
            newPid = pid;
            break;
          }
          baseline.add(pid); // someone else's process; skip it from now on
        }
        if (newPid !== null) break;
        if (performance.now() - t0 > 10_000) throw new Error('no new process 10 s after kill -9');
        sleepSync(1);
      }
      const backoff = await daemon.waitTransition('crash', 'backoff', 10_000, from);
      starting = await daemon.waitTransition('crash', 'starting', 10_000, from);
      killRows.push({
        spawnMs,
        backoffLogMs: Date.parse(backoff.time) - wall0,
        startingLogMs: Date.parse(starting.time) - wall0,
        backoffToStartingMs: Date.parse(starting.time) - Date.parse(backoff.time),
        pidMatches: starting.pid === newPid,
      });
    }

    // ---- 3b: health 200 -> ready ----
    const readyRows = [];
    for (let i = 0; i < readies; i++) {
      const name = `ready${i}`;
      const at = daemon.events.length;
      const poll = pollHealth(ports[1 + i]);
      const started = await daemon.cliAsync('start', name);
      if (started.code !== 0) throw new Error(`supervisor start ${name} failed: ${started.stderr}`);
      const startEv = await daemon.waitTransition(name, 'starting', 20_000, at);
      const readyEv = await daemon.waitTransition(name, 'ready', 20_000, at);
      const samples = await poll.untilOk();
      const firstOk = samples.findIndex((s) => s.ok);
      const lastBad = samples[firstOk - 1];
      const readyAt = Date.parse(readyEv.time);
      readyRows.push({
        n: readyAfter[i],
        upperMs: lastBad ? readyAt - lastBad.sentAt : NaN,
        lowerMs: readyAt - samples[firstOk].recvAt,
        constructionMs: readyAt - (Date.parse(startEv.time) + readyAfter[i]),
        polls: samples.length,
      });
      const stopped = await daemon.cliAsync('stop', name);
      if (stopped.code !== 0) throw new Error(`supervisor stop ${name} failed: ${stopped.stderr}`);
    }

    const spawnMedian = median(killRows.map((r) => r.spawnMs));
    const readyMedian = median(readyRows.map((r) => r.upperMs));
    const allPidsMatch = killRows.every((r) => r.pidMatches);
    const killTable = table(
      ['kill #', 'kill -> new pid in /proc (ms)', 'kill -> `backoff` event (ms)', '`backoff` -> `starting` event (ms)', 'kill -> `starting` event (ms)', 'pid = event pid'],
      [
        ...killRows.map((r, i) => [i + 1, fmt(r.spawnMs), r.backoffLogMs, r.backoffToStartingMs, r.startingLogMs, r.pidMatches ? 'yes' : 'NO']),
        [
          '**median**',
          `**${fmt(spawnMedian)}**`,
          median(killRows.map((r) => r.backoffLogMs)),
          median(killRows.map((r) => r.backoffToStartingMs)),
          median(killRows.map((r) => r.startingLogMs)),
          '',
        ],
      ],
    );
    const readyTable = table(
      ['start #', 'ready-after-ms', 'ready - last non-200 poll sent (ms, upper bound)', 'ready - first 200 received (ms, lower bound)', 'ready - (starting + N) (ms)', 'polls'],
      [
        ...readyRows.map((r, i) => [i + 1, r.n, r.upperMs, r.lowerMs, r.constructionMs, r.polls]),
        ['**median**', '', `**${fmt(readyMedian, 0)}**`, median(readyRows.map((r) => r.lowerMs)), median(readyRows.map((r) => r.constructionMs)), ''],
      ],
    );
    return {
      markdown: `### restart-latency\n\nkill -9 -> new process (backoff_initial_ms = backoff_max_ms = ${BACKOFF_MS}; target median <= ${BACKOFF_MS + SPAWN_SLACK_MS} ms):\n\n${killTable}\n\nhealth 200 -> \`ready\` (starting probes every ${PROBE_PERIOD_MS} ms; own poll every ~${POLL_MS} ms; target median <= ${READY_LIMIT_MS} ms):\n\n${readyTable}`,
      summary: [
        {
          benchmark: 'kill -9 -> new process',
          measured: `${fmt(spawnMedian)} ms`,
          reference: `backoff ${BACKOFF_MS} ms`,
          ratioOrLimit: `+${fmt(spawnMedian - BACKOFF_MS)} ms over backoff`,
          target: `<= ${BACKOFF_MS} + ${SPAWN_SLACK_MS} ms`,
          pass: spawnMedian <= BACKOFF_MS + SPAWN_SLACK_MS && allPidsMatch,
        },
        {
          benchmark: 'health 200 -> ready',
          measured: `${fmt(readyMedian, 0)} ms`,
          reference: `probe period ${PROBE_PERIOD_MS} ms`,
          ratioOrLimit: `limit ${READY_LIMIT_MS} ms`,
          target: `<= ${READY_LIMIT_MS} ms`,
          pass: readyMedian <= READY_LIMIT_MS,
        },
      ],
      data: { backoffMs: BACKOFF_MS, kills: killRows, readies: readyRows, spawnMedianMs: spawnMedian, readyMedianMs: readyMedian },
    };
  } finally {
    await daemon.stop();
  }
}

/** Polls http://127.0.0.1:PORT/health one request at a time, every POLL_MS, until it answers 200. */
function pollHealth(port) {
  const samples = [];
  const once = () =>
    new Promise((resolve) => {
      const sentAt = Date.now();
      const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: 2000 }, (res) => {
        res.resume();
        res.on('end', () => resolve({ sentAt, recvAt: Date.now(), ok: res.statusCode === 200 }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve({ sentAt, recvAt: Date.now(), ok: false }));
    });
  const done = (async () => {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const next = Date.now() + POLL_MS;
      const s = await once();
      samples.push(s);
      if (s.ok) return samples;
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
    }
    throw new Error(`port ${port} never answered 200`);
  })();
  return { untilOk: () => done };
}
