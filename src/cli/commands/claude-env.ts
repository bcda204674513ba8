// supervisor claude-env [--model NAME] [--config FILE] [--json]
// Prints the shell exports that point Claude Code at the gateway:
//   eval "$(supervisor claude-env)" && claude
// It reads the config file, not the daemon: the control socket is root-only,
// and the shell that runs `claude` need not be root nor have the daemon up.
import { GATEWAY_OFF } from '../../config/gateway-plan.ts';
import { getConfigPath, missingConfigError, readLaunchPlan } from '../../config/load-config.ts';
import { ConfigError, EXIT, UsageError } from '../../errors.ts';
import { formatShellExports, makeClaudeEnv } from '../../gateway/claude-env-vars.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson } from '../request.ts';

export default async function claudeEnv(args: ParsedArgs): Promise<number> {
  if (args.positionals.length > 0) throw new UsageError('usage: supervisor claude-env [--model NAME] [--config FILE] [--json]');
  const path = getConfigPath(args.flags.config as string | undefined);
  if (path === null) throw missingConfigError();
  const { plan, issues } = readLaunchPlan(path);
  if (!plan) throw new ConfigError(issues);
  // A planned config always carries its gateway plan; GATEWAY_OFF only satisfies the type.
  const gateway = plan.gateway ?? GATEWAY_OFF;
  if (!gateway.enabled) process.stderr.write('supervisor: warning: [gateway] enable = false: nothing listens at this address\n');
  const model = typeof args.flags.model === 'string' ? args.flags.model : undefined;
  const instances = plan.instances.map((i) => ({ name: i.name, aliases: i.aliases ?? [], enabled: plan.enabled && i.enabled }));
  const result = makeClaudeEnv({ gateway, instances, model });
  if (!result.ok) throw new UsageError(result.message);
  if (args.flags.json) printJson(Object.fromEntries(result.vars));
  else process.stdout.write(formatShellExports(result.vars));
  return EXIT.OK;
}
