// configureSignals in this process: listeners are driven with process.emit (no
// real signal reaches vitest); forwarding goes to a real process group.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { configureSignals, FORWARDED_SIGNALS, forwardSignal, type SignalControls, type StopSignal } from '../../src/pid1/signals.ts';
import type { Log } from '../../src/logging/log.ts';

let controls: SignalControls | null = null;
const children: ChildProcess[] = [];

afterEach(() => {
  controls?.dispose();
  controls = null;
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** A logger that keeps each line. */
function recordingLog(): Log & { lines: { level: string; event: unknown; msg: string }[] } {
  const lines: { level: string; event: unknown; msg: string }[] = [];
  const at = (level: string) => (fields: object, msg: string) => lines.push({ level, event: (fields as { event?: unknown }).event, msg });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function setUp({ forwardTo = () => null as number | null } = {}) {
  const calls: string[] = [];
  const log = recordingLog();
  controls = configureSignals({
    onStop: (signal) => calls.push(`stop:${signal}`),
    onReload: () => calls.push('reload'),
    onEscalate: (signal: StopSignal) => calls.push(`escalate:${signal}`),
    forwardTo,
    log,
  });
  return { calls, log, controls };
}

/** A process group of its own that records every forwarded signal it gets (and survives them). */
async function startSignalRecorder(): Promise<{ child: ChildProcess; received: () => string[] }> {
  const script = `
    const names = ${JSON.stringify(FORWARDED_SIGNALS)};
    for (const name of names) process.on(name, () => process.stdout.write(name + '\\n'));
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (chunk) => (out += chunk));
  await waitFor(() => out.includes('ready\n'));
  return { child, received: () => out.split('\n').filter((l) => l.startsWith('SIG')) };
}

async function waitFor(probe: () => boolean, limitMs = 5000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('configureSignals', () => {
  it('SIGTERM stops once; a second SIGTERM or SIGINT during the stop escalates', () => {
    const { calls, controls } = setUp();
    expect(controls.stopping).toBe(false);
    process.emit('SIGTERM', 'SIGTERM');
    expect(controls.stopping).toBe(true);
    process.emit('SIGINT', 'SIGINT');
    process.emit('SIGTERM', 'SIGTERM');
    expect(calls).toEqual(['stop:SIGTERM', 'escalate:SIGINT', 'escalate:SIGTERM']);
  });

  it('SIGINT stops too', () => {
    const { calls } = setUp();
    process.emit('SIGINT', 'SIGINT');
    expect(calls).toEqual(['stop:SIGINT']);
  });

  it('SIGHUP reloads, but not once stopping', () => {
    const { calls, log } = setUp();
    process.emit('SIGHUP', 'SIGHUP');
    process.emit('SIGHUP', 'SIGHUP');
    process.emit('SIGTERM', 'SIGTERM');
    process.emit('SIGHUP', 'SIGHUP');
    expect(calls).toEqual(['reload', 'reload', 'stop:SIGTERM']);
    expect(log.lines.map((l) => l.event)).toContain('reload-ignored');
  });

  it('SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH neither stop nor reload', () => {
    const { calls } = setUp();
    for (const signal of ['SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const) process.emit(signal, signal);
    expect(calls).toEqual([]);
  });

  it('forwards all seven signals to the main process group; a second stop signal escalates instead', async () => {
    const { child, received } = await startSignalRecorder();
    const { calls } = setUp({ forwardTo: () => child.pid! });
    const order = ['SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGINT', 'SIGTERM'] as const;
    expect([...order].sort()).toEqual([...FORWARDED_SIGNALS].sort());
    for (const signal of order.slice(0, -1)) {
      process.emit(signal, signal);
      // One at a time: signals are not queued, two of a kind may merge.
      await waitFor(() => received().includes(signal));
    }
    process.emit('SIGTERM', 'SIGTERM');
    expect(received()).toEqual(order.slice(0, -1));
    expect(calls).toEqual(['reload', 'stop:SIGINT', 'escalate:SIGTERM']);
  });

  it('does not forward when there is no main process', () => {
    const { calls, log } = setUp({ forwardTo: () => null });
    process.emit('SIGUSR1', 'SIGUSR1');
    expect(calls).toEqual([]);
    expect(log.lines).toEqual([]);
  });

  it('removes its listeners on dispose', () => {
    const before = process.listenerCount('SIGTERM');
    const { controls } = setUp();
    expect(process.listenerCount('SIGTERM')).toBe(before + 1);
    controls.dispose();
    expect(process.listenerCount('SIGTERM')).toBe(before);
  });
});

describe('forwardSignal', () => {
  it('warns and returns false when the group is gone (ESRCH)', async () => {
    const child = spawn('true', { detached: true });
    await new Promise((resolve) => child.on('exit', resolve));
    const log = recordingLog();
    expect(forwardSignal({ pgid: child.pid!, signal: 'SIGUSR1', log })).toBe(false);
    expect(log.lines).toEqual([{ level: 'warn', event: 'forward-gone', msg: `main process group ${child.pid} was gone when forwarding SIGUSR1` }]);
  });

  it.each([0, 1, -5, 1.5])('refuses pgid %d (kill(-1) or kill(0) would hit far more than the main process)', (pgid) => {
    expect(() => forwardSignal({ pgid, signal: 'SIGTERM' })).toThrow(RangeError);
  });
});
