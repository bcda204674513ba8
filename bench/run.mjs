// `npm run bench` (= npm run build && node bench/run.mjs [--quick] [NAME...]):
// runs the benchmarks in turn against dist/cli.js, prints a markdown table per
// benchmark and a summary, writes bench/results/latest.json, and exits 1 when a
// target is missed (or a benchmark failed), 2 on bad arguments.
// Benchmarks are not tests: they measure against a reference run side by side.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CLK_TCK, fmt, runAllCleanups, table } from './lib.mjs';

// Issue 2 (core), issue 3 (PID 1), issue 5 (gateway), issue 4 (bundle), issue 9 (hardening), issue 10 (images), issue 13 (on demand), issue 19 (dashboard), issue 14 (engines) benchmarks.
const BENCHMARKS = ['status-latency', 'status-under-flood', 'daemon-footprint', 'restart-latency', 'log-throughput', 'pid1-reap', 'boot-spawn', 'boot-stop', 'gateway-latency', 'gateway-throughput', 'gateway-bodies', 'on-demand', 'dashboard-render', 'dashboard-footprint', 'dashboard-gateway', 'bundle-extract', 'bundle-reinstall', 'engines-mixed', 'image-run-stop', 'image-size'];

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const unknownFlags = argv.filter((a) => a.startsWith('-') && a !== '--quick');
const names = argv.filter((a) => !a.startsWith('-'));
const unknownNames = names.filter((n) => !BENCHMARKS.includes(n));
if (argv.includes('--help') || argv.includes('-h') || unknownFlags.length > 0 || unknownNames.length > 0) {
  const wrong = [...unknownFlags, ...unknownNames].filter((a) => a !== '--help' && a !== '-h');
  if (wrong.length > 0) process.stderr.write(`bench: unknown argument(s): ${wrong.join(' ')}\n`);
  process.stderr.write(`usage: node bench/run.mjs [--quick] [${BENCHMARKS.join('|')}]...\n`);
  process.exit(wrong.length > 0 ? 2 : 0);
}
const selected = names.length > 0 ? BENCHMARKS.filter((b) => names.includes(b)) : BENCHMARKS;

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\nbench: ${signal}, cleaning up\n`);
    runAllCleanups().finally(() => process.exit(130));
  });
}

const print = (text = '') => process.stdout.write(`${text}\n`);
const t0 = performance.now();
const startedAt = new Date().toISOString();
print(`# supervisor benchmarks${quick ? ' (--quick)' : ''}`);
print();
print(`node ${process.version}, ${cpus().length} CPU(s) (${cpus()[0]?.model ?? 'unknown'}), CLK_TCK ${CLK_TCK}, tmp ${tmpdir()}, ${startedAt}`);
print();

const results = [];
const summary = [];
for (const name of selected) {
  const b0 = performance.now();
  process.stderr.write(`bench: running ${name}...\n`);
  try {
    const mod = await import(`./${name}.mjs`);
    const result = await mod.run({ quick });
    const seconds = (performance.now() - b0) / 1000;
    print(result.markdown);
    print();
    print(`(${name}: ${fmt(seconds, 1)} s)`);
    print();
    summary.push(...result.summary);
    results.push({ name, seconds, summary: result.summary, data: result.data });
  } catch (err) {
    const seconds = (performance.now() - b0) / 1000;
    print(`### ${name}\n\nFAILED: ${err?.stack ?? err}\n`);
    summary.push({ benchmark: name, measured: 'error', reference: '-', ratioOrLimit: '-', target: '-', pass: false });
    results.push({ name, seconds, error: String(err?.stack ?? err) });
  } finally {
    await runAllCleanups();
  }
  if (interrupted) break;
}

const totalSeconds = (performance.now() - t0) / 1000;
print('### summary');
print();
print(
  table(
    ['benchmark', 'measured', 'reference', 'ratio/limit', 'target', 'pass'],
    summary.map((s) => [s.benchmark, s.measured, s.reference, s.ratioOrLimit, s.target, s.pass ? 'yes' : '**NO**']),
  ),
);
print();
const missed = summary.filter((s) => !s.pass);
print(`total: ${fmt(totalSeconds, 1)} s; ${missed.length === 0 ? 'all targets met' : `${missed.length} target(s) missed`}`);

const outDir = fileURLToPath(new URL('./results/', import.meta.url));
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, 'latest.json'),
  `${JSON.stringify({ startedAt, quick, node: process.version, cpus: cpus().length, clkTck: CLK_TCK, totalSeconds, summary, results }, null, 2)}\n`,
);
process.exitCode = missed.length === 0 ? 0 : 1;
