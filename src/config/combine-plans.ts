// One daemon, several config files: our llama.cpp file and upstream's vLLM and
// SGLang runner files each give a plan; the daemon supervises their union.
// A name or a port used in two files is an error (which one would the gateway
// or the probe mean?); a file with master.enable = false disables only its own.
import type { ConfigIssue } from '../errors.ts';
import type { ConfigKind } from './config-kind.ts';
import { makeGatewayPlan } from './gateway-plan.ts';
import type { LaunchPlan } from './instance-plan.ts';
import type { ConfigValue } from './overrides.ts';

export interface PlanPart {
  kind: ConfigKind;
  file: string;
  plan: LaunchPlan;
}

/**
 * The union of the parts' plans, or the issues that forbid it. One part is returned as it is. The llama.cpp
 * file's [gateway] is planned again over the union, so its default, models and enable see every engine's instances.
 */
export function combinePlans(parts: readonly PlanPart[], env: Readonly<Record<string, string | undefined>> = {}): { plan: LaunchPlan | null; issues: ConfigIssue[] } {
  if (parts.length === 1) return { plan: parts[0].plan, issues: [] };
  const issues: ConfigIssue[] = [];
  const byName = new Map<string, PlanPart>();
  const byPort = new Map<number, { part: PlanPart; name: string }>();
  const combined: LaunchPlan = { enabled: true, instances: [], memoryBudgetMib: null };
  for (const part of parts) {
    for (const instance of part.plan.instances) {
      const other = byName.get(instance.name);
      if (other !== undefined) {
        issues.push({ severity: 'error', file: part.file, path: `instance.${instance.name}`, message: `instance "${instance.name}" is also in ${other.file} (${other.kind}); names must differ across config files` });
        continue;
      }
      byName.set(instance.name, part);
      const enabled = part.plan.enabled && instance.enabled;
      if (enabled) {
        const clash = byPort.get(instance.port);
        if (clash !== undefined) {
          issues.push({ severity: 'error', file: part.file, path: `instance.${instance.name}`, message: `port ${instance.port} is also used by instance "${clash.name}" of ${clash.part.file}` });
        } else byPort.set(instance.port, { part, name: instance.name });
      }
      combined.instances.push(enabled === instance.enabled ? instance : { ...instance, enabled });
    }
    if (part.kind === 'llama-cpp') combined.memoryBudgetMib = part.plan.memoryBudgetMib ?? null;
  }
  const llama = parts.find((part) => part.kind === 'llama-cpp');
  if (llama !== undefined && issues.length === 0) {
    const gateway = makeGatewayPlan(llama.plan.gatewayTable as ConfigValue | undefined, combined, env);
    for (const issue of gateway.issues) issues.push({ severity: issue.severity, file: llama.file, path: issue.path.join('.'), message: issue.message });
    if (gateway.plan) combined.gateway = gateway.plan;
    if (issues.some((i) => i.severity === 'error')) return { plan: null, issues };
  }
  return { plan: issues.some((i) => i.severity === 'error') ? null : combined, issues };
}
