// supervisor claude-env [--model NAME] [--config FILE] [--json]
// Prints the shell exports that point Claude Code at the gateway:
//   eval "$(supervisor claude-env)" && claude
// It reads the config file, not the daemon: the control socket is root-only,
// and the shell that runs `claude` need not be root nor have the daemon up.
import type { LaunchPlan } from '../../config/instance-plan.ts';
import { getConfigPath, missingConfigError, readLaunchPlan } from '../../config/load-config.ts';
import { ConfigError, EXIT, UsageError } from '../../errors.ts';
import { formatShellExports, makeClaudeEnv } from '../../gateway/claude-env-vars.ts';
import { makeGatewayPlan, type GatewayPlan } from '../../gateway/gateway-config.ts';
import { getInstanceAliases } from '../../gateway/instance-args.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson } from '../request.ts';

export default async function claudeEnv(args: ParsedArgs): Promise<number> {
  if (args.positionals.length > 0) throw new UsageError('usage: supervisor claude-env [--model NAME] [--config FILE] [--json]');
  const path = getConfigPath(args.flags.config as string | undefined);
  if (path === null) throw missingConfigError();
  const { plan, issues } = readLaunchPlan(path);
  if (!plan) throw new ConfigError(issues);
  const gateway = getGatewayPlan(plan);
  if (!gateway.enabled) process.stderr.write('supervisor: warning: [gateway] enable = false: nothing listens at this address\n');
  const model = typeof args.flags.model === 'string' ? args.flags.model : undefined;
  const instances = plan.instances.map((i) => ({ name: i.name, aliases: getInstanceAliases(i), enabled: plan.enabled && i.enabled }));
  const result = makeClaudeEnv({ gateway, instances, model });
  if (!result.ok) throw new UsageError(result.message);
  if (args.flags.json) printJson(Object.fromEntries(result.vars));
  else process.stdout.write(formatShellExports(result.vars));
  return EXIT.OK;
}

// The plan's resolved [gateway] once the config loader carries it; the defaults for a config without one.
function getGatewayPlan(plan: LaunchPlan): GatewayPlan {
  const carried = (plan as LaunchPlan & { gateway?: GatewayPlan }).gateway;
  if (carried) return carried;
  const made = makeGatewayPlan(undefined, plan, process.env);
  if (!made.plan) throw new ConfigError(made.issues.map((i) => ({ ...i, file: null, path: i.path.join('.') })));
  return made.plan;
}
