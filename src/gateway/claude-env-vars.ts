// The environment Claude Code needs to use the gateway, computed from the
// gateway plan and the instances: the base URL, the credential, the main model
// and, per model family (opus/sonnet/haiku), the alias the gateway routes that
// family to. Telemetry and other non-essential traffic are switched off so the
// CLI never waits on api.anthropic.com.
import type { GatewayPlan } from '../config/gateway-plan.ts';
import { makeRouteTable, type RouteTarget } from './route-table.ts';

/** Claude Code's default model names per family (2.1.197 and 2.1.332), used to ask the route table where each family goes. */
const FAMILY_PROBES = {
  OPUS: 'claude-opus-4-8',
  SONNET: 'claude-sonnet-4-6',
  HAIKU: 'claude-haiku-4-5-20251001',
} as const;

/** Sent as ANTHROPIC_AUTH_TOKEN when the gateway asks for no key: Claude Code wants some credential, or it asks to log in. */
const NO_KEY_TOKEN = 'local';

export interface ClaudeEnvInstance extends RouteTarget {
  enabled: boolean;
}

export type ClaudeEnvResult = { ok: true; vars: [string, string][] } | { ok: false; message: string };

/** The variables, in print order, or why they cannot be made (an unknown --model, no instance at all). */
export function makeClaudeEnv({
  gateway,
  instances,
  model,
}: {
  gateway: GatewayPlan;
  instances: readonly ClaudeEnvInstance[];
  /** `--model`: an instance name or alias for ANTHROPIC_MODEL; default: the gateway's default instance. */
  model?: string;
}): ClaudeEnvResult {
  const byName = new Map(instances.map((i) => [i.name, i]));
  // The name Claude Code sends for an instance: its first alias, else its name.
  const modelName = (instance: string) => byName.get(instance)?.aliases[0] ?? instance;

  let main: string;
  if (model !== undefined) {
    const found = instances.find((i) => i.name === model || i.aliases.includes(model));
    if (!found) return { ok: false, message: `no instance or alias "${model}" (known: ${listKnown(instances)})` };
    main = found.name === model ? modelName(found.name) : model;
  } else {
    const fallback = gateway.defaultInstance ?? instances.find((i) => i.enabled)?.name;
    if (fallback === undefined) return { ok: false, message: 'no enabled instance and no [gateway] default: nothing to point Claude Code at' };
    main = modelName(fallback);
  }

  // Only the patterns decide a family; anything they do not match goes to the main model.
  const patterns = makeRouteTable({ targets: [], models: gateway.models, defaultInstance: null });
  const family = (probe: string) => {
    const route = patterns.resolve(probe);
    return route === null ? main : modelName(route.instance);
  };

  const vars: [string, string][] = [
    ['ANTHROPIC_BASE_URL', makeBaseUrl(gateway)],
    ['ANTHROPIC_AUTH_TOKEN', gateway.apiKey ?? NO_KEY_TOKEN],
    ['ANTHROPIC_MODEL', main],
    ['ANTHROPIC_DEFAULT_OPUS_MODEL', family(FAMILY_PROBES.OPUS)],
    ['ANTHROPIC_DEFAULT_SONNET_MODEL', family(FAMILY_PROBES.SONNET)],
    ['ANTHROPIC_DEFAULT_HAIKU_MODEL', family(FAMILY_PROBES.HAIKU)],
    ['DISABLE_TELEMETRY', '1'],
    ['CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC', '1'],
  ];
  return { ok: true, vars };
}

/** The URL a client on this machine uses: a wildcard listen address is reached on loopback. */
export function makeBaseUrl({ host, port }: Pick<GatewayPlan, 'host' | 'port'>): string {
  let reach = host;
  if (host === '0.0.0.0' || host === '') reach = '127.0.0.1';
  else if (host === '::' || host === '[::]') reach = '[::1]';
  else if (host.includes(':') && !host.startsWith('[')) reach = `[${host}]`;
  return `http://${reach}:${port}`;
}

/** `export NAME='value'` lines for a POSIX shell. */
export function formatShellExports(vars: readonly [string, string][]): string {
  return vars.map(([name, value]) => `export ${name}='${value.replaceAll("'", "'\\''")}'\n`).join('');
}

function listKnown(instances: readonly ClaudeEnvInstance[]): string {
  return instances.flatMap((i) => [i.name, ...i.aliases]).join(', ') || 'none';
}
