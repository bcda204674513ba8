// Target (issue 9): `supervisor status --json` while a client floods the
// control socket stays within 2 x its idle latency, and the daemon's RSS comes
// back near its idle value once the flood stops.
//
// Method: a daemon (`dist/cli.js run`) supervises two fake servers. Once both
// are ready, `node dist/cli.js status --json` is timed (spawnSync, wall time)
// with nothing else on the socket (the reference), then again while a flooder
// runs, in the same run. The flooder is a separate process (this file with
// --flooder), so its own work does not sit in the measuring event loop; it
// writes empty lines (the cheapest bad frame: one error reply each) as fast
// as the socket takes them, and reconnects at once whenever the daemon closes
// it. Three floods:
//   1 client that never reads (the daemon's replies can only pile up),
//   1 client that reads and drops the replies (the daemon can only burn CPU),
//   100 clients that never read.
// Besides the CLI's wall time, the same request is timed over a raw socket from
// this process (connect, status, reply), the daemon's share without Node's
// start-up. RSS: VmRSS of the daemon (/proc/PID/status) before, the highest
// sample during the flood, after (once the flooder is gone and the daemon's
// open fds are back to their idle count), and how long it then takes to come
// back near idle (rssAfterLimitKiB): V8 and malloc give back what a burst took
// only some seconds after it (measured: V8's heapUsed stays flat throughout).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CLI, fakeInstance, fakeMaster, fmt, freePorts, median, onCleanup, percentile, sleep, startDaemon, statusKiB, table, waitFor } from './lib.mjs';

export const name = 'status-under-flood';

/** The flood's unit: 64 KiB of "\n", i.e. 65536 empty (invalid) frames per write. */
const FLOOD_CHUNK = Buffer.alloc(64 * 1024, 0x0a);
/** What `status` lists: two fake servers, as in status-latency. */
const INSTANCES = ['a', 'b'];
const LATENCY_LIMIT_RATIO = 2;
/**
 * "Near idle": what a flood may leave behind in RSS once it is over. Measured (/proc/PID/smaps): ~4 MiB of code
 * pages touched for the first time, and malloc's heap keeping what the clients' 64 KiB read buffers took at once
 * (each connection the daemon hangs up on holds one or two while it lingers). Beyond that, it is a leak.
 */
const RSS_AFTER_BASE_MIB = 16;
const READ_BUFFERS_PER_CLIENT_KIB = 2 * 64;
const rssAfterLimitKiB = (clients) => RSS_AFTER_BASE_MIB * 1024 + clients * READ_BUFFERS_PER_CLIENT_KIB;
/** How long RSS may take to come back near idle (V8's memory reducer, above); polled this often. */
const RSS_SETTLE_TIMEOUT_MS = 30_000;
const RSS_POLL_MS = 250;
const FLOODS = [
  { label: '1 client, never reads', clients: 1, reads: false },
  { label: '1 client, reads and drops the replies', clients: 1, reads: true },
  { label: '100 clients, never read', clients: 100, reads: false },
];

export async function run({ quick }) {
  const runs = quick ? 10 : 20;
  const warmup = 2;
  // Each flood lasts at least this long, so it spans several of the daemon's hang-ups and the flooder's reconnects.
  const minFloodMs = quick ? 4000 : 10_000;
  const ports = await freePorts(INSTANCES.length);
  const instances = INSTANCES.map((name, i) => fakeInstance(name, ports[i], ['--ready-after-ms', '0']));
  const daemon = await startDaemon(`${fakeMaster()}\n[instance.control]\nlog_dir = "@DIR@"\n${instances.join('\n')}`);
  try {
    for (const name of INSTANCES) await daemon.waitTransition(name, 'ready');
    const idleFds = countFds(daemon.pid);
    const idleRssKiB = statusKiB(daemon.pid, 'VmRSS');
    const phases = [];
    for (const flood of FLOODS) {
      // The reference right before each flood, so a change in the machine's load between floods does not count.
      const idle = await measureStatus({ daemon, runs, warmup, minMs: 0 });
      const flooder = await startFlooder({ socket: daemon.socket, ...flood });
      const during = await measureStatus({ daemon, runs, warmup, minMs: minFloodMs });
      const stats = await flooder.stop();
      await waitFor(() => countFds(daemon.pid) <= idleFds, 20_000, 'the flood connections to close in the daemon');
      const afterRssKiB = statusKiB(daemon.pid, 'VmRSS');
      const settled = await waitForRss({ pid: daemon.pid, limitKiB: idleRssKiB + rssAfterLimitKiB(flood.clients) });
      phases.push({ ...flood, idle, during, stats, afterRssKiB, settled });
    }
    return report({ runs, idleRssKiB, phases });
  } finally {
    await daemon.stop();
  }
}

// Times `status --json` through the CLI and over a raw socket after `warmup` runs, at least `runs` times and for
// at least minMs, sampling RSS. A run that fails (the CLI gives up after 30 s without a reply) counts with the
// time it took, and is counted.
async function measureStatus({ daemon, runs, warmup, minMs }) {
  const cli = [];
  const socket = [];
  let failures = 0;
  let maxRssKiB = 0;
  const t0 = performance.now();
  for (let i = 0; i < warmup + runs || performance.now() - t0 < minMs; i++) {
    const started = performance.now();
    const r = spawnSync(process.execPath, [CLI, 'status', '--json'], { env: daemon.env, encoding: 'utf8', timeout: 120_000 });
    const ms = performance.now() - started;
    const ok = r.status === 0 && JSON.parse(r.stdout).length === INSTANCES.length;
    const raw = await timeRawStatus(daemon.socket);
    maxRssKiB = Math.max(maxRssKiB, statusKiB(daemon.pid, 'VmRSS'));
    if (i < warmup) continue;
    if (!ok || raw.failed) failures++;
    cli.push(ms);
    socket.push(raw.ms);
  }
  return { cli, socket, failures, maxRssKiB };
}

/** How long the raw request may take before it counts as failed (the CLI's own limit). */
const RAW_TIMEOUT_MS = 30_000;

// One `status` request on a fresh connection, as the CLI makes it: connect to reply, in ms.
function timeRawStatus(path) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const s = connect(path);
    let text = '';
    const finish = (failed) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ ms: performance.now() - t0, failed });
    };
    const timer = setTimeout(() => finish(true), RAW_TIMEOUT_MS);
    s.setEncoding('utf8');
    s.once('connect', () => s.write('{"v":1,"id":1,"cmd":"status","args":{}}\n'));
    s.on('data', (chunk) => {
      text += chunk;
      if (text.includes('\n')) finish(!text.startsWith('{"v":1,"id":1,"ok":true'));
    });
    s.once('error', () => finish(true));
  });
}

// Polls VmRSS until it is at most limitKiB: { kib, seconds, ok }, ok false when it is still above after the timeout.
async function waitForRss({ pid, limitKiB }) {
  const t0 = performance.now();
  for (;;) {
    const kib = statusKiB(pid, 'VmRSS');
    const ms = performance.now() - t0;
    if (kib <= limitKiB || ms >= RSS_SETTLE_TIMEOUT_MS) return { kib, seconds: ms / 1000, ok: kib <= limitKiB };
    await sleep(RSS_POLL_MS);
  }
}

function countFds(pid) {
  return readdirSync(`/proc/${pid}/fd`).length;
}

// Starts the flooder process and waits until every client has connected and written once.
async function startFlooder({ socket, clients, reads }) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--flooder', socket, String(clients), reads ? 'reads' : 'never'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (text) => (out += text));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const kill = onCleanup(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
  });
  await waitFor(() => out.includes('flooding\n') || child.exitCode !== null, 20_000, 'the flooder to connect');
  if (child.exitCode !== null) throw new Error(`the flooder exited (${child.exitCode}) before flooding`);
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited;
      await kill();
      const last = out.trim().split('\n').at(-1);
      return JSON.parse(last);
    },
  };
}

function report({ runs, idleRssKiB, phases }) {
  const mib = (kib) => fmt(kib / 1024);
  const rows = [];
  const summary = [];
  for (const p of phases) {
    const idleMedian = median(p.idle.cli);
    const floodMedian = median(p.during.cli);
    const ratio = floodMedian / idleMedian;
    const failed = p.during.failures > 0 ? ` (${p.during.failures} of ${p.during.cli.length} failed)` : '';
    const grownKiB = p.settled.kib - idleRssKiB;
    const settledText = `${mib(p.settled.kib)} ${p.settled.ok ? `after ${fmt(p.settled.seconds)} s` : `still, ${fmt(p.settled.seconds)} s on`}`;
    rows.push(
      [`idle, before: ${p.label}`, p.idle.cli.length, fmt(idleMedian), fmt(percentile(p.idle.cli, 90)), fmt(median(p.idle.socket), 2), fmt(Math.max(...p.idle.socket), 2), '-', '-', '-', '-', '-'],
      [
        `flood: ${p.label}${failed}`,
        p.during.cli.length,
        fmt(floodMedian),
        fmt(percentile(p.during.cli, 90)),
        fmt(median(p.during.socket), 2),
        fmt(Math.max(...p.during.socket), 2),
        fmt(ratio, 2),
        mib(Math.max(p.during.maxRssKiB, p.afterRssKiB)),
        mib(p.afterRssKiB),
        settledText,
        `${p.stats.connections} / ${fmt(p.stats.bytesWritten / 1024 / 1024)} MiB / ${fmt(p.stats.bytesRead / 1024 / 1024)} MiB`,
      ],
    );
    summary.push(
      {
        benchmark: `status --json, flood: ${p.label}`,
        measured: `${fmt(floodMedian)} ms${failed}`,
        reference: `idle just before: ${fmt(idleMedian)} ms`,
        ratioOrLimit: `${fmt(ratio, 2)}x`,
        target: `<= ${LATENCY_LIMIT_RATIO}x, none failed`,
        pass: ratio <= LATENCY_LIMIT_RATIO && p.during.failures === 0,
      },
      {
        benchmark: `daemon RSS after flood: ${p.label}`,
        measured: `${mib(p.afterRssKiB)} MiB, then ${settledText}`,
        reference: `idle: ${mib(idleRssKiB)} MiB`,
        ratioOrLimit: `${grownKiB >= 0 ? '+' : ''}${mib(grownKiB)} MiB`,
        target: `<= +${mib(rssAfterLimitKiB(p.clients))} MiB within ${RSS_SETTLE_TIMEOUT_MS / 1000} s`,
        pass: p.settled.ok,
      },
    );
  }
  const md = table(
    ['phase', 'runs', 'CLI median ms', 'CLI p90 ms', 'socket median ms', 'socket max ms', 'ratio', 'RSS peak MiB', 'RSS after MiB', 'RSS back near idle', 'flooder: connections / written / read'],
    rows,
  );
  return {
    markdown: [
      '### status-under-flood',
      '',
      md,
      '',
      `Daemon RSS idle, before the first flood: ${mib(idleRssKiB)} MiB. ratio: CLI median under the flood / the idle CLI median just before it (target <= ${LATENCY_LIMIT_RATIO}.00).`,
      `RSS after: once the flood's connections are closed; back near idle: the first reading within idle + ${RSS_AFTER_BASE_MIB} MiB + ${READ_BUFFERS_PER_CLIENT_KIB} KiB per flooding client (target: within ${RSS_SETTLE_TIMEOUT_MS / 1000} s).`,
      '"socket": the same request over a raw connection from the benchmark process (the daemon\'s share, without Node\'s start-up).',
    ].join('\n'),
    summary,
    data: { runs, idleRssKiB, phases },
  };
}

// ---- the flooder process ----

// Floods the socket from `clients` connections until SIGTERM, then prints what it did as one JSON line.
function runFlooder({ socket, clients, reads }) {
  const stats = { connections: 0, bytesWritten: 0, bytesRead: 0 };
  let stopping = false;
  let flooding = 0;
  const open = (first) => {
    stats.connections++;
    const s = connect(socket);
    if (reads) s.on('data', (chunk) => (stats.bytesRead += chunk.length));
    else s.pause();
    const pump = () => {
      while (!s.destroyed && !stopping) {
        stats.bytesWritten += FLOOD_CHUNK.length;
        if (!s.write(FLOOD_CHUNK)) return;
      }
    };
    s.once('connect', () => {
      pump();
      if (first && ++flooding === clients) process.stdout.write('flooding\n');
    });
    s.on('drain', pump);
    // EPIPE / ECONNRESET once the daemon drops the connection; 'close' follows and reconnects.
    s.on('error', () => {});
    s.once('close', () => {
      if (!stopping) open(false);
    });
  };
  process.once('SIGTERM', () => {
    stopping = true;
    process.stdout.write(`${JSON.stringify(stats)}\n`, () => process.exit(0));
  });
  for (let i = 0; i < clients; i++) open(true);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--flooder') {
  const [, , , socket, clients, mode] = process.argv;
  runFlooder({ socket, clients: Number(clients), reads: mode === 'reads' });
}
