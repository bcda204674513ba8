// The instances' ports: each a real port number, and no two enabled instances
// on one (llama-server's default port counts). The gateway's own port is
// checked against them in gateway-plan.ts.
import type { LaunchPlan } from './instance-plan.ts';
import type { Report } from './issue-location.ts';

/** Reports bad and shared ports of `plan`'s instances. */
export function checkPorts(plan: LaunchPlan, report: Report): void {
  const owners = new Map<number, string>();
  for (const instance of plan.instances) {
    const at = ['instance', instance.name, 'server', 'port'];
    if (!Number.isInteger(instance.port) || instance.port < 1 || instance.port > 65535) {
      report('error', at, `expected a port number between 1 and 65535, got ${JSON.stringify(String(instance.port))}`);
      continue;
    }
    if (!instance.enabled) continue;
    const owner = owners.get(instance.port);
    if (owner !== undefined) {
      report('error', at, `port ${instance.port} is also used by instance "${owner}" (each enabled instance needs its own port)`);
    } else owners.set(instance.port, instance.name);
  }
}
