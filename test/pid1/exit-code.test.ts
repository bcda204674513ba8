import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { exitCodeFor, signalName, signalNumber } from '../../src/pid1/exit-code.ts';
import { decodeWaitStatus } from '../../src/pid1/libc.ts';

const ALL_CODES = Array.from({ length: 256 }, (_, code) => code);
// Every signal Node names (aliases included), then the real-time ones by number.
const NAMED_SIGNALS = Object.entries(constants.signals) as [NodeJS.Signals, number][];
const REALTIME_SIGNALS = Array.from({ length: 64 - 32 + 1 }, (_, i) => 32 + i);

describe('exitCodeFor (tini: the code, 128 + signal, 127/126 when exec fails)', () => {
  it('passes every exit code 0..255 through unchanged', () => {
    const got = ALL_CODES.map((code) => exitCodeFor({ code, signal: null }));
    expect(got).toEqual(ALL_CODES);
  });

  it('reports 128 + the signal number for every named signal', () => {
    const got = NAMED_SIGNALS.map(([name, n]) => [name, exitCodeFor({ code: null, signal: name })]);
    expect(got).toEqual(NAMED_SIGNALS.map(([name, n]) => [name, 128 + n]));
    expect(exitCodeFor({ code: null, signal: 'SIGKILL' })).toBe(137);
    expect(exitCodeFor({ code: null, signal: 'SIGTERM' })).toBe(143);
    expect(exitCodeFor({ code: null, signal: 'SIGINT' })).toBe(130);
  });

  it('reports 128 + n for signals given by number, real-time ones included', () => {
    const numbers = [...NAMED_SIGNALS.map(([, n]) => n), ...REALTIME_SIGNALS];
    expect(numbers.map((n) => exitCodeFor({ code: null, signal: n }))).toEqual(numbers.map((n) => 128 + n));
  });

  it.each([
    ['ENOENT', 127],
    ['EACCES', 126],
    ['ENOEXEC', 126],
    ['EISDIR', 126],
    ['ETXTBSY', 126],
  ])('exec failing with %s gives %i, whatever else is set', (code, expected) => {
    expect(exitCodeFor({ code: null, signal: null, spawnError: { code } })).toBe(expected);
    expect(exitCodeFor({ code: 0, signal: null, spawnError: { code } })).toBe(expected);
  });

  it('keeps codes outside 0..255 to their low 8 bits, as the kernel does', () => {
    expect(exitCodeFor({ code: 256, signal: null })).toBe(0);
    expect(exitCodeFor({ code: -1, signal: null })).toBe(255);
  });

  it('refuses an exit with neither code nor signal', () => {
    expect(() => exitCodeFor({ code: null, signal: null })).toThrow(/neither an exit code nor a signal/);
  });

  it('names signals both ways', () => {
    expect(signalNumber('SIGUSR1')).toBe(constants.signals.SIGUSR1);
    expect(signalName(constants.signals.SIGABRT)).toBe('SIGABRT');
    expect(signalName(40)).toBe('SIG40');
    expect(() => signalNumber('SIGNOPE' as NodeJS.Signals)).toThrow(/unknown signal/);
  });
});

describe('decodeWaitStatus, then exitCodeFor (the path a reaped main process takes)', () => {
  it('decodes every exited status (code << 8)', () => {
    const got = ALL_CODES.map((code) => exitCodeFor({ code: decodeWaitStatus(code << 8).code, signal: null }));
    expect(got).toEqual(ALL_CODES);
  });

  it('decodes every killed status (signal in the low 7 bits, 0x80 = core dumped)', () => {
    const signals = Array.from({ length: 64 }, (_, i) => i + 1);
    for (const core of [0, 0x80]) {
      const decoded = signals.map((n) => decodeWaitStatus(n | core));
      expect(decoded.map((d) => exitCodeFor({ code: d.code, signal: d.signo }))).toEqual(signals.map((n) => 128 + n));
      expect(decoded.every((d) => d.code === null && d.coreDumped === (core !== 0))).toBe(true);
    }
    expect(decodeWaitStatus(9).signal).toBe('SIGKILL');
  });

  it('refuses a stopped status (never asked for: no WUNTRACED)', () => {
    expect(() => decodeWaitStatus((19 << 8) | 0x7f)).toThrow(/stop/);
  });
});
