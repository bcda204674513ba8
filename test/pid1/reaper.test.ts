// The reaper against real processes. Orphans: the fixture runs as PID 1 of a
// fresh PID namespace (vitest itself cannot). Subreaper: the fixture runs as
// PID 2 of a namespace whose PID 1 is a plain `sh`, so an orphan that does not
// come to us goes to sh, never to this machine's init.
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildPid1Bundle, canUnshare, FIXTURES, killLeftovers, lastJsonLine, runToEnd, UNSHARE } from './pid1-bundle.ts';

const REAPER_HOST = join(FIXTURES, 'reaper-host.mjs');
const SUBREAPER_HOST = join(FIXTURES, 'subreaper-host.mjs');
const namespaces = canUnshare();
let bundle: Awaited<ReturnType<typeof buildPid1Bundle>>;

beforeAll(async () => {
  bundle = await buildPid1Bundle();
});
afterEach(killLeftovers);
afterAll(() => bundle?.remove());

const env = () => ({ ...process.env, PID1_BUNDLE: bundle.file });

/** Runs reaper-host as PID 1 of a new PID namespace. */
async function reapInNamespace(...args: string[]) {
  const result = await runToEnd([...UNSHARE, process.execPath, REAPER_HOST, ...args], { env: env() });
  expect(result.stderr).toBe('');
  return lastJsonLine(result);
}

/** Runs subreaper-host as PID 2 (sh is PID 1 and stays its parent). */
async function subreap(...args: string[]) {
  const host = [process.execPath, SUBREAPER_HOST, ...args].map((a) => `'${a}'`).join(' ');
  const argv = namespaces ? [...UNSHARE, 'sh', '-c', `${host}; exit $?`] : [process.execPath, SUBREAPER_HOST, ...args];
  const result = await runToEnd(argv, { env: env() });
  expect(result.stderr).toBe('');
  return lastJsonLine(result);
}

const ownCodes = (report: Record<string, any>) => report.own.map((o: { code: unknown }) => o.code);
const ONE_TO_TEN = Array.from({ length: 10 }, (_, i) => i + 1);

describe.skipIf(!namespaces)('reaper as PID 1 of a PID namespace', () => {
  it('reaps 200 orphans: no zombie in the namespace 1 s after they exit; Node still gets its own children’s codes', async () => {
    const report = await reapInNamespace('--orphans', '200', '--own', '10');
    expect(report.pid).toBe(1);
    expect(report.makerCode).toBe(0);
    expect(report.lastExitSeen).toBe(true);
    expect(report.zombiesAfter1s).toBe(0);
    expect(report.clearLagMs).not.toBeNull();
    expect(report.clearLagMs).toBeLessThan(1000);
    expect(report.totals.orphans).toBe(200);
    // The reaper looked at our own children’s zombies before libuv did, and left them alone.
    expect(report.firstLook).toEqual({ children: 10, reaped: 0, skipped: 10 });
    expect(ownCodes(report)).toEqual(ONE_TO_TEN);
  });

  it('negative control: without the reaper the 200 zombies stay', async () => {
    const report = await reapInNamespace('--orphans', '200', '--own', '10', '--no-reaper');
    expect(report.pid).toBe(1);
    expect(report.zombiesAfter1s).toBe(200);
    expect(report.clearLagMs).toBeNull();
    expect(ownCodes(report)).toEqual(ONE_TO_TEN);
  });

  it('negative control: a reaper started after the children steals their statuses (why boot starts it first)', async () => {
    const report = await reapInNamespace('--orphans', '5', '--own', '10', '--reaper-late');
    expect(report.firstLook).toEqual({ children: 10, reaped: 10, skipped: 0 });
    expect(ownCodes(report)).toEqual(ONE_TO_TEN.map(() => 'lost'));
  });

  it('without SIGCHLD, the slow timer alone clears them (a lost SIGCHLD costs at most one period)', async () => {
    // 500 ms, not the default 1 s, so that "1 s after" is not a race with the timer's phase.
    const report = await reapInNamespace('--orphans', '50', '--own', '0', '--no-sigchld', '--interval', '500');
    expect(report.zombiesAfter1s).toBe(0);
    expect(report.totals.orphans).toBe(50);
  });
});

describe('subreaper (not PID 1)', () => {
  it('becomeSubreaper: an orphaned grandchild is re-parented to us and reaped', async () => {
    const report = await subreap();
    expect(report.pid).not.toBe(1);
    expect(report.registration).toEqual({ registered: true });
    expect(report.isSubreaper).toBe(true);
    expect(report.shellCode).toBe(0);
    expect(report.ppidAfterOrphaned).toBe(report.pid);
    expect(report.finalState).toBe('reaped');
    expect(report.reapedByUs).toBe(1);
    expect(report.warnings).toEqual([]);
  });

  it('negative control: without becomeSubreaper the orphan goes elsewhere', async () => {
    const report = await subreap('--no-subreaper');
    expect(report.isSubreaper).toBe(false);
    expect(report.ppidAfterOrphaned).not.toBe(report.pid);
    expect(report.reapedByUs).toBe(0);
  });

  it('negative control: a subreaper without the reaper keeps the zombie', async () => {
    const report = await subreap('--no-reaper');
    expect(report.ppidAfterOrphaned).toBe(report.pid);
    expect(report.finalState).toBe('Z');
  });
});
