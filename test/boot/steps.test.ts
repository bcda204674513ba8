import { describe, expect, it } from 'vitest';
import { BootRecorder, formatBootSteps, formatStepDuration, readOnBootError, shouldExitOnFailure } from '../../src/boot/steps.ts';

describe('BootRecorder', () => {
  it('shows a step as running until it finishes, then records its state and duration', () => {
    let now = Date.parse('2026-01-02T03:04:05.000Z');
    const recorder = new BootRecorder({ now: () => now });
    const seen: string[] = [];
    recorder.onChange((rows) => seen.push(rows.map((r) => `${r.name}:${r.state}`).join(',')));
    const finish = recorder.begin('hook a');
    expect(recorder.rows()).toEqual([{ name: 'hook a', state: 'running', started_at: '2026-01-02T03:04:05.000Z', duration_ms: null, message: '' }]);
    now += 1500;
    finish('failed', 'exit code 3');
    recorder.add({ name: 'link /soft/app', state: 'ok', message: '-> /hard/image/app', startedAt: now, durationMs: 2 });
    expect(recorder.rows()).toEqual([
      { name: 'hook a', state: 'failed', started_at: '2026-01-02T03:04:05.000Z', duration_ms: 1500, message: 'exit code 3' },
      { name: 'link /soft/app', state: 'ok', started_at: '2026-01-02T03:04:06.500Z', duration_ms: 2, message: '-> /hard/image/app' },
    ]);
    expect(recorder.failures().map((r) => r.name)).toEqual(['hook a']);
    expect(seen).toEqual(['hook a:running', 'hook a:failed', 'hook a:failed,link /soft/app:ok']);
    expect(() => finish('ok', 'again')).toThrow(/finished twice/);
  });

  it('hands out copies, not its own rows', () => {
    const recorder = new BootRecorder();
    recorder.add({ name: 'x', state: 'ok', message: 'm' });
    recorder.rows()[0].state = 'failed';
    expect(recorder.rows()[0].state).toBe('ok');
  });
});

describe('formatBootSteps', () => {
  it('prints aligned rows and a blank line; nothing without rows', () => {
    expect(formatBootSteps([])).toBe('');
    const text = formatBootSteps([
      { name: 'link /soft/app', state: 'ok', started_at: '', duration_ms: 3, message: '-> /hard/image/app' },
      { name: 'hook stage-1/on-first-run.d/10-a', state: 'failed', started_at: '', duration_ms: 61_000, message: 'exit code 3\nsecond line' },
      { name: 'sshd', state: 'running', started_at: '', duration_ms: null, message: '' },
    ]);
    expect(text).toBe(
      [
        'BOOT STEP                         RESULT   TOOK  DETAIL',
        'link /soft/app                    ok       3ms   -> /hard/image/app',
        'hook stage-1/on-first-run.d/10-a  failed   1m1s  exit code 3 | second line',
        'sshd                              running  -',
      ].join('\n') + '\n\n',
    );
  });

  it('cuts long details', () => {
    const text = formatBootSteps([{ name: 'x', state: 'ok', started_at: '', duration_ms: 0, message: 'y'.repeat(300) }]);
    expect(text.split('\n')[1].endsWith(`${'y'.repeat(97)}...`)).toBe(true);
  });

  it.each([
    [null, '-'],
    [0, '0ms'],
    [999, '999ms'],
    [1234, '1.2s'],
    [125_000, '2m5s'],
  ])('duration %j → %s', (ms, text) => expect(formatStepDuration(ms)).toBe(text));
});

describe('SUPERVISOR_ON_BOOT_ERROR', () => {
  it.each([
    [undefined, false, false],
    ['', false, false],
    ['continue', false, false],
    ['exit', true, false],
    ['EXIT', true, false],
    ['stop', false, true],
  ])('%j → exit %j', (raw, exits, warns) => {
    const env = raw === undefined ? {} : { SUPERVISOR_ON_BOOT_ERROR: raw };
    expect(shouldExitOnFailure(env)).toBe(exits);
    expect(readOnBootError(env).warning !== undefined).toBe(warns);
  });
});
