// The tracker that tells the reaper which pids libuv owns.
import { exec, execFile, fork, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { trackChildProcesses, type ChildTracker } from '../../src/pid1/child-tracker.ts';

let tracker: ChildTracker | null = null;
const dir = mkdtempSync(join(tmpdir(), 'pid1-tracker-'));
const FORKED = join(dir, 'forked.mjs');
writeFileSync(FORKED, 'setTimeout(() => {}, 200);\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  tracker?.dispose();
  tracker = null;
});

const exited = (child: { once(event: 'exit', listener: () => void): unknown }) => new Promise<void>((resolve) => child.once('exit', () => resolve()));

describe('trackChildProcesses', () => {
  it.each([
    ['spawn', () => spawn('sleep', ['0.2'])],
    ['exec', () => exec('sleep 0.2')],
    ['execFile', () => execFile('sleep', ['0.2'])],
    ['fork', () => fork(FORKED)],
  ])('tracks a child made with %s from spawn until libuv reports its exit', async (_name, make) => {
    tracker = trackChildProcesses();
    const child = make();
    expect(tracker.isTracked(child.pid!)).toBe(true);
    await exited(child);
    expect(tracker.isTracked(child.pid!)).toBe(false);
  });

  it('does not track children spawned before it started (start the reaper first)', async () => {
    const early = spawn('sleep', ['0.1']);
    tracker = trackChildProcesses();
    expect(tracker.isTracked(early.pid!)).toBe(false);
    await exited(early);
  });

  it('ignores a spawn that failed (no pid)', async () => {
    tracker = trackChildProcesses();
    const child = spawn('/nonexistent/program');
    await new Promise((resolve) => child.once('error', resolve));
    expect(child.pid).toBeUndefined();
    expect(tracker.isTracked(0)).toBe(false);
  });

  it('tracks pids given explicitly until untracked', () => {
    tracker = trackChildProcesses();
    tracker.trackChild(424242);
    expect(tracker.isTracked(424242)).toBe(true);
    tracker.untrackChild(424242);
    expect(tracker.isTracked(424242)).toBe(false);
  });

  it('stops tracking new children after dispose', async () => {
    tracker = trackChildProcesses();
    tracker.dispose();
    const child = spawn('true');
    expect(tracker.isTracked(child.pid!)).toBe(false);
    await exited(child);
  });
});
