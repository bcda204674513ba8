// The Kubernetes probes against the built daemon and fake servers:
// `health --live` (the daemon answers) stays 0 through a load and a stop,
// `health --ready` follows the gateway and its instances.
import { afterEach, describe, expect, it } from 'vitest';
import { fakeInstance, fakeMaster, startDaemon, type DaemonHandle } from '../support/daemon.ts';
import { freePorts } from '../support/llama-server.ts';

let daemon: DaemonHandle | undefined;
afterEach(async () => {
  await daemon?.stop();
  daemon = undefined;
});

const header = `${fakeMaster()}[instance.control]\nlog_dir = "@DIR@"\nstop_timeout_s = 2\n`;
const gateway = (port: number, enable = true) => `[gateway]\nenable = ${enable}\nhost = "127.0.0.1"\nport = ${port}\n`;

describe('health --live and --ready', () => {
  it('live throughout; ready once an instance is ready, not ready again when it is stopped', async () => {
    const [gw, p] = await freePorts(2);
    daemon = await startDaemon(header + gateway(gw) + fakeInstance('a', p, ['--ready-after-ms', '3000']));
    expect(daemon.cli('health', '--live')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^alive: healthy: 0\/1 ready; starting: a\n$/) });
    expect(daemon.cli('health', '--ready')).toMatchObject({ code: 1, stdout: 'not ready: 0/1 can serve; a starting\n' });
    await daemon.waitForState('a', 'ready');
    expect(daemon.cli('health', '--ready')).toMatchObject({ code: 0, stdout: 'ready: 1/1 can serve (a)\n' });
    expect(daemon.cli('stop', 'a').code).toBe(0);
    expect(daemon.cli('health', '--ready')).toMatchObject({ code: 1, stdout: 'not ready: 0/1 can serve; a stopped\n' });
    expect(daemon.cli('health', '--live').code).toBe(0);
    const json = JSON.parse(daemon.cli('health', '--ready', '--json').stdout);
    expect(json.ready).toEqual({ code: 1, line: 'not ready: 0/1 can serve; a stopped' });
  });

  it('not ready while the gateway is off, however ready the instance', async () => {
    const [gw, p] = await freePorts(2);
    daemon = await startDaemon(header + gateway(gw, false) + fakeInstance('a', p));
    await daemon.waitForState('a', 'ready');
    expect(daemon.cli('health', '--ready')).toMatchObject({ code: 1, stdout: 'not ready: the gateway is not listening; 1/1 can serve\n' });
    expect(daemon.cli('health', '--live').code).toBe(0);
  });
});
