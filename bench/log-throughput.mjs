// Target 4: a child writing N bytes of lines through the supervisor into
// rotated log files (log_max_bytes 64 MiB, log_keep 20) reaches >= 50 % of the
// throughput of the same child redirected straight to a file, and no line is
// lost or added.
//
// Method, per repetition (reference and supervised alternate; medians count):
//   reference:  `node test/fixtures/fake-server.mjs --spam-bytes N --silent > file`
//               (stdout is the file's fd), timed from spawn() to the child's exit.
//   supervised: a fresh daemon runs the same command as instance `spam` with
//               restart = "never". Timed from the daemon's `-> starting` event
//               (logged right after spawn) until the supervisor's exit record
//               (`[supervisor] pid P exited ...`, queued behind all output) is in
//               the log file, i.e. until every byte is on disk; the file tail is
//               polled every 5 ms after the `-> stopped` event.
//   plain relay (information only): the child's stdout piped into this process
//               and on into fs.createWriteStream: what any Node relay costs.
// Lines: the rotated files (file.20 ... file.1) and the current file are read
// as one stream; lines = newlines + a trailing partial line; the supervisor's
// own records (lines starting with "[supervisor] ") are subtracted and must be
// the only lines starting with "[". The reference file is counted the same way.
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, fstatSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CLK_TCK, childCpuTicks, cpuTicks, FAKE_SERVER, fakeInstance, fakeMaster, fmt, freePort, makeTempDir, median, MiB, sleep, startDaemon, table } from './lib.mjs';

export const name = 'log-throughput';

const LOG_MAX_BYTES = 64 * MiB;
const LOG_KEEP = 20;
const MIN_RATIO = 0.5;

export async function run({ quick }) {
  const bytes = quick ? 128 * MiB : 1024 * MiB;
  const reps = quick ? 3 : 5;
  const { dir, remove } = makeTempDir('svb-log');
  try {
    const availBytes = freeBytes(dir);
    // The reference file is deleted before the supervised run; keep room for one run plus slack.
    if (availBytes < 2.5 * bytes) throw new Error(`only ${fmt(availBytes / MiB, 0)} MiB free in ${dir}; need ${fmt((2.5 * bytes) / MiB, 0)}`);

    const rows = [];
    for (let rep = 0; rep < reps; rep++) {
      const order = rep % 2 === 0 ? ['reference', 'supervised', 'relay'] : ['relay', 'supervised', 'reference'];
      const row = { rep: rep + 1 };
      for (const which of order) {
        if (which === 'reference') row.reference = await referenceRun(dir, bytes);
        else if (which === 'relay') row.relay = await relayRun(dir, bytes);
        else row.supervised = await supervisedRun(bytes);
      }
      rows.push(row);
    }

    const refMBs = rows.map((r) => bytes / MiB / r.reference.seconds);
    const supMBs = rows.map((r) => bytes / MiB / r.supervised.seconds);
    const relayMBs = rows.map((r) => bytes / MiB / r.relay.seconds);
    const mRelay = median(relayMBs);
    const mRef = median(refMBs);
    const mSup = median(supMBs);
    const ratio = mSup / mRef;
    const linesEqual = rows.every((r) => r.supervised.lines === r.reference.lines && r.supervised.strayBracketLines === 0);
    // A newline the supervisor adds before its exit record when the output ended mid-line is not payload.
    const payloadEqual = (r) => r.supervised.payloadBytes === r.reference.bytes + (r.reference.endsWithNewline ? 0 : 1);
    const bytesEqual = rows.every(payloadEqual);
    const rotationOk = rows.every((r) => r.supervised.maxFileBytes <= LOG_MAX_BYTES);
    const md = table(
      ['rep', 'reference s', 'reference MiB/s', 'supervised s', 'supervised MiB/s', 'ratio', 'plain relay MiB/s (ratio)', 'reference lines', 'supervised lines (- records)', 'files (largest MiB)', 'payload bytes equal'],
      [
        ...rows.map((r, i) => [
          r.rep,
          fmt(r.reference.seconds, 2),
          fmt(refMBs[i], 0),
          fmt(r.supervised.seconds, 2),
          fmt(supMBs[i], 0),
          fmt(supMBs[i] / refMBs[i], 2),
          `${fmt(relayMBs[i], 0)} (${fmt(relayMBs[i] / refMBs[i], 2)})`,
          r.reference.lines,
          `${r.supervised.lines} (${r.supervised.recordLines} records${r.supervised.strayBracketLines ? `, ${r.supervised.strayBracketLines} STRAY` : ''})`,
          `${r.supervised.files} (${fmt(r.supervised.maxFileBytes / MiB, 1)})`,
          payloadEqual(r) ? 'yes' : `NO (${r.supervised.payloadBytes} vs ${r.reference.bytes})`,
        ]),
        ['**median**', '', `**${fmt(mRef, 0)}**`, '', `**${fmt(mSup, 0)}**`, `**${fmt(ratio, 2)}**`, `${fmt(mRelay, 0)} (${fmt(mRelay / mRef, 2)})`, '', '', '', ''],
      ],
    );
    // Where the time goes: CPU seconds of the writer (reaped child: cutime+cstime of its parent) and of the daemon.
    const cpu = table(
      ['rep', 'reference: writer CPU s', 'supervised: writer CPU s', 'supervised: daemon CPU s', 'daemon CPU % of a core', 'daemon CPU s per GiB'],
      rows.map((r) => [
        r.rep,
        fmt(r.reference.childCpuS, 2),
        fmt(r.supervised.childCpuS, 2),
        fmt(r.supervised.daemonCpuS, 2),
        fmt((100 * r.supervised.daemonCpuS) / r.supervised.seconds, 0),
        fmt(r.supervised.daemonCpuS / (bytes / (1024 * MiB)), 2),
      ]),
    );
    return {
      markdown: `### log-throughput\n\n${fmt(bytes / MiB, 0)} MiB of lines per run, log_max_bytes ${LOG_MAX_BYTES / MiB} MiB, log_keep ${LOG_KEEP}, ${reps} alternating repetitions. "plain relay" (information only, not a target): the same child's stdout piped into this process and straight into fs.createWriteStream, the floor of any Node supervisor:\n\n${md}\n\nCPU (${CLK_TCK} ticks/s):\n\n${cpu}`,
      summary: [
        {
          benchmark: `log throughput (${fmt(bytes / MiB, 0)} MiB)`,
          measured: `${fmt(mSup, 0)} MiB/s`,
          reference: `> file: ${fmt(mRef, 0)} MiB/s`,
          ratioOrLimit: `${fmt(ratio, 2)}x`,
          target: `>= ${MIN_RATIO}x`,
          pass: ratio >= MIN_RATIO,
        },
        {
          benchmark: 'log lines equal',
          measured: `${rows[0].supervised.lines} lines`,
          reference: `${rows[0].reference.lines} lines`,
          ratioOrLimit: bytesEqual ? 'bytes equal too' : 'bytes DIFFER',
          target: 'lines and bytes equal, files <= 64 MiB',
          pass: linesEqual && bytesEqual && rotationOk,
        },
      ],
      data: { bytes, reps, rows, referenceMiBs: refMBs, supervisedMiBs: supMBs, relayMiBs: relayMBs, ratio, linesEqual, bytesEqual, rotationOk },
    };
  } finally {
    await remove();
  }
}

async function referenceRun(dir, bytes) {
  const file = join(dir, 'reference.log');
  const fd = openSync(file, 'w');
  let seconds;
  let childCpuS;
  try {
    const cpu0 = childCpuTicks(process.pid);
    const t0 = performance.now();
    const child = spawn(process.execPath, [FAKE_SERVER, '--spam-bytes', String(bytes), '--silent'], { stdio: ['ignore', fd, 'inherit'] });
    const code = await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    seconds = (performance.now() - t0) / 1000;
    childCpuS = (childCpuTicks(process.pid) - cpu0) / CLK_TCK;
    if (code !== 0) throw new Error(`reference child exited with ${code}`);
  } finally {
    closeSync(fd);
  }
  const counted = countLines([file]);
  rmSync(file, { force: true });
  return { seconds, childCpuS, lines: counted.lines, bytes: counted.bytes, endsWithNewline: counted.endsWithNewline };
}

/** The floor of a Node relay: child stdout piped into fs.createWriteStream in this process, no rotation. */
async function relayRun(dir, bytes) {
  const file = join(dir, 'relay.log');
  const out = createWriteStream(file);
  const t0 = performance.now();
  const child = spawn(process.execPath, [FAKE_SERVER, '--spam-bytes', String(bytes), '--silent'], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.pipe(out);
  await new Promise((resolve, reject) => {
    out.once('finish', resolve);
    out.once('error', reject);
    child.once('error', reject);
  });
  const seconds = (performance.now() - t0) / 1000;
  const size = statSync(file).size;
  rmSync(file, { force: true });
  if (size !== bytes) throw new Error(`relay wrote ${size} bytes, expected ${bytes}`);
  return { seconds };
}

async function supervisedRun(bytes) {
  const port = await freePort(); // unused: the spamming fake server never listens
  const config = `${fakeMaster()}
${fakeInstance('spam', port, ['--spam-bytes', bytes, '--silent'], `restart = "never"\nlog_file = "@DIR@/spam.log"\nlog_max_bytes = ${LOG_MAX_BYTES}\nlog_keep = ${LOG_KEEP}\n`)}`;
  const daemon = await startDaemon(config);
  try {
    const file = join(daemon.dir, 'spam.log');
    const starting = await daemon.waitTransition('spam', 'starting', 20_000);
    // Read when the event arrives (a few ms after the spawn): the daemon's start-up is not counted.
    const daemonCpu0 = cpuTicks(daemon.pid);
    const childCpu0 = childCpuTicks(daemon.pid);
    const stopped = await daemon.waitEvent(
      (e) => e.event === 'transition' && e.instance === 'spam' && ['stopped', 'fatal', 'backoff'].includes(e.to),
      600_000,
      'spam to stop',
    );
    if (stopped.to !== 'stopped') throw new Error(`spam ended in ${stopped.to}: ${stopped.reason}`);
    const exitRecord = `[supervisor] pid ${starting.pid} exited`;
    const deadline = Date.now() + 120_000;
    while (!tailOf(file).includes(exitRecord)) {
      if (Date.now() > deadline) throw new Error('the exit record never reached the log file');
      await sleep(5);
    }
    const seconds = (Date.now() - Date.parse(starting.time)) / 1000;
    const daemonCpuS = (cpuTicks(daemon.pid) - daemonCpu0) / CLK_TCK;
    const childCpuS = (childCpuTicks(daemon.pid) - childCpu0) / CLK_TCK;
    const files = [];
    for (let i = LOG_KEEP; i >= 1; i--) if (existsSync(`${file}.${i}`)) files.push(`${file}.${i}`);
    files.push(file);
    const counted = countLines(files, true);
    const maxFileBytes = Math.max(...files.map((f) => statSync(f).size));
    // Records are whole lines. If the output ended mid-line, the supervisor put a newline
    // before its exit record: payloadBytes is then one more than the reference (see payloadEqual).
    const recordBytes = counted.records.reduce((sum, r) => sum + Buffer.byteLength(r) + 1, 0);
    const payloadBytes = counted.bytes - recordBytes;
    return {
      seconds,
      daemonCpuS,
      childCpuS,
      lines: counted.lines - counted.records.length,
      recordLines: counted.records.length,
      strayBracketLines: counted.stray,
      files: files.length,
      maxFileBytes,
      payloadBytes,
    };
  } finally {
    await daemon.stop();
  }
}

function tailOf(file) {
  let fd;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const len = Math.min(size, 4096);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('latin1');
  } finally {
    closeSync(fd);
  }
}

/**
 * Counts lines of files read as one stream. With `records`, lines starting with "[" are
 * collected: "[supervisor] " ones are records, others are counted as stray.
 */
function countLines(files, records = false) {
  const NL = 0x0a;
  const buf = Buffer.allocUnsafe(8 * MiB);
  let lines = 0;
  let bytes = 0;
  let atLineStart = true;
  let capturing = null; // bytes of a "[" line being collected
  const found = [];
  let stray = 0;
  let lastByte = NL;
  for (const file of files) {
    const fd = openSync(file, 'r');
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        bytes += n;
        let pos = 0;
        while (pos < n) {
          if (atLineStart && records && buf[pos] === 0x5b) capturing = [];
          const nl = buf.indexOf(NL, pos);
          const end = nl === -1 || nl >= n ? n : nl;
          if (capturing) capturing.push(Buffer.from(buf.subarray(pos, end)));
          if (end === n) {
            atLineStart = false;
            pos = n;
          } else {
            lines++;
            atLineStart = true;
            if (capturing) {
              const text = Buffer.concat(capturing).toString('utf8');
              if (text.startsWith('[supervisor] ')) found.push(text);
              else stray++;
              capturing = null;
            }
            pos = end + 1;
          }
        }
        lastByte = buf[n - 1];
      }
    } finally {
      closeSync(fd);
    }
  }
  if (lastByte !== NL && bytes > 0) lines++;
  return { lines, bytes, records: found, stray, endsWithNewline: lastByte === NL };
}

function freeBytes(dir) {
  const out = execFileSync('df', ['-Pk', dir], { encoding: 'utf8' }).trim().split('\n').pop().split(/\s+/);
  return Number(out[3]) * 1024;
}
