// supervisor install-pkg [ARCHIVE] [--force] [--no-verify] [--restart] [--json]
// supervisor install-pkg --rollback [--restart] [--json]
// Installs a llama.cpp bundle into /soft/app/llama-cpp (src/bundle/install.ts).
// ARCHIVE defaults to AUTO_INFER_LLAMA_CPP_PKG_PATH; neither set is nothing to do.
// Exit 0 installed / already installed / nothing to do, 2 the archive or its
// layout is invalid, 1 anything else. Progress and warnings go to stderr.
import { readText } from '../../boot/env-flags.ts';
import { installPackage, rollbackPackage, type InstallResult, type RollbackResult } from '../../bundle/install.ts';
import { getSoftAppRoot, makeBundlePaths } from '../../bundle/paths.ts';
import { makeProgress } from '../../bundle/progress.ts';
import { EXIT, isSupervisorError, UsageError } from '../../errors.ts';
import type { InstanceStatus } from '../../supervise/instance.ts';
import type { ParsedArgs } from '../args.ts';
import { formatStatusTable } from '../format-status.ts';
import { printJson, request } from '../request.ts';

const USAGE = 'usage: supervisor install-pkg [ARCHIVE] [--force] [--no-verify] [--restart] [--json] | install-pkg --rollback [--restart]';
/** A restart waits for the stop (8 s grace) and the start, not for the model to load. */
const RESTART_TIMEOUT_MS = 120_000;

export default async function installPkg(args: ParsedArgs): Promise<number> {
  // Should the event loop ever run dry before the install settles, Node exits with this, not a silent 0.
  process.exitCode = EXIT.FAILED;
  const { flags, positionals } = args;
  const rollback = flags.rollback === true;
  if (positionals.length > 1 || (rollback && (positionals.length > 0 || flags.force || flags.noVerify))) throw new UsageError(USAGE);
  const log = (line: string): void => void process.stderr.write(`install-pkg: ${line}\n`);
  const root = getSoftAppRoot();
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let summary: { activated: boolean; text: string; json: InstallResult | RollbackResult };
  try {
    if (rollback) {
      const result = await rollbackPackage({ root, log });
      const version = result.record?.version ? ` (${result.record.version})` : '';
      summary = { activated: true, text: `rolled back: ${result.active} -> llama-cpp.d/${result.to}${version}; was ${result.from ?? 'nothing'}`, json: result };
    } else {
      const archive = positionals[0] ?? readText(process.env, 'AUTO_INFER_LLAMA_CPP_PKG_PATH');
      if (archive === null) {
        process.stdout.write('nothing to do: no ARCHIVE given and AUTO_INFER_LLAMA_CPP_PKG_PATH is not set\n');
        return EXIT.OK;
      }
      const progress = makeProgress({ write: (text) => void process.stderr.write(text), tty: process.stderr.isTTY === true });
      const result = await installPackage({ archive, root, force: flags.force === true, verify: flags.noVerify !== true, progress, log, signal: stop.signal });
      for (const warning of result.warnings) log(`warning: ${warning}`);
      summary = { activated: result.status !== 'already-installed', text: describeInstall(result), json: result };
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (flags.json) printJson(summary.json);
  else process.stdout.write(`${summary.text}\n`);
  if (flags.restart !== true) return EXIT.OK;
  if (!summary.activated) {
    log('nothing was activated, so nothing is restarted');
    return EXIT.OK;
  }
  return restartInstances(makeBundlePaths(root).activeLink, log);
}

/** One line saying what happened. */
function describeInstall(result: InstallResult): string {
  const version = result.version ? ` (${result.version})` : '';
  const sha = result.sha256.slice(0, 12);
  switch (result.status) {
    case 'already-installed':
      return `already installed: ${result.archive} (sha256 ${sha}) is active at ${result.active}${version}; nothing to do (--force reinstalls)`;
    case 'reactivated':
      return `reactivated the kept version of ${result.archive} (sha256 ${sha}): ${result.active} -> ${result.versionDir}${version}`;
    default:
      return `installed ${result.archive} (sha256 ${sha}): ${result.active} -> ${result.versionDir}${version}`;
  }
}

// Asks the daemon to restart the instances whose executable lies under the active path; no daemon is not an error.
async function restartInstances(under: string, log: (line: string) => void): Promise<number> {
  let rows: InstanceStatus[];
  try {
    rows = (await request('restart', { under, names: [], all: false }, RESTART_TIMEOUT_MS)) as InstanceStatus[];
  } catch (err) {
    if (isSupervisorError(err) && err.exitCode === EXIT.NOT_RUNNING) {
      log(`no supervisor daemon is running, so nothing is restarted (${err.message})`);
      return EXIT.OK;
    }
    throw err;
  }
  if (rows.length === 0) {
    log(`no running instance uses an executable under ${under}; nothing restarted`);
    return EXIT.OK;
  }
  process.stderr.write(formatStatusTable(rows));
  return rows.some((r) => r.state === 'fatal') ? EXIT.FAILED : EXIT.OK;
}
