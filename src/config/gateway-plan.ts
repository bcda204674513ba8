// The `[gateway]` table: its zod schema (also part of the JSON Schema for
// editors) and the pure step from the table and the launch plan to the
// gateway's plan. Defaults live in one literal; every problem is reported
// with its key path, nothing is clamped.
import * as z from 'zod/mini';
import type { LaunchPlan } from './instance-plan.ts';
import { isTable, type ConfigValue } from './overrides.ts';
import { checkTable, describeValue } from './zod-issues.ts';

/** The environment variable that sets (and overrides) `[gateway] api_key`. */
export const GATEWAY_API_KEY_ENV = 'SUPERVISOR_GATEWAY_API_KEY';

/** Defaults of `[gateway]`, in one place. */
export const GATEWAY_DEFAULTS = Object.freeze({
  /** 0.0.0.0 so the container's published port reaches it. */
  host: '0.0.0.0',
  /** The port upstream's LiteLLM proxy used, so existing clients keep working. */
  port: 11899,
  waitReadyS: 60,
  drainTimeoutS: 30,
  maxBodyBytes: 32 * 1024 * 1024,
  /** All bodies being read or forwarded, together: a few of the largest at once. */
  bodyMemoryBytes: 96 * 1024 * 1024,
});

/** `[gateway]`. */
export const gatewaySchema = z.partial(
  z.strictObject({
    enable: z.boolean().check(z.describe('Run the gateway (default: true when at least one instance is enabled)')),
    host: z.string().check(z.minLength(1), z.describe('Listen address (default 0.0.0.0, so a published port works)')),
    port: z.number().check(z.int(), z.minimum(1), z.maximum(65535), z.describe('Listen port (default 11899)')),
    api_key: z
      .string()
      .check(
        z.minLength(1),
        z.describe(
          `Key every request except health must carry (x-api-key or Authorization: Bearer); ${GATEWAY_API_KEY_ENV} overrides it. Default: none, or the instances' own api_key when they have one`,
        ),
      ),
    default: z
      .union([z.string().check(z.minLength(1)), z.literal(false)])
      .check(z.describe('Instance (name or alias) for models nothing else matches (default: the first enabled instance; false: none, 404)')),
    wait_ready_s: z
      .number()
      .check(z.minimum(0), z.maximum(3600), z.describe('Hold a request this long for a starting instance, then 503 (default 60)')),
    drain_timeout_s: z
      .number()
      .check(z.minimum(0), z.maximum(3600), z.describe('Restarts and reloads wait this long for in-flight requests to finish (default 30)')),
    max_body_bytes: z
      .number()
      .check(
        z.int(),
        z.minimum(1024),
        z.maximum(1024 * 1024 * 1024),
        z.describe('Largest request body; more is 413 (default 33554432 = 32 MiB)'),
      ),
    body_memory_bytes: z
      .number()
      .check(
        z.int(),
        z.minimum(1024),
        z.maximum(64 * 1024 * 1024 * 1024),
        z.describe(
          'Memory for request bodies, all requests together; a body that does not fit waits its turn (up to wait_ready_s, at most 30 s), then 503 (default 100663296 = 96 MiB, at least max_body_bytes)',
        ),
      ),
    models: z
      .record(z.string().check(z.minLength(1)), z.string().check(z.minLength(1)))
      .check(z.describe('Glob pattern → instance name or alias, first match wins, e.g. "claude-*haiku*" = "small"')),
  }),
);

/** One `[gateway.models]` rule, in document order. */
export interface ModelRule {
  pattern: string;
  /** The instance name (an alias in the config is resolved to its instance). */
  instance: string;
}

/** Everything the gateway needs, resolved from the config. */
export interface GatewayPlan {
  enabled: boolean;
  host: string;
  port: number;
  /** null: no key is asked for. */
  apiKey: string | null;
  /** The instance for unmatched models; null: they get 404. */
  defaultInstance: string | null;
  waitReadyMs: number;
  drainTimeoutMs: number;
  maxBodyBytes: number;
  /** The memory all request bodies may hold at once (>= maxBodyBytes). */
  bodyMemoryBytes: number;
  models: ModelRule[];
}

/** The plan of a gateway that is off (a launch plan without one: no config yet, or nothing enabled). */
export const GATEWAY_OFF: Readonly<GatewayPlan> = Object.freeze({
  enabled: false,
  host: GATEWAY_DEFAULTS.host,
  port: GATEWAY_DEFAULTS.port,
  apiKey: null,
  defaultInstance: null,
  waitReadyMs: GATEWAY_DEFAULTS.waitReadyS * 1000,
  drainTimeoutMs: GATEWAY_DEFAULTS.drainTimeoutS * 1000,
  maxBodyBytes: GATEWAY_DEFAULTS.maxBodyBytes,
  bodyMemoryBytes: GATEWAY_DEFAULTS.bodyMemoryBytes,
  models: [],
});

/** One problem in `[gateway]`: dotted key path as a list (`['gateway', 'models', 'claude-*']`). */
export interface GatewayConfigIssue {
  severity: 'error' | 'warning';
  path: string[];
  message: string;
}

export interface GatewayPlanResult {
  /** null when there is at least one error. */
  plan: GatewayPlan | null;
  issues: GatewayConfigIssue[];
}

/** Turns the `[gateway]` table (undefined when absent) and the launch plan into the gateway's plan, or its errors. */
export function makeGatewayPlan(
  table: ConfigValue | undefined,
  launchPlan: Pick<LaunchPlan, 'enabled' | 'instances'>,
  env: Readonly<Record<string, string | undefined>> = {},
): GatewayPlanResult {
  const issues: GatewayConfigIssue[] = [];
  const error = (path: string[], message: string) => issues.push({ severity: 'error', path: ['gateway', ...path], message });
  const warn = (path: string[], message: string) => issues.push({ severity: 'warning', path: ['gateway', ...path], message });
  if (table !== undefined && !isTable(table)) {
    error([], `expected a table ([gateway]), got ${describeValue(table)}`);
    return { plan: null, issues };
  }
  const parsed = checkTable(gatewaySchema, table ?? {});
  if (!parsed.ok) {
    for (const issue of parsed.issues) error(issue.path, issue.message);
    return { plan: null, issues };
  }
  const t = parsed.data;
  const resolver = makeInstanceResolver(launchPlan);
  // RPC workers serve their leader, never a client: not a default, not a target.
  const enabledInstances = launchPlan.enabled ? launchPlan.instances.filter((i) => i.enabled && i.engine !== 'rpc-worker') : [];

  // A config name (or alias) → instance name, with the problems reported where the name was written.
  const resolveTarget = (path: string[], value: string): string | null => {
    const name = resolver.resolve(value);
    if (name === null) {
      error(path, `no instance named "${value}" (instances: ${resolver.describe()})`);
      return null;
    }
    if (!enabledInstances.some((i) => i.name === name)) warn(path, `instance "${name}" is not enabled: its requests get 503`);
    return name;
  };

  let defaultInstance: string | null = enabledInstances[0]?.name ?? null;
  if (t.default === false) defaultInstance = null;
  else if (t.default !== undefined) defaultInstance = resolveTarget(['default'], t.default);

  const models: ModelRule[] = [];
  for (const [pattern, target] of Object.entries(t.models ?? {})) {
    const instance = resolveTarget(['models', pattern], target);
    if (instance !== null) models.push({ pattern, instance });
  }

  const enabled = t.enable ?? enabledInstances.length > 0;
  const port = t.port ?? GATEWAY_DEFAULTS.port;
  const clash = enabledInstances.find((i) => i.port === port);
  if (enabled && clash) error(['port'], `port ${port} is also used by instance "${clash.name}" (the gateway needs a port of its own)`);

  const maxBodyBytes = t.max_body_bytes ?? GATEWAY_DEFAULTS.maxBodyBytes;
  if (t.body_memory_bytes !== undefined && t.body_memory_bytes < maxBodyBytes) {
    error(['body_memory_bytes'], `expected at least max_body_bytes (${maxBodyBytes}), got ${t.body_memory_bytes}: the largest body must fit`);
  }

  const envKey = env[GATEWAY_API_KEY_ENV];
  let apiKey = envKey !== undefined && envKey !== '' ? envKey : (t.api_key ?? null);
  if (apiKey === null && enabled) apiKey = adoptInstanceKey(enabledInstances, issues);
  const plan: GatewayPlan = {
    enabled,
    host: t.host ?? GATEWAY_DEFAULTS.host,
    port,
    apiKey,
    defaultInstance,
    waitReadyMs: Math.round((t.wait_ready_s ?? GATEWAY_DEFAULTS.waitReadyS) * 1000),
    drainTimeoutMs: Math.round((t.drain_timeout_s ?? GATEWAY_DEFAULTS.drainTimeoutS) * 1000),
    maxBodyBytes,
    bodyMemoryBytes: t.body_memory_bytes ?? Math.max(GATEWAY_DEFAULTS.bodyMemoryBytes, maxBodyBytes),
    models,
  };
  return { plan: issues.some((i) => i.severity === 'error') ? null : plan, issues };
}

// The gateway sends each instance its own key: without a key of its own it would
// let anyone through to an instance that demands one. So it asks for the
// instances' key itself; instances with different keys need a gateway key.
function adoptInstanceKey(instances: LaunchPlan['instances'], issues: GatewayConfigIssue[]): string | null {
  const keyed = instances.filter((i) => (i.apiKey ?? null) !== null);
  const keys = new Set(keyed.map((i) => i.apiKey));
  if (keys.size > 1) {
    const names = keyed.map((i) => `"${i.name}"`).join(', ');
    issues.push({
      severity: 'error',
      path: ['gateway', 'api_key'],
      message: `instances ${names} demand different API keys and the gateway has no key of its own: set [gateway] api_key (or ${GATEWAY_API_KEY_ENV}); clients send it, the gateway sends each instance its own`,
    });
    return null;
  }
  for (const i of keyed) {
    issues.push({
      severity: 'warning',
      path: ['instance', i.name, 'server', 'api_key'],
      message: `instance "${i.name}" demands an API key and [gateway] has none (nor ${GATEWAY_API_KEY_ENV}): the gateway asks every client for this instance's key`,
    });
  }
  return keyed[0]?.apiKey ?? null;
}

// Instance names win over aliases; an alias shared by two instances is taken by the first.
function makeInstanceResolver(launchPlan: Pick<LaunchPlan, 'instances'>): { resolve(value: string): string | null; describe(): string } {
  const byName = new Map<string, string>();
  // An RPC worker is no model server: no client request resolves to it.
  const instances = launchPlan.instances.filter((i) => i.engine !== 'rpc-worker');
  for (const instance of instances) byName.set(instance.name, instance.name);
  for (const instance of instances) {
    for (const alias of instance.aliases ?? []) if (!byName.has(alias)) byName.set(alias, instance.name);
  }
  return {
    resolve: (value) => byName.get(value) ?? null,
    describe: () => instances.map((i) => i.name).join(', ') || 'none',
  };
}
