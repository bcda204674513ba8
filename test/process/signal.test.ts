// Signals to a process group: every member is reached, a gone group is an
// answer (false), and the targets that would hit us or init are refused.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/process/proc.ts';
import { sendSignal, signalGroup } from '../../src/process/signal.ts';

const SLEEPER = ['-e', 'setInterval(()=>{},1e6)'];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

function start(detached: boolean): ChildProcess {
  const child = spawn(process.execPath, SLEEPER, { stdio: 'ignore', detached });
  children.push(child);
  return child;
}

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve({ code: child.exitCode, signal: child.signalCode })
    : new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));

describe('signalGroup', () => {
  it('signals every process of a detached group, then reports the group gone', async () => {
    const leader = start(true);
    const pid = leader.pid!;
    expect(isAlive(pid)).toBe(true);
    expect(signalGroup(pid, 'SIGTERM')).toBe(true);
    expect(await exited(leader)).toEqual({ code: null, signal: 'SIGTERM' });
    expect(isAlive(pid)).toBe(false);
    expect(signalGroup(pid, 'SIGTERM')).toBe(false);
  });

  it('never falls back to the bare pid: a process that leads no group is not reached', async () => {
    // Not detached: the child is in our group, so there is no group -pid.
    const child = start(false);
    expect(signalGroup(child.pid!, 'SIGKILL')).toBe(false);
    expect(isAlive(child.pid!)).toBe(true);
    // Negative control: the pid itself is there to be signalled.
    expect(sendSignal(child.pid!, 'SIGKILL')).toBe(true);
    expect(await exited(child)).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('refuses pgid 0 and 1, which would hit our own group or init', () => {
    expect(() => signalGroup(0, 'SIGTERM')).toThrow(/pgid must be an integer >= 2, received 0/);
    expect(() => signalGroup(1, 'SIGTERM')).toThrow(/received 1/);
  });

  it('sendSignal: ESRCH is false, other errors are thrown', () => {
    // 2**22 + 1 is above the kernel's pid_max limit: no such process.
    expect(sendSignal(4_194_305, 0)).toBe(false);
    expect(() => sendSignal(process.pid, 'SIGNOPE' as NodeJS.Signals)).toThrow();
  });
});
