import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import claudeEnv from '../../src/cli/commands/claude-env.ts';
import { formatShellExports, makeBaseUrl, makeClaudeEnv } from '../../src/gateway/claude-env-vars.ts';
import type { GatewayPlan } from '../../src/config/gateway-plan.ts';

const gateway: GatewayPlan = {
  enabled: true,
  host: '0.0.0.0',
  port: 11899,
  apiKey: null,
  defaultInstance: 'glm',
  waitReadyMs: 60_000,
  drainTimeoutMs: 30_000,
  maxBodyBytes: 1024,
  bodyMemoryBytes: 1024,
  models: [],
};
const instances = [
  { name: 'glm', aliases: ['glm4'], enabled: true },
  { name: 'small', aliases: [], enabled: true },
];

describe('makeClaudeEnv', () => {
  it('points every family at the default instance alias; telemetry off; placeholder token without a key', () => {
    const result = makeClaudeEnv({ gateway, instances });
    expect(result).toEqual({
      ok: true,
      vars: [
        ['ANTHROPIC_BASE_URL', 'http://127.0.0.1:11899'],
        ['ANTHROPIC_AUTH_TOKEN', 'local'],
        ['ANTHROPIC_MODEL', 'glm4'],
        ['ANTHROPIC_DEFAULT_OPUS_MODEL', 'glm4'],
        ['ANTHROPIC_DEFAULT_SONNET_MODEL', 'glm4'],
        ['ANTHROPIC_DEFAULT_HAIKU_MODEL', 'glm4'],
        ['DISABLE_TELEMETRY', '1'],
        ['CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC', '1'],
      ],
    });
  });

  it('families follow [gateway.models]; --model sets the main model; the key becomes the token', () => {
    const result = makeClaudeEnv({
      gateway: { ...gateway, apiKey: 's3cret', models: [{ pattern: 'claude-*haiku*', instance: 'small' }] },
      instances,
      model: 'small',
    });
    expect(result.ok && Object.fromEntries(result.vars)).toMatchObject({
      ANTHROPIC_AUTH_TOKEN: 's3cret',
      ANTHROPIC_MODEL: 'small',
      ANTHROPIC_DEFAULT_OPUS_MODEL: 'small',
      ANTHROPIC_DEFAULT_HAIKU_MODEL: 'small',
    });
    const byAlias = makeClaudeEnv({ gateway, instances, model: 'glm4' });
    expect(byAlias.ok && Object.fromEntries(byAlias.vars).ANTHROPIC_MODEL).toBe('glm4');
  });

  it('an unknown --model, or nothing to point at, is an error', () => {
    expect(makeClaudeEnv({ gateway, instances, model: 'nope' })).toEqual({ ok: false, message: 'no instance or alias "nope" (known: glm, glm4, small)' });
    expect(makeClaudeEnv({ gateway: { ...gateway, defaultInstance: null }, instances: [] }).ok).toBe(false);
  });

  it('base URL: wildcard hosts on loopback, IPv6 in brackets', () => {
    expect(makeBaseUrl({ host: '0.0.0.0', port: 1 })).toBe('http://127.0.0.1:1');
    expect(makeBaseUrl({ host: '::', port: 1 })).toBe('http://[::1]:1');
    expect(makeBaseUrl({ host: 'fd00::2', port: 1 })).toBe('http://[fd00::2]:1');
    expect(makeBaseUrl({ host: '10.0.0.2', port: 1 })).toBe('http://10.0.0.2:1');
  });

  it('shell exports survive a round trip through sh, quotes included', () => {
    const text = formatShellExports([['A', "it's $HOME `x`"], ['B', 'plain']]);
    const out = execFileSync('sh', ['-c', `${text}printf '%s|%s' "$A" "$B"`], { encoding: 'utf8' });
    expect(out).toBe("it's $HOME `x`|plain");
  });
});

describe('supervisor claude-env (reads the config file)', () => {
  let dir: string;
  let out: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cenv-'));
    out = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints exports for the first enabled instance, or JSON with --json', async () => {
    const config = join(dir, 'c.toml');
    writeFileSync(config, '[instance.a.server]\nport = 8080\nalias = "tiny-a"\n[instance.b.server]\nport = 8081\nalias = "tiny-b"\n');
    expect(await claudeEnv({ command: 'claude-env', positionals: [], flags: { config } })).toBe(0);
    expect(out).toContain("export ANTHROPIC_BASE_URL='http://127.0.0.1:11899'\n");
    expect(out).toContain("export ANTHROPIC_MODEL='tiny-a'\n");
    out = '';
    expect(await claudeEnv({ command: 'claude-env', positionals: [], flags: { config, model: 'b', json: true } })).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ ANTHROPIC_MODEL: 'tiny-b', ANTHROPIC_DEFAULT_SONNET_MODEL: 'tiny-b', DISABLE_TELEMETRY: '1' });
  });

  it('an unknown --model is a usage error (exit 2)', async () => {
    const config = join(dir, 'c.toml');
    writeFileSync(config, '[instance.a.server]\nport = 8080\n');
    await expect(claudeEnv({ command: 'claude-env', positionals: [], flags: { config, model: 'zzz' } })).rejects.toMatchObject({ exitCode: 2 });
  });
});
