// supervisor serve [--engine vllm|sglang] [--config FILE]: start the config's
// instances in the running daemon (what upstream's check-and-run-llama-cpp.sh,
// check-and-run-vllm.sh and check-and-run-sglang.sh did by hand). Idempotent:
// running instances are left alone.
import { resolve } from 'node:path';
import { getConfigPath } from '../../config/load-config.ts';
import { EXIT, UsageError } from '../../errors.ts';
import type { ReloadSummary } from '../../supervise/supervisor.ts';
import { readKindFlag, type ParsedArgs } from '../args.ts';
import { printJson, request } from '../request.ts';

export default async function serve(args: ParsedArgs): Promise<number> {
  if (args.positionals.length > 1) throw new UsageError('usage: supervisor serve [--engine vllm|sglang] [--config FILE]');
  const kind = readKindFlag(args);
  const given = getConfigPath(args.positionals[0] ?? (args.flags.config as string | undefined), process.env, kind);
  // The daemon's working directory is not ours: send an absolute path.
  const summary = (await request('serve', { engine: kind, ...(given === null ? {} : { config: resolve(given) }) }, 120_000)) as ReloadSummary;
  if (args.flags.json) printJson(summary);
  else {
    const started = summary.started.length > 0 ? summary.started.join(', ') : 'none';
    const running = summary.unchanged.length > 0 ? `; already running or disabled: ${summary.unchanged.join(', ')}` : '';
    process.stdout.write(`started: ${started}${running}\n`);
  }
  return EXIT.OK;
}
