import { describe, expect, it } from 'vitest';
import { readBool, readSeconds, readText } from '../../src/boot/env-flags.ts';

describe('readBool', () => {
  const cases: Array<[string | undefined, boolean, boolean, boolean]> = [
    // value, default, expected, warns
    [undefined, false, false, false],
    [undefined, true, true, false],
    ['1', false, true, false],
    ['true', false, true, false],
    ['TRUE', false, true, false],
    ['Yes', false, true, false],
    ['on', false, true, false],
    [' On ', false, true, false],
    ['0', true, false, false],
    ['false', true, false, false],
    ['No', true, false, false],
    ['OFF', true, false, false],
    ['', true, false, false],
    ['maybe', false, false, true],
    ['maybe', true, false, true],
    ['2', true, false, true],
    ['enabled', false, false, true],
  ];
  it.each(cases)('%j (default %j) → %j', (raw, fallback, expected, warns) => {
    const env = raw === undefined ? {} : { FLAG: raw };
    const result = readBool(env, 'FLAG', fallback);
    expect(result.value).toBe(expected);
    if (warns) expect(result.warning).toBe(`FLAG=${JSON.stringify(raw)} is not a boolean (on: 1, true, yes, on; off: 0, false, no, off, empty); treating it as off`);
    else expect(result.warning).toBeUndefined();
  });
});

describe('readSeconds', () => {
  it.each([
    [undefined, 300, false],
    ['', 300, false],
    ['30', 30, false],
    ['0.5', 0.5, false],
    ['0', 300, true],
    ['-1', 300, true],
    ['soon', 300, true],
  ])('%j → %j', (raw, expected, warns) => {
    const result = readSeconds(raw === undefined ? {} : { T: raw }, 'T', 300);
    expect(result.value).toBe(expected);
    expect(result.warning !== undefined).toBe(warns);
    if (warns) expect(result.warning).toContain(`T=${JSON.stringify(raw)}`);
  });
});

describe('readText', () => {
  it('treats unset and blank alike and trims', () => {
    expect(readText({}, 'X')).toBeNull();
    expect(readText({ X: '  ' }, 'X')).toBeNull();
    expect(readText({ X: ' /a b ' }, 'X')).toBe('/a b');
  });
});
