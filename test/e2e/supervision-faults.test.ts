// Regressions of issue 9's adversarial pass, end to end with the built daemon
// and the fake server: each of these hung the daemon, leaked processes, or
// leaked a secret on the code before it.
import { readFileSync, existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/process/proc.ts';
import { fakeInstance, fakeMaster, startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { freePort, freePorts } from '../support/llama-server.ts';

const daemons: DaemonHandle[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.stop();
});

async function start(config: string, env: Record<string, string> = {}): Promise<DaemonHandle> {
  const d = await startDaemon(config, env);
  daemons.push(d);
  return d;
}

const header = `${fakeMaster()}[instance.control]\nlog_dir = "@DIR@"\nbackoff_initial_ms = 100\nstop_timeout_s = 2\n`;
const escapee = (pidFile: string) => ['--setsid-grandchild', pidFile, '--grandchild-keeps-output'];

async function grandchildOf(d: DaemonHandle): Promise<number> {
  const pidFile = `${d.dir}/grandchild.pid`;
  await d.waitFor(() => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')) > 1, 10_000, 'the grandchild pid file');
  return Number(readFileSync(pidFile, 'utf8'));
}

describe('an escaped descendant that keeps the output pipes open (fault 1)', () => {
  it('does not block stop: the exit is seen, the descendant swept, the daemon still stops on SIGTERM', async () => {
    const port = await freePort();
    const d = await start(header + fakeInstance('escapee', port, escapee('@DIR@/grandchild.pid')));
    const row = await d.waitForState('escapee', 'ready');
    const grandchild = await grandchildOf(d);
    const stop = await d.cliAsync('stop', 'escapee');
    expect(stop.code).toBe(0);
    expect(d.status()[0]).toMatchObject({ state: 'stopped', pid: null });
    expect(isAlive(row.pid)).toBe(false);
    expect(isAlive(grandchild)).toBe(false);
    expect(d.events.some((e) => e.event === 'sweep')).toBe(true);
    daemons.splice(daemons.indexOf(d), 1);
    const result = await d.stop();
    expect(result).toMatchObject({ code: 0 });
    expect(result.ms).toBeLessThan(5000);
  });

  it('with restart = "always", a kill -9 of the server is a crash: backoff, then a new process ready', async () => {
    const port = await freePort();
    const d = await start(header + fakeInstance('escapee', port, escapee('@DIR@/grandchild.pid'), 'restart = "always"\n'));
    const first = await d.waitForState('escapee', 'ready');
    const grandchild = await grandchildOf(d);
    process.kill(first.pid, 'SIGKILL');
    await d.waitFor(() => {
      const row = d.status()[0];
      return row.state === 'ready' && row.pid !== first.pid && row.restarts === 1;
    }, 20_000, () => `a new ready process (last: ${JSON.stringify(d.status()[0])})`);
    expect(isAlive(grandchild)).toBe(false);
    expect(d.status()[0].last_exit).toMatchObject({ signal: 'SIGKILL' });
  });
});

describe('a daemon killed with SIGKILL (fault 2)', () => {
  it('leaves instances that the next daemon on its socket stops before starting its own, which become ready; a daemon on another socket leaves them alone', async () => {
    const [port, otherPort] = await freePorts(2);
    const config = header + fakeInstance('kept', port);
    const first = await start(config);
    const orphan = (await first.waitForState('kept', 'ready')).pid as number;
    first.process.kill('SIGKILL');
    await first.waitFor(() => first.process.exitCode !== null || first.process.signalCode !== null, 5000, 'the first daemon to die').catch(() => undefined);
    expect(isAlive(orphan)).toBe(true);
    // Another daemon on this machine, on a socket of its own (a test beside this one did sweep it, in CI).
    const other = await start(header + fakeInstance('other', otherPort));
    await other.waitForState('other', 'ready');
    expect(isAlive(orphan)).toBe(true);
    // The daemon's lines reach us a little after it acts: its line for ready comes after any sweep's.
    const readyLogged = (d: DaemonHandle, name: string) => d.events.some((e) => e.event === 'transition' && e.instance === name && e.to === 'ready');
    await other.waitFor(() => readyLogged(other, 'other'), 5000, "other's ready line");
    expect(other.events.some((e) => e.event === 'orphans')).toBe(false);
    const second = await start(config, { SUPERVISOR_SOCKET: first.socket });
    const row = await second.waitForState('kept', 'ready');
    expect(row.pid).not.toBe(orphan);
    expect(isAlive(orphan)).toBe(false);
    await second.waitFor(() => readyLogged(second, 'kept'), 5000, "kept's ready line");
    const found = second.events.find((e) => e.event === 'orphans') as { orphans: { pid: number; instance: string }[] } | undefined;
    expect(found?.orphans).toEqual([{ pid: orphan, instance: 'kept', supervisorPid: first.process.pid }]);
  });
});

describe('a log path that never settles (fault 6)', () => {
  it('makes only that instance fatal, reload answers, and SIGTERM still ends the daemon', async () => {
    const port = await freePort();
    const d = await start(header + fakeInstance('a', port));
    await d.waitForState('a', 'ready');
    d.writeConfig(header + fakeInstance('a', port, [], 'log_file = "/proc/1/nope/x.log"\n'));
    const reload = await d.cliAsync('reload', '--json');
    expect(reload.code).toBe(0);
    const row = await d.waitForState('a', 'fatal', 10_000);
    expect(row.last_exit.reason).toMatch(/^cannot open log file \/proc\/1\/nope\/x\.log: ENOENT/);
    daemons.splice(daemons.indexOf(d), 1);
    const result = await d.stop();
    expect(result.code).toBe(0);
    expect(result.ms).toBeLessThan(5000);
  });
});

describe("the supervisor's secrets (fault 10)", () => {
  it('SUPERVISOR_GATEWAY_API_KEY does not reach the instances; the rest of the environment does', async () => {
    const port = await freePort();
    const d = await start(header + fakeInstance('a', port), { SUPERVISOR_GATEWAY_API_KEY: 'sekrit-key', SOME_USER_VAR: 'kept' });
    const row = await d.waitForState('a', 'ready');
    const environ = readFileSync(`/proc/${row.pid}/environ`, 'utf8').split('\0');
    expect(environ).toContain('SOME_USER_VAR=kept');
    expect(environ.some((e) => e.startsWith('SUPERVISOR_GATEWAY_API_KEY='))).toBe(false);
  });
});
