// The koffi bindings: loaded only when first used, errors with named errnos.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errnoName, loadLibc, SyscallError } from '../../src/pid1/libc.ts';
import { buildPid1Bundle, runToEnd } from './pid1-bundle.ts';
import { readProcStatSync } from '../../src/process/proc.ts';

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
    expect(libc.getpgrp()).toBe(readProcStatSync(process.pid)!.pgrp);
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

describe('terminal stop signals at start', () => {
  let bundle: Awaited<ReturnType<typeof buildPid1Bundle>>;
  beforeAll(async () => {
    bundle = await buildPid1Bundle();
  });
  afterAll(() => bundle?.remove());

  // configureSignals, then: is koffi loaded, and are SIGTTIN (21) and SIGTTOU (22) in SigIgn?
  const script = `
    import { createRequire } from 'node:module';
    import { readFileSync } from 'node:fs';
    const pid1 = await import(process.env.PID1_BUNDLE);
    const controls = pid1.configureSignals({ onStop() {}, onReload() {}, forwardTo: () => null });
    const ignored = BigInt('0x' + /SigIgn:\\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]);
    const koffi = Object.keys(createRequire(import.meta.url)('module')._cache).some((p) => p.includes('/koffi/'));
    controls.dispose();
    console.log('result ' + JSON.stringify({ koffi, ttin: (ignored >> 20n & 1n) === 1n, ttou: (ignored >> 21n & 1n) === 1n }));`;
  const parse = (stdout: string) => JSON.parse(/result (\{.*\})/.exec(stdout)![1]!) as Record<string, boolean>;

  it('without a terminal: left alone, and koffi is not loaded (boot stays fast)', async () => {
    const result = await runToEnd([process.execPath, '--input-type=module', '-e', script], { env: { ...process.env, PID1_BUNDLE: bundle.file } });
    expect(result.stderr).toBe('');
    expect(parse(result.stdout)).toEqual({ koffi: false, ttin: false, ttou: false });
  });

  it('on a terminal: both ignored (SIG_IGN), as tini does', async () => {
    const command = `${process.execPath} --input-type=module -e "$PID1_SCRIPT"`;
    const result = await runToEnd(['script', '-qec', command, '/dev/null'], { env: { ...process.env, PID1_BUNDLE: bundle.file, PID1_SCRIPT: script } });
    expect(parse(result.stdout)).toEqual({ koffi: true, ttin: true, ttou: true });
  });
});
