// The koffi bindings: loaded only when first used, errors with named errnos.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errnoName, loadLibc, SyscallError } from '../../src/pid1/libc.ts';
import { buildPid1Bundle, runToEnd } from './pid1-bundle.ts';

describe('libc bindings', () => {
  let bundle: Awaited<ReturnType<typeof buildPid1Bundle>>;
  beforeAll(async () => {
    bundle = await buildPid1Bundle();
  });
  afterAll(() => bundle?.remove());

  it('loads koffi on first use only: importing every pid1 module costs nothing', async () => {
    const script = `
      import { createRequire } from 'node:module';
      const loaded = () => Object.keys(createRequire(import.meta.url)('module')._cache).some((p) => p.includes('/koffi/'));
      const pid1 = await import(process.env.PID1_BUNDLE);
      const before = loaded();
      pid1.exitCodeFor({ code: 1, signal: null });
      pid1.checkStopTimeoutsFit({ budgetS: 9, stops: [] });
      const afterPure = loaded();
      pid1.loadLibc().getpid();
      console.log(JSON.stringify({ before, afterPure, afterUse: loaded() }));`;
    const result = await runToEnd([process.execPath, '--input-type=module', '-e', script], { env: { ...process.env, PID1_BUNDLE: bundle.file } });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ before: false, afterPure: false, afterUse: true });
  });

  it('getpid and getpgrp match what Node and /proc say', () => {
    const libc = loadLibc();
    expect(libc.getpid()).toBe(process.pid);
    expect(libc.getpgrp()).toBeGreaterThan(0);
  });

  it('waitpid on a pid that is not our child fails with a named ECHILD', () => {
    let caught: unknown;
    try {
      loadLibc().waitpidNoHang(1);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SyscallError);
    expect(caught).toMatchObject({ code: 'ECHILD', syscall: 'waitpid', message: 'waitpid failed: ECHILD' });
  });

  it('waitpid(WNOHANG) returns null while a child runs, without reaping it', async () => {
    // Only on a running child: on an exited one it would steal libuv's status, which is the reaper's rule to avoid.
    const child = spawn('sleep', ['0.3']);
    expect(loadLibc().waitpidNoHang(child.pid!)).toBeNull();
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(code).toBe(0);
  });

  it('tcgetpgrp on a non-terminal fails with a named errno', () => {
    expect(() => loadLibc().tcgetpgrp(999)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it.each([
    [10, 'ECHILD'],
    [3, 'ESRCH'],
    [11, 'EAGAIN'],
    [95, 'ENOTSUP'],
    [4242, 'E4242'],
  ])('names errno %i %s', (errno, name) => {
    expect(errnoName(errno)).toBe(name);
  });
});
