// runCommand: one result shape for success and failure, the time limit with
// SIGTERM then SIGKILL to the whole group, and bounded output.
import { describe, expect, it } from 'vitest';
import { isAlive } from '../../src/process/proc.ts';
import { runCommand } from '../../src/process/run-command.ts';

const env = { PATH: process.env.PATH };

describe('runCommand', () => {
  it('keeps the output of a command that succeeds or fails', async () => {
    const ok = await runCommand({ file: 'sh', args: ['-c', 'echo out; echo err >&2'], env, timeoutMs: 10_000 });
    expect(ok).toMatchObject({ ok: true, code: 0, signal: null, timedOut: false, spawnError: null, stdout: 'out\n', stderr: 'err\n' });
    const failed = await runCommand({ file: 'sh', args: ['-c', 'echo why >&2; exit 4'], env, timeoutMs: 10_000 });
    expect(failed).toMatchObject({ ok: false, code: 4, stderr: 'why\n' });
  });

  it('reports a program that cannot start in the same shape', async () => {
    const result = await runCommand({ file: '/nonexistent/prog', env, timeoutMs: 1000 });
    expect(result).toMatchObject({ ok: false, code: null, timedOut: false, spawnError: expect.stringMatching(/^cannot run \/nonexistent\/prog: no such file/) });
  });

  it('at the limit sends SIGTERM to the group, then SIGKILL after the grace, and takes the leftovers of the group along', async () => {
    let pids = '';
    const result = await runCommand({
      file: 'sh',
      // The shell ignores SIGTERM; its background sleep stays in the group.
      args: ['-c', 'trap "" TERM; sleep 100 & echo $$ $!; while :; do sleep 1; done'],
      env,
      timeoutMs: 300,
      killGraceMs: 300,
      onOutput: (_, chunk) => (pids += chunk.toString()),
    });
    expect(result).toMatchObject({ ok: false, timedOut: true, forced: true, signal: 'SIGKILL' });
    expect(result.durationMs).toBeGreaterThanOrEqual(550);
    const [shell, sleeper] = pids.trim().split(' ').map(Number);
    expect(isAlive(shell)).toBe(false);
    expect(isAlive(sleeper)).toBe(false);
  });

  it('keeps the start of stdout and the end of stderr, each within the bound', async () => {
    const result = await runCommand({
      file: 'sh',
      args: ['-c', 'i=0; while [ $i -lt 500 ]; do echo "o$i"; echo "e$i" >&2; i=$((i+1)); done'],
      env,
      timeoutMs: 10_000,
      maxOutputBytes: 100,
    });
    expect(result.stdout.startsWith('o0\no1\n')).toBe(true);
    expect(result.stdout.length).toBe(100);
    expect(result.stderr.endsWith('e498\ne499\n')).toBe(true);
    expect(result.stderr.length).toBe(100);
  });
});
