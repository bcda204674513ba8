// Target: 1000 orphans -> all reaped <= 1 s after they exit (issue 3, PID 1).
//
// Method: test/fixtures/pid1/reaper-host.mjs runs as PID 1 of a fresh PID
// namespace (unshare --pid --mount --fork --mount-proc) with the src/pid1
// reaper bundled by esbuild. A bash leaves 1000 orphaned `cat FIFO` processes
// (re-parented to PID 1). Then zombie-watch.mjs, a separate process (so the
// clock does not wait on the reaper's event loop), opens and closes the FIFO,
// so all 1000 exit at once (the worst case: a burst of 1000 zombies), and polls
// PID 1's children list every 1 ms until it is empty. Measured: burst began ->
// all reaped. Every exit happens after the burst began, so this bounds "all
// reaped after they exit" from above (it includes the 1000 exits themselves).
// Ten children of the host's own (child_process) exit just before, while the
// reaper has the first look at their zombies; Node must still report their
// exit codes.
// Reference, same run otherwise: the reaper with SIGCHLD off (its 1 s timer
// alone, as tini wakes once a second), and no reaper at all (zombies stay).
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { REPO_ROOT, fmt, onCleanup, table } from './lib.mjs';

export const name = 'pid1-reap';

const ORPHANS = 1000;
const OWN_CHILDREN = 10;
const LIMIT_MS = 1000;
const RUN_LIMIT_MS = 120_000;
const UNSHARE = ['unshare', '--pid', '--mount', '--fork', '--mount-proc', '--kill-child'];
const HOST = join(REPO_ROOT, 'test/fixtures/pid1/reaper-host.mjs');
const PID1_MODULES = ['exit-code', 'libc', 'child-tracker', 'reaper', 'main-process', 'signals', 'stop-budget'];

export async function run({ quick }) {
  const rounds = quick ? 1 : 3;
  const probe = spawnSync(UNSHARE[0], [...UNSHARE.slice(1), 'true'], { stdio: 'ignore' });
  if (probe.status !== 0) throw new Error('needs `unshare --pid --mount --fork --mount-proc` (root): cannot run a PID namespace here');
  const bundle = await bundlePid1();

  const sigchld = [];
  const timerOnly = [];
  for (let i = 0; i < rounds; i++) {
    sigchld.push(runHost({ bundle, args: [] }));
    timerOnly.push(runHost({ bundle, args: ['--no-sigchld'] }));
  }
  const none = runHost({ bundle, args: ['--no-reaper'] });

  const worst = (reports) => Math.max(...reports.map((r) => r.watch.burstToClearMs ?? Infinity));
  const lag = worst(sigchld);
  const timerLag = worst(timerOnly);
  const ownCodesKept = [...sigchld, ...timerOnly].every((r) => r.own.every((o) => o.code === o.expected));
  const allReaped = sigchld.every((r) => r.watch.zombiesAfter1s === 0 && r.totals.orphans === ORPHANS);
  const pass = lag <= LIMIT_MS && allReaped && ownCodesKept;

  const row = (label) => (r, i) => [
    i + 1,
    label,
    r.watch.before,
    fmt(r.watch.burstToClearMs),
    r.watch.zombiesAfter1s,
    r.totals.scans,
    fmt(r.totals.maxScanMs),
    r.own.every((o) => o.code === o.expected) ? 'yes' : 'NO',
  ];
  const rows = [...sigchld.map(row('SIGCHLD + 1 s timer')), ...timerOnly.map(row('1 s timer only (reference)'))];
  rows.push([1, 'none (control)', none.watch.before, '-', none.watch.zombiesAfter1s, '-', '-', '-']);

  const markdown = [
    `### ${name}: ${ORPHANS} orphans exit at once in a PID namespace, reaped by PID 1`,
    '',
    `${rounds} round(s); bash needed ${fmt(Math.max(...sigchld.map((r) => r.makerMs)) / 1000, 1)} s to start the orphans.`,
    '',
    table(
      ['round', 'reaper', 'orphans', 'burst -> all reaped ms', 'zombies 1 s later', 'scans', 'longest scan ms', 'own exit codes kept'],
      rows,
    ),
  ].join('\n');
  const summary = [
    {
      benchmark: `${ORPHANS} orphans -> all reaped`,
      measured: `${fmt(lag)} ms from the burst (worst of ${rounds})`,
      reference: `1 s timer only: ${fmt(timerLag)} ms; no reaper: ${none.watch.zombiesAfter1s} zombies stay`,
      limit: `<= ${LIMIT_MS} ms`,
      ratioOrLimit: `<= ${LIMIT_MS} ms`,
      target: `all reaped <= 1 s after they exit${ownCodesKept ? '' : '; own children lost their exit codes'}`,
      pass,
    },
  ];
  return { markdown, summary, data: { sigchld, timerOnly, none } };
}

/** src/pid1 as one ESM file under node_modules/.cache, where node finds koffi. */
async function bundlePid1() {
  const dir = join(REPO_ROOT, 'node_modules/.cache/pid1-bench');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `pid1-${process.pid}.mjs`);
  onCleanup(() => rmSync(file, { force: true }));
  await build({
    stdin: { contents: PID1_MODULES.map((m) => `export * from './src/pid1/${m}.ts';`).join('\n'), resolveDir: REPO_ROOT, loader: 'ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: file,
    external: ['koffi'],
    logLevel: 'warning',
  });
  return file;
}

function runHost({ bundle, args }) {
  const result = spawnSync(UNSHARE[0], [...UNSHARE.slice(1), process.execPath, HOST, '--orphans', String(ORPHANS), '--own', String(OWN_CHILDREN), '--burst', ...args], {
    env: { ...process.env, PID1_BUNDLE: bundle },
    encoding: 'utf8',
    timeout: RUN_LIMIT_MS,
    killSignal: 'SIGKILL',
  });
  if (result.status !== 0) throw new Error(`reaper-host ${args.join(' ')} failed (${result.status ?? result.signal}): ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop());
}
