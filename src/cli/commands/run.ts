// supervisor run [--config FILE]: the daemon in the foreground.
import { getConfigPath } from '../../config/load-config.ts';
import { getSocketPath } from '../../control/socket-path.ts';
import { runDaemon } from '../../daemon/daemon.ts';
import { UsageError } from '../../errors.ts';
import type { ParsedArgs } from '../args.ts';
import { VERSION } from '../version.ts';

export default async function run(args: ParsedArgs): Promise<number> {
  if (args.positionals.length > 0) throw new UsageError('usage: supervisor run [--config FILE]');
  const configPath = getConfigPath(args.flags.config as string | undefined);
  // Upstream's vLLM and SGLang files, when their variables name them, are supervised by the same daemon.
  const vllm = getConfigPath(undefined, process.env, 'vllm');
  const sglang = getConfigPath(undefined, process.env, 'sglang');
  const engineConfigs = { ...(vllm === null ? {} : { vllm }), ...(sglang === null ? {} : { sglang }) };
  return runDaemon({ configPath, engineConfigs, socketPath: getSocketPath(), version: VERSION });
}
