// The daemon end to end with the fake server: faults a real llama-server
// cannot produce on demand (ignored SIGTERM, escaped grandchildren, stalls).
import { spawnSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive } from '../../src/process/proc.ts';
import { CLI, fakeInstance, fakeMaster, startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { freePort, freePorts } from '../support/llama-server.ts';

let daemon: DaemonHandle | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

const header = `${fakeMaster()}[instance.control]\nlog_dir = "@DIR@"\nbackoff_initial_ms = 100\nstop_timeout_s = 2\n`;

describe('daemon with fake servers', () => {
  it('status --json has exactly the documented keys; health --strict goes 2 → 0, plain health stays 0', async () => {
    const [p1, p2] = await freePorts(2);
    // 5 s: still starting when health is asked, after several CLI starts on a loaded machine.
    daemon = await startDaemon(header + fakeInstance('a', p1, ['--ready-after-ms', '5000']) + fakeInstance('b', p2));
    const early = daemon.cli('health', '--strict');
    expect(early.code).toBe(2);
    expect(early.stdout).toMatch(/^starting: /);
    // For Docker's HEALTHCHECK a loading instance is healthy (2 is reserved there).
    expect(daemon.cli('health')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^healthy: \d\/2 ready; starting: a/) });
    await daemon.waitForState('a', 'ready');
    await daemon.waitForState('b', 'ready');
    const rows = daemon.status();
    expect(rows.map((r) => r.name)).toEqual(['a', 'b']);
    expect(Object.keys(rows[0]).sort()).toEqual(
      ['context', 'engine', 'fit', 'gpu', 'gpu_ids', 'inflight', 'last_exit', 'lifecycle', 'load', 'log_file', 'name', 'next_restart_at', 'pid', 'port', 'requests', 'restarts', 'state', 'state_reason', 'state_since', 'uptime_s'].sort(),
    );
    expect(rows[0]).toMatchObject({ port: p1, restarts: 0, last_exit: null, log_file: `${daemon.dir}/llama-server-a.log` });
    expect(daemon.cli('health')).toMatchObject({ code: 0, stdout: 'healthy: 2/2 ready\n' });
    const table = daemon.cli('status');
    expect(table.stdout).toMatch(/^NAME\s+STATE\s+PID/);
    expect(table.stdout).toContain('ready');
  });

  it('a child that ignores SIGTERM is killed after stop_timeout_s; its setsid grandchild is swept', async () => {
    const port = await freePort();
    daemon = await startDaemon(header + fakeInstance('stubborn', port, ['--ignore-sigterm', '--setsid-grandchild', '@DIR@/grandchild.pid']));
    const row = await daemon.waitForState('stubborn', 'ready');
    const pidFile = `${daemon.dir}/grandchild.pid`;
    await daemon.waitFor(() => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')) > 1, 10_000, 'the grandchild pid file');
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(isAlive(grandchild)).toBe(true);
    const started = Date.now();
    const stop = daemon.cli('stop', 'stubborn');
    const took = Date.now() - started;
    expect(stop.code).toBe(0);
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(isAlive(row.pid)).toBe(false);
    expect(isAlive(grandchild)).toBe(false);
    await daemon.waitFor(() => daemon!.events.some((e) => e.event === 'sweep'), 5000, 'the sweep event');
    expect(daemon.events.some((e) => e.event === 'kill')).toBe(true);
  });

  it('crash → backoff → restarted; restarts counted; exit explained with the log tail', async () => {
    const port = await freePort();
    // 1.5 s: ready (probed every 200 ms) well before it crashes, even on a loaded machine.
    daemon = await startDaemon(header + fakeInstance('crashy', port, ['--exit-after-ms', '1500', '--exit-code', '3', '--print-line', 'about to crash: out of cheese']));
    await daemon.waitFor(() => (daemon!.status()[0].restarts as number) >= 1, 20_000, 'a restart');
    const row = daemon.status()[0];
    expect(row.last_exit).toMatchObject({ code: 3, signal: null });
    expect(row.last_exit.reason).toContain('exited with code 3');
    // spawnSync blocks our event loop: let the daemon's piped log lines arrive first.
    await daemon.waitFor(() => daemon!.events.filter((e) => e.event === 'transition').length >= 3, 5000, 'transition events');
    const transitions = daemon.events.filter((e) => e.event === 'transition');
    expect(transitions.every((e) => e.from !== e.to)).toBe(true);
    expect(transitions.slice(0, 3).map((e) => `${e.from}->${e.to}`)).toEqual(['stopped->starting', 'starting->ready', 'ready->backoff']);
    const logs = daemon.cli('logs', 'crashy', '-n', '200');
    expect(logs.stdout).toContain('out of cheese');
    expect(logs.stdout).toContain('[supervisor] pid');
  });

  it('a server that stays loading and says nothing is failed as stalled', async () => {
    const port = await freePort();
    daemon = await startDaemon(
      header + fakeInstance('stall', port, ['--stay-loading', '--silent'], 'startup_stall_s = 1\nrestart = "never"\n'),
    );
    const row = await daemon.waitForState('stall', 'fatal', 10_000);
    expect(row.restarts).toBe(0);
    expect(row.last_exit.reason).toMatch(/^stalled while starting: no log output and no change in the health answer for 1 s/);
    expect(row.last_exit.reason).toMatch(/\(restart = "never"\)$/);
  });

  it('stop --all, then SIGTERM: exit 0 quickly and no process of ours is left', async () => {
    const [p1, p2] = await freePorts(2);
    daemon = await startDaemon(header + fakeInstance('a', p1) + fakeInstance('b', p2));
    await daemon.waitForState('a', 'ready');
    await daemon.waitForState('b', 'ready');
    const pids = daemon.status().map((r) => r.pid as number);
    const stopped = daemon;
    daemon = undefined;
    const result = await stopped.stop();
    expect(result.code).toBe(0);
    expect(result.ms).toBeLessThan(3000);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    expect(await stopped.processesOf('a')).toEqual([]);
  });

  it('reload: a broken config is rejected and nothing running is touched; a fixed one restarts only what changed', async () => {
    const [p1, p2, p3] = await freePorts(3);
    daemon = await startDaemon(header + fakeInstance('a', p1) + fakeInstance('b', p2));
    const a = await daemon.waitForState('a', 'ready');
    const b = await daemon.waitForState('b', 'ready');
    daemon.writeConfig(`${header}${fakeInstance('a', p1)}${fakeInstance('b', p2)}[instance.c.server]\nport = "x"\n`);
    const bad = daemon.cli('reload');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/config\.toml:\d+:\d+: error: instance\.c\.server\.port: expected a number/);
    expect(daemon.status().map((r) => r.pid)).toEqual([a.pid, b.pid]);
    daemon.writeConfig(header + fakeInstance('a', p1) + fakeInstance('b', p2, ['--print-line', 'changed']) + fakeInstance('c', p3));
    const ok = daemon.cli('reload', '--json');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ started: ['c'], restarted: ['b'], stopped: [], unchanged: ['a'], idle: [] });
    await daemon.waitForState('b', 'ready');
    await daemon.waitForState('c', 'ready');
    const after = daemon.status();
    expect(after[0].pid).toBe(a.pid);
    expect(after[1].pid).not.toBe(b.pid);
  });

  it('a port held by a foreign process is named, and only that instance is fatal', async () => {
    const [held, free] = await freePorts(2);
    const { createServer } = await import('node:net');
    const blocker = createServer();
    // Listening before the daemon starts: listen() returns before the bind, and the CLI calls
    // (spawnSync) in startDaemon block this event loop long enough for the instance to win the port.
    await new Promise<void>((resolve, reject) => blocker.once('error', reject).listen(held, '127.0.0.1', resolve));
    try {
      daemon = await startDaemon(header + fakeInstance('blocked', held) + fakeInstance('fine', free));
      const row = await daemon.waitForState('blocked', 'fatal');
      expect(row.last_exit.reason).toMatch(new RegExp(`port ${held} is already in use by pid ${process.pid} \\(`));
      await daemon.waitForState('fine', 'ready');
      expect(daemon.cli('health').code).toBe(1);
    } finally {
      blocker.close();
    }
  });

  it('the child gets its plan: user, CUDA_VISIBLE_DEVICES, env table, markers; its own process group', async () => {
    const port = await freePort();
    daemon = await startDaemon(
      header + fakeInstance('as-nobody', port, [], 'user = "nobody"\ngpu_ids = "none"\nenv = { HF_HOME = "/tmp/hf" }\n'),
    );
    const row = await daemon.waitForState('as-nobody', 'ready');
    const environ = new Map(
      readFileSync(`/proc/${row.pid}/environ`, 'utf8')
        .split('\0')
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)] as const),
    );
    expect(environ.get('CUDA_VISIBLE_DEVICES')).toBe('');
    expect(environ.get('HF_HOME')).toBe('/tmp/hf');
    expect(environ.get('INFER_DEV_INSTANCE')).toBe('as-nobody');
    expect(environ.get('INFER_DEV_SUPERVISOR')).toBe(String(daemon.process.pid));
    const status = readFileSync(`/proc/${row.pid}/status`, 'utf8');
    const nobody = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('nobody:'))!.split(':')[2];
    expect(status).toMatch(new RegExp(`^Uid:\\s+${nobody}\\s`, 'm'));
    const stat = readFileSync(`/proc/${row.pid}/stat`, 'utf8');
    const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
    expect(pgid).toBe(row.pid);
  });

  it('an unknown user is fatal with a clear reason, not a crash loop', async () => {
    const port = await freePort();
    daemon = await startDaemon(header + fakeInstance('ghost', port, [], 'user = "no-such-user-xyz"\n'));
    const row = await daemon.waitForState('ghost', 'fatal');
    expect(row.last_exit.reason).toBe('user "no-such-user-xyz" does not exist in /etc/passwd');
    expect(row.restarts).toBe(0);
  });

  it('supervisor serve starts the config in a daemon that has none, and a second serve leaves running instances alone', async () => {
    const [p1, p2] = await freePorts(2);
    daemon = await startDaemon(header + fakeInstance('a', p1) + fakeInstance('b', p2), {}, { withConfig: false });
    expect(daemon.status()).toEqual([]);
    const first = daemon.cli('serve', '--config', daemon.config, '--json');
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ started: ['a', 'b'], unchanged: [] });
    const a = await daemon.waitForState('a', 'ready');
    const again = daemon.cli('serve', '--json');
    expect(JSON.parse(again.stdout)).toMatchObject({ started: [], unchanged: ['a', 'b'] });
    expect(daemon.status().find((r) => r.name === 'a')!.pid).toBe(a.pid);
  });

  it('CLI errors: unknown instance is exit 2; no daemon is exit 3', async () => {
    const port = await freePort();
    daemon = await startDaemon(header + fakeInstance('a', port));
    const unknown = daemon.cli('restart', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('supervisor: no instance named "nope" (instances: a)\n');
    // A socket nobody listens on: exit 3, and the message names the socket.
    const nowhere = join(daemon.dir, 'nobody-here.sock');
    const socketless = spawnSync(process.execPath, [CLI, 'status'], { env: { ...process.env, SUPERVISOR_SOCKET: nowhere }, encoding: 'utf8' });
    expect(socketless.status).toBe(3);
    expect(socketless.stderr).toBe(`supervisor: supervisor daemon is not running (no answer on ${nowhere})\n`);
  });
});
