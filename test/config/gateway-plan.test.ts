import { describe, expect, it } from 'vitest';
import { GATEWAY_API_KEY_ENV, GATEWAY_DEFAULTS, GATEWAY_OFF, makeGatewayPlan } from '../../src/config/gateway-plan.ts';
import type { LaunchPlan } from '../../src/config/instance-plan.ts';
import { makeLaunchPlan } from '../../src/config/launch-plan.ts';
import type { ConfigValue } from '../../src/config/overrides.ts';
import { readToml } from '../../src/config/toml-source.ts';

const INSTANCES = `
[instance.server]
model = "/m.gguf"
[instance.glm.server]
port = 8080
alias = "glm4,glm"
[instance.small.server]
port = 8081
alias = "qwen-small"
[instance.off.control]
enabled = false
[instance.off.server]
port = 8082
`;

function launchPlan(text = INSTANCES): LaunchPlan {
  const result = makeLaunchPlan(text, { env: {}, file: 't.toml', isFile: () => false, which: () => null });
  if (!result.plan) throw new Error(JSON.stringify(result.issues));
  return result.plan;
}

// The [gateway] table as the TOML parser hands it over (integers as bigint).
function table(toml: string): ConfigValue | undefined {
  return readToml(toml).document.gateway;
}

const errors = (toml: string, env = {}) => {
  const result = makeGatewayPlan(table(toml), launchPlan(), env);
  expect(result.plan).toBeNull();
  return result.issues.filter((i) => i.severity === 'error').map((i) => ({ path: i.path.join('.'), message: i.message }));
};

describe('makeGatewayPlan', () => {
  it('defaults: enabled, 0.0.0.0:11899, no key, first enabled instance, 60 s / 30 s / 32 MiB / 96 MiB', () => {
    const { plan, issues } = makeGatewayPlan(undefined, launchPlan());
    expect(issues).toEqual([]);
    expect(plan).toEqual({
      enabled: true,
      host: '0.0.0.0',
      port: 11899,
      apiKey: null,
      defaultInstance: 'glm',
      waitReadyMs: 60_000,
      drainTimeoutMs: 30_000,
      maxBodyBytes: 32 * 1024 * 1024,
      bodyMemoryBytes: 96 * 1024 * 1024,
      models: [],
    });
    expect(GATEWAY_DEFAULTS.port).toBe(11899);
  });

  it('disabled by default when no instance is enabled (or master is off)', () => {
    expect(makeGatewayPlan(undefined, launchPlan('[instance.a.control]\nenabled = false\n')).plan?.enabled).toBe(false);
    expect(makeGatewayPlan(undefined, launchPlan(`[master]\nenable = false\n${INSTANCES}`)).plan).toMatchObject({ enabled: false, defaultInstance: null });
    expect(makeGatewayPlan(table('[gateway]\nenable = true'), launchPlan('')).plan?.enabled).toBe(true);
  });

  it('reads every key; aliases in default and models resolve to instance names; models keep document order', () => {
    const { plan, issues } = makeGatewayPlan(
      table(`[gateway]
enable = true
host = "127.0.0.1"
port = 9000
api_key = "k"
default = "qwen-small"
wait_ready_s = 1.5
drain_timeout_s = 0
max_body_bytes = 2048
body_memory_bytes = 4096
[gateway.models]
"claude-*haiku*" = "small"
"claude-*" = "glm4"
"gpt-?" = "glm"
`),
      launchPlan(),
    );
    expect(issues).toEqual([]);
    expect(plan).toEqual({
      enabled: true,
      host: '127.0.0.1',
      port: 9000,
      apiKey: 'k',
      defaultInstance: 'small',
      waitReadyMs: 1500,
      drainTimeoutMs: 0,
      maxBodyBytes: 2048,
      bodyMemoryBytes: 4096,
      models: [
        { pattern: 'claude-*haiku*', instance: 'small' },
        { pattern: 'claude-*', instance: 'glm' },
        { pattern: 'gpt-?', instance: 'glm' },
      ],
    });
  });

  it(`${GATEWAY_API_KEY_ENV} overrides api_key; an empty one does not`, () => {
    const t = table('[gateway]\napi_key = "from-file"');
    expect(makeGatewayPlan(t, launchPlan(), { [GATEWAY_API_KEY_ENV]: 'from-env' }).plan?.apiKey).toBe('from-env');
    expect(makeGatewayPlan(t, launchPlan(), { [GATEWAY_API_KEY_ENV]: '' }).plan?.apiKey).toBe('from-file');
    expect(makeGatewayPlan(undefined, launchPlan(), { [GATEWAY_API_KEY_ENV]: 'x' }).plan?.apiKey).toBe('x');
  });

  it("an instance's own api_key: without a gateway key the gateway asks for it (a warning at the key); different keys need a gateway key", () => {
    const keyed = launchPlan(`[instance.a.server]\nport = 1\napi_key = "ka"\n[instance.b.server]\nport = 2\n`);
    const adopted = makeGatewayPlan(undefined, keyed);
    expect(adopted.plan?.apiKey).toBe('ka');
    expect(adopted.issues).toEqual([{ severity: 'warning', path: ['instance', 'a', 'server', 'api_key'], message: expect.stringContaining("asks every client for this instance's key") }]);
    // A gateway key of its own (file or environment): used, nothing to say.
    expect(makeGatewayPlan(table('[gateway]\napi_key = "g"'), keyed)).toEqual({ plan: expect.objectContaining({ apiKey: 'g' }), issues: [] });
    expect(makeGatewayPlan(undefined, keyed, { [GATEWAY_API_KEY_ENV]: 'e' })).toEqual({ plan: expect.objectContaining({ apiKey: 'e' }), issues: [] });
    // A disabled gateway forwards nothing.
    expect(makeGatewayPlan(table('[gateway]\nenable = false'), keyed)).toEqual({ plan: expect.objectContaining({ apiKey: null }), issues: [] });
    // (The launch plan's own gateway is off here, so that it plans at all.)
    const two = launchPlan(`[instance.a.server]\nport = 1\napi_key = "ka"\n[instance.b.server]\nport = 2\nextra_args = ["--api-key", "kb"]\n[gateway]\nenable = false\n`);
    expect(makeGatewayPlan(undefined, two).issues).toEqual([
      { severity: 'error', path: ['gateway', 'api_key'], message: expect.stringMatching(/^instances "a", "b" demand different API keys .*set \[gateway\] api_key/) },
    ]);
  });

  it('GATEWAY_OFF is what a config without instances gives', () => {
    expect(makeGatewayPlan(undefined, { enabled: true, instances: [] }).plan).toEqual(GATEWAY_OFF);
  });

  it('default = false: unmatched models get 404', () => {
    expect(makeGatewayPlan(table('[gateway]\ndefault = false'), launchPlan()).plan?.defaultInstance).toBeNull();
  });

  it('unknown keys, wrong types and out-of-range values are errors with their key path', () => {
    expect(errors('[gateway]\nprot = 1')).toEqual([{ path: 'gateway.prot', message: expect.stringMatching(/unknown key.*port/) }]);
    expect(errors('[gateway]\nport = 70000')).toEqual([{ path: 'gateway.port', message: 'expected at most 65535, got 70000' }]);
    expect(errors('[gateway]\nport = "80"')).toEqual([{ path: 'gateway.port', message: expect.stringMatching(/expected a number, got "80"/) }]);
    expect(errors('[gateway]\nenable = "yes"')).toEqual([{ path: 'gateway.enable', message: expect.stringMatching(/expected true or false/) }]);
    expect(errors('[gateway]\nwait_ready_s = -1')).toEqual([{ path: 'gateway.wait_ready_s', message: expect.stringMatching(/at least 0/) }]);
    expect(errors('[gateway]\nmax_body_bytes = 4096\nbody_memory_bytes = 2048')).toEqual([{ path: 'gateway.body_memory_bytes', message: 'expected at least max_body_bytes (4096), got 2048: the largest body must fit' }]);
    // Unset, it grows with max_body_bytes.
    expect(makeGatewayPlan(table('[gateway]\nmax_body_bytes = 536870912'), launchPlan()).plan?.bodyMemoryBytes).toBe(536870912);
    expect(errors('[gateway]\nmax_body_bytes = 10')).toEqual([{ path: 'gateway.max_body_bytes', message: expect.stringMatching(/at least 1024/) }]);
    expect(errors('[gateway]\napi_key = ""')).toEqual([{ path: 'gateway.api_key', message: expect.any(String) }]);
    expect(errors('[gateway.models]\n"claude-*" = 3')).toEqual([{ path: 'gateway.models.claude-*', message: expect.stringMatching(/expected a string/) }]);
  });

  it('gateway that is not a table', () => {
    expect(makeGatewayPlan(5n, launchPlan()).issues).toEqual([{ severity: 'error', path: ['gateway'], message: 'expected a table ([gateway]), got 5' }]);
  });

  it('default and model targets must name an instance or alias; a disabled one is a warning', () => {
    expect(errors('[gateway]\ndefault = "nope"')).toEqual([{ path: 'gateway.default', message: 'no instance named "nope" (instances: glm, small, off)' }]);
    expect(errors('[gateway.models]\n"claude-*" = "big"\n"x" = "glm"')).toEqual([
      { path: 'gateway.models.claude-*', message: 'no instance named "big" (instances: glm, small, off)' },
    ]);
    const { plan, issues } = makeGatewayPlan(table('[gateway]\ndefault = "off"'), launchPlan());
    expect(plan?.defaultInstance).toBe('off');
    expect(issues).toEqual([{ severity: 'warning', path: ['gateway', 'default'], message: 'instance "off" is not enabled: its requests get 503' }]);
  });

  it('the gateway port must not be an enabled instance port', () => {
    expect(errors('[gateway]\nport = 8081')).toEqual([{ path: 'gateway.port', message: 'port 8081 is also used by instance "small" (the gateway needs a port of its own)' }]);
    // A disabled instance's port, or a disabled gateway, is no clash.
    expect(makeGatewayPlan(table('[gateway]\nport = 8082'), launchPlan()).plan?.port).toBe(8082);
    expect(makeGatewayPlan(table('[gateway]\nport = 8081\nenable = false'), launchPlan()).plan?.enabled).toBe(false);
  });
});
