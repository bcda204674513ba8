// Target: extraction by `supervisor install-pkg` <= 1.2 x GNU `tar -xzf` for
// .tar.gz and <= 1.2 x `unzip -q` for .zip, on the real CPU bundle and on a
// 500 MiB synthetic bundle shaped like a CUDA build (--quick: 100 MiB).
//
// Method: the archives are made with GNU tar + gzip and Info-ZIP zip (level 6
// for the real bundle; level 1 for the synthetic one, whose big files are
// random and do not compress anyway). Each round runs, in alternating order,
// the reference (`tar -xzf A -C fresh/` or `unzip -q A -d fresh/`, wall time
// of the process) and `node dist/cli.js install-pkg A --no-verify --json` into
// a fresh root. Ours is measured twice: the extraction phase the installer
// reports (timingsMs.extract: stream, decompress, check every entry, write,
// check the layout, create the symlinks) and, for context, the whole command
// (node start-up, hashing, the copy into the cache, activation). One warm-up
// round, then the median of 5. Everything runs on tmpfs when there is room,
// so disk writeback of one run does not slow the next.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BENCH_CLI, countEntries, makeBenchDir, makeRealTree, makeSyntheticTree, missingTools, packArchives } from './bundle-fixtures.mjs';
import { fmt, median, MiB, table } from './lib.mjs';

export const name = 'bundle-extract';

const RUNS = 5;
const TARGET = 1.2;
/** Files the installer adds to a package: .installed-from.json and three shims. */
const INSTALLER_FILES = 4;

function timeProcess(command, args, env) {
  const t0 = performance.now();
  const r = spawnSync(command, args, { env: env ?? process.env, encoding: 'utf8', maxBuffer: 16 * MiB });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

function referenceRun(format, archive, out) {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  const { ms } = format === 'zip' ? timeProcess('unzip', ['-q', archive, '-d', out]) : timeProcess('tar', ['-xzf', archive, '-C', out]);
  return { ms, entries: countEntries(out) };
}

function installRun(archive, root) {
  rmSync(root, { recursive: true, force: true });
  const { ms, stdout } = timeProcess(process.execPath, [BENCH_CLI, 'install-pkg', archive, '--no-verify', '--json'], { ...process.env, SUPERVISOR_SOFT_APP: root });
  const result = JSON.parse(stdout);
  if (result.status !== 'installed') throw new Error(`install-pkg did not install: ${stdout}`);
  return { ms, extractMs: result.timingsMs.extract, entries: countEntries(result.versionDir) };
}

export async function run({ quick }) {
  const missing = missingTools();
  if (missing.length > 0) throw new Error(`missing reference tools: ${missing.join(', ')}`);
  const synthMiB = quick ? 100 : 500;
  const { dir, fs } = makeBenchDir('svb-bundle-extract', (synthMiB * 5 + 300) * MiB);
  const sources = join(dir, 'src');
  const datasets = [];
  const real = makeRealTree(join(sources, 'real'));
  if (real.dir) datasets.push({ label: 'real CPU bundle', ...packArchives(real.dir, dir, 'real') });
  const synthDir = makeSyntheticTree(join(sources, 'synth'), synthMiB);
  datasets.push({ label: `synthetic CUDA-shaped, ${synthMiB} MiB`, ...packArchives(synthDir, dir, 'synth', { gzipLevel: 1, zipLevel: 1 }) });
  rmSync(sources, { recursive: true, force: true });

  const rows = [];
  const summary = [];
  const data = [];
  for (const ds of datasets) {
    for (const [format, archive] of [['tar.gz', ds.tgz], ['zip', ds.zip]]) {
      const out = join(dir, 'out');
      const root = join(dir, 'root');
      const ref = [];
      const ours = [];
      referenceRun(format, archive, out);
      installRun(archive, root);
      for (let i = 0; i < RUNS; i++) {
        if (i % 2 === 0) {
          ref.push(referenceRun(format, archive, out));
          ours.push(installRun(archive, root));
        } else {
          ours.push(installRun(archive, root));
          ref.push(referenceRun(format, archive, out));
        }
      }
      rmSync(out, { recursive: true, force: true });
      rmSync(root, { recursive: true, force: true });
      const mRef = median(ref.map((r) => r.ms));
      const mExtract = median(ours.map((r) => r.extractMs));
      const mWhole = median(ours.map((r) => r.ms));
      const ratio = mExtract / mRef;
      const tool = format === 'zip' ? '`unzip -q`' : '`tar -xzf`';
      // The reference extracts the top folder too (the installer's version dir is that folder), and
      // the installer adds .installed-from.json and the three upstream helper shims.
      const expected = ref[0].entries - 1 + INSTALLER_FILES;
      const complete = ours.every((r) => r.entries === expected);
      rows.push([ds.label, format, fmt(mRef, 0), fmt(mExtract, 0), fmt(ratio, 2), fmt(mWhole, 0), fmt(mWhole / mRef, 2), complete ? 'yes' : `NO (${ours[0].entries} vs ${expected})`]);
      summary.push({
        benchmark: `extract ${format}, ${ds.label}`,
        measured: `${fmt(mExtract, 0)} ms`,
        reference: `${tool}: ${fmt(mRef, 0)} ms`,
        ratioOrLimit: `${fmt(ratio, 2)}x`,
        target: `<= ${TARGET}x`,
        pass: ratio <= TARGET && complete,
      });
      data.push({ dataset: ds.label, format, referenceMs: ref.map((r) => r.ms), extractMs: ours.map((r) => r.extractMs), wholeMs: ours.map((r) => r.ms) });
    }
  }
  const md = table(['bundle', 'format', `reference ms (median of ${RUNS})`, 'install-pkg extraction ms', 'ratio', 'whole install-pkg --no-verify ms', 'whole / reference', 'same entries'], rows);
  return {
    markdown: `### bundle-extract\n\nOn ${fs}. Reference: GNU \`tar -xzf\` / \`unzip -q\`. Extraction = the installer's own extraction phase (stream, decompress, check every entry, write, layout check, symlinks); "whole" adds node start-up, sha256, the copy into the cache and activation.\n\n${md}`,
    summary,
    data,
  };
}
