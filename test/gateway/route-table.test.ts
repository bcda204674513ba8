import { describe, expect, it } from 'vitest';
import { compileGlob, normalizeModelName } from '../../src/gateway/glob.ts';
import { makeRouteTable } from '../../src/gateway/route-table.ts';

describe('compileGlob', () => {
  const cases: [string, string, boolean][] = [
    ['claude-*', 'claude-sonnet-4-6', true],
    ['claude-*', 'claude-', true],
    ['claude-*', 'anthropic/claude-x', false],
    ['claude-*haiku*', 'claude-haiku-4-5-20251001', true],
    ['claude-*haiku*', 'claude-3-5-haiku-20241022', true],
    ['claude-*haiku*', 'claude-sonnet-4-6', false],
    ['gpt-?', 'gpt-4', true],
    ['gpt-?', 'gpt-4o', false],
    ['a.b', 'a.b', true],
    ['a.b', 'axb', false],
    ['(x)+[y]', '(x)+[y]', true],
    ['CLAUDE-*', 'claude-opus', true],
    ['*', '', true],
    ['exact', 'exact\n', false],
  ];
  it.each(cases)('%s vs %j → %s', (pattern, name, expected) => {
    expect(compileGlob(pattern).test(name)).toBe(expected);
  });
});

describe('normalizeModelName', () => {
  it('trims, lower-cases and drops the [1m] context suffix', () => {
    expect(normalizeModelName(' Claude-Sonnet-4-6[1m] ')).toBe('claude-sonnet-4-6');
    expect(normalizeModelName('tiny-a')).toBe('tiny-a');
  });
});

describe('makeRouteTable', () => {
  const table = makeRouteTable({
    targets: [
      { name: 'glm', aliases: ['glm4', 'GLM-Big'] },
      { name: 'small', aliases: ['qwen'] },
      { name: 'qwen', aliases: [] }, // a name wins over another instance's alias
    ],
    models: [
      { pattern: 'claude-*haiku*', instance: 'small' },
      { pattern: 'claude-*', instance: 'glm' },
    ],
    defaultInstance: 'small',
  });

  it('names, then aliases (case-insensitive), then the first matching pattern, then the default', () => {
    expect(table.resolve('glm')).toEqual({ instance: 'glm', via: 'name' });
    expect(table.resolve('glm-big')).toEqual({ instance: 'glm', via: 'alias' });
    expect(table.resolve('qwen')).toEqual({ instance: 'qwen', via: 'name' });
    expect(table.resolve('claude-haiku-4-5-20251001')).toEqual({ instance: 'small', via: 'pattern' });
    expect(table.resolve('claude-opus-4-8[1m]')).toEqual({ instance: 'glm', via: 'pattern' });
    expect(table.resolve('gpt-4o')).toEqual({ instance: 'small', via: 'default' });
  });

  it('a missing or non-string model goes to the default', () => {
    expect(table.resolve(undefined)).toEqual({ instance: 'small', via: 'default' });
    expect(table.resolve(42)).toEqual({ instance: 'small', via: 'default' });
    expect(table.resolve('  ')).toEqual({ instance: 'small', via: 'default' });
  });

  it('the same name resolves the same way again (pattern results are remembered)', () => {
    for (let i = 0; i < 3; i++) expect(table.resolve('claude-sonnet-4-6')).toEqual({ instance: 'glm', via: 'pattern' });
  });

  it('no default: unmatched names resolve to null', () => {
    const strict = makeRouteTable({ targets: [{ name: 'a', aliases: ['tiny-a'] }], models: [], defaultInstance: null });
    expect(strict.resolve('claude-opus-4-8')).toBeNull();
    expect(strict.resolve(undefined)).toBeNull();
    expect(strict.known).toEqual(['a', 'tiny-a']);
  });

  it('ids: each alias and name once, then each pattern', () => {
    expect(table.ids).toEqual([
      { id: 'glm4', instance: 'glm', via: 'alias' },
      { id: 'GLM-Big', instance: 'glm', via: 'alias' },
      { id: 'glm', instance: 'glm', via: 'name' },
      { id: 'qwen', instance: 'small', via: 'alias' },
      { id: 'small', instance: 'small', via: 'name' },
      { id: 'claude-*haiku*', instance: 'small', via: 'pattern' },
      { id: 'claude-*', instance: 'glm', via: 'pattern' },
    ]);
  });
});
