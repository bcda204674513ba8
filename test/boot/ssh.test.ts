import { cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { findWhySshdIsOff, generateHostKeys, getSshPaths, makeSshdPlan, prepareSshd, type SshPaths } from '../../src/boot/ssh.ts';
import { requireTools } from '../support/system-tools.ts';
import { makeTempRoot, removeTempRoot, writeScript } from './boot-fixtures.ts';

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0yXoX2d4p6l7a0mB4i1k0i5Zt3bq7B0f0Jm0n0p0a alice@laptop';
const KEY_B = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOq bob';
const PASSWD = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n';

// One real `ssh-keygen -A` for the whole file (RSA takes ~2 s); tests copy its keys.
let keysRoot: string;
let firstGeneration: { generated: string[]; kept: string[] };

beforeAll(async () => {
  keysRoot = await makeTempRoot('ssh-keys');
  firstGeneration = await generateHostKeys({ hostKeyRoot: keysRoot });
});

afterAll(async () => {
  await removeTempRoot(keysRoot);
});

let root: string;
beforeEach(async () => {
  root = await makeTempRoot('ssh');
});
afterEach(async () => {
  await removeTempRoot(root);
});

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe('generateHostKeys', () => {
  it('makes each missing host key with a real ssh-keygen -A, and never regenerates an existing one', async () => {
    expect(firstGeneration).toEqual({ generated: ['ecdsa', 'ed25519', 'rsa'], kept: [] });
    const dir = join(keysRoot, 'etc', 'ssh');
    expect(await modeOf(join(dir, 'ssh_host_ed25519_key'))).toBe(0o600);
    const before = await readFile(join(dir, 'ssh_host_ed25519_key.pub'), 'utf8');
    const again = await generateHostKeys({ hostKeyRoot: keysRoot });
    expect(again).toEqual({ generated: [], kept: ['ecdsa', 'ed25519', 'rsa'] });
    expect(await readFile(join(dir, 'ssh_host_ed25519_key.pub'), 'utf8')).toBe(before);
  });

  it('with every type -A makes already there (a restarted container), ssh-keygen is not run; an empty key file is made again', async () => {
    await cp(join(keysRoot, 'etc'), join(root, 'etc'), { recursive: true });
    const missing = join(root, 'missing-keygen');
    expect(await generateHostKeys({ hostKeyRoot: root, keygen: missing })).toEqual({ generated: [], kept: ['ecdsa', 'ed25519', 'rsa'] });
    // Negative control: an empty key file is not a key, so ssh-keygen must run (and here cannot).
    await writeFile(join(root, 'etc', 'ssh', 'ssh_host_rsa_key'), '');
    await expect(generateHostKeys({ hostKeyRoot: root, keygen: missing })).rejects.toThrow(/cannot run .*missing-keygen: no such file/);
  });

  it('fails loudly when ssh-keygen cannot run (it exits 0 on some failures, so keys are checked)', async () => {
    await expect(generateHostKeys({ hostKeyRoot: root, keygen: '/bin/true' })).rejects.toThrow(/ssh-keygen -A failed: no host key in/);
    await expect(generateHostKeys({ hostKeyRoot: root, keygen: join(root, 'missing-keygen') })).rejects.toThrow(/cannot run .*missing-keygen: no such file/);
  });
});

describe('prepareSshd', () => {
  let paths: SshPaths;
  let sshdPath: string;

  beforeAll(() => {
    sshdPath = requireTools(['sshd', 'unshare'], 'prepareSshd (a real sshd -t)').sshd;
  });

  beforeEach(async () => {
    await cp(join(keysRoot, 'etc'), join(root, 'etc'), { recursive: true });
    const keyDir = join(root, 'etc', 'ssh');
    await writeFile(join(keyDir, 'sshd_config'), `Port 2222\nHostKey ${keyDir}/ssh_host_ed25519_key\n`);
    await mkdir(join(root, 'home', 'me'), { recursive: true });
    await writeFile(join(root, 'etc', 'passwd'), `${PASSWD}me:x:1001:1001:,,,:${join(root, 'home', 'me')}:/bin/bash\n`);
    // sshd -t insists on /run/sshd (compiled in): run it in a private mount namespace with a tmpfs /run.
    const sshd = await writeScript(
      join(root, 'sshd'),
      `#!/bin/sh\nexec unshare --mount sh -c 'mount -t tmpfs tmpfs /run && mkdir -m 0755 /run/sshd && exec ${sshdPath} "$@"' sh "$@"\n`,
    );
    paths = getSshPaths({
      sshd,
      sshdConfig: join(keyDir, 'sshd_config'),
      hostKeyRoot: root,
      runDir: join(root, 'run', 'sshd'),
      passwd: join(root, 'etc', 'passwd'),
      logFile: join(root, 'log', 'sshd.log'),
    });
  });

  it('prepares the run dir, keys and authorized_keys, checks the config and returns the plan', async () => {
    const result = await prepareSshd({ env: { SSH_AUTHORIZED_KEYS: `${KEY_A}\n${KEY_B}` }, paths });
    expect(result.steps.map((s) => [s.name, s.state, s.message])).toEqual([
      ['sshd host keys', 'ok', 'kept existing ecdsa, ed25519, rsa'],
      ['sshd authorized_keys', 'ok', `${join(root, 'home', 'me', '.ssh', 'authorized_keys')}: 2 key(s) added, 0 already there`],
      ['sshd', 'ok', `ready to start on port 2222, log ${paths.logFile}`],
    ]);
    expect(await modeOf(paths.runDir)).toBe(0o755);
    expect(result.reason).toBeNull();
    expect(result.plan).toEqual(makeSshdPlan({ sshd: paths.sshd, sshdConfig: paths.sshdConfig, port: 2222, logFile: paths.logFile }));
    expect(result.plan).toMatchObject({ name: 'sshd', executable: paths.sshd, args: ['-D', '-e', '-f', paths.sshdConfig], port: 2222, probe: 'tcp', policy: { restart: 'always' } });
  });

  it('records a broken sshd_config as failed but still returns the plan', async () => {
    await writeFile(paths.sshdConfig, 'BogusOption yes\n');
    const result = await prepareSshd({ env: {}, paths });
    const sshd = result.steps.find((s) => s.name === 'sshd');
    expect(sshd?.state).toBe('failed');
    expect(sshd?.message).toContain('Bad configuration option: BogusOption');
    expect(result.steps.find((s) => s.name === 'sshd authorized_keys')).toMatchObject({ state: 'skipped', message: 'SSH_AUTHORIZED_KEYS is not set' });
    expect(result.plan?.port).toBe(22);
  });

  it('fails the authorized_keys step for an unknown SSH_USER and warns about lines that are not keys', async () => {
    const unknown = await prepareSshd({ env: { SSH_USER: 'bob', SSH_AUTHORIZED_KEYS: KEY_A }, paths, validateConfig: false });
    expect(unknown.steps[1]).toMatchObject({ state: 'failed', message: 'SSH_USER="bob": no such user in the passwd file' });
    const junk = await prepareSshd({ env: { SSH_AUTHORIZED_KEYS: `${KEY_A}\nhello` }, paths, validateConfig: false });
    expect(junk.steps[1].state).toBe('warning');
    expect(junk.steps[1].message).toContain("ignored 1 line(s) that are not public keys: hello");
  });

  it('does not apply when off, not installed or unconfigured', async () => {
    expect(await findWhySshdIsOff({ env: { SUPERVISOR_SSHD: 'off' }, paths })).toBe('SUPERVISOR_SSHD is off');
    expect(await findWhySshdIsOff({ env: { SUPERVISOR_SSHD: 'perhaps' }, paths })).toContain('SUPERVISOR_SSHD="perhaps" is not a boolean');
    expect(await findWhySshdIsOff({ env: {}, paths: { ...paths, sshd: join(root, 'none') } })).toBe(`${join(root, 'none')} is not installed (openssh-server)`);
    expect(await findWhySshdIsOff({ env: {}, paths: { ...paths, sshdConfig: join(root, 'none') } })).toBe(`${join(root, 'none')} does not exist`);
    const off = await prepareSshd({ env: { SUPERVISOR_SSHD: '0' }, paths });
    expect(off).toMatchObject({ plan: null, reason: 'SUPERVISOR_SSHD is off', steps: [{ name: 'sshd', state: 'skipped' }] });
    await expect(stat(paths.runDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('makeSshdPlan', () => {
  it('runs the default config without -f', () => {
    expect(makeSshdPlan()).toMatchObject({ executable: '/usr/sbin/sshd', args: ['-D', '-e'], port: 22, host: '127.0.0.1', logFile: '/var/log/infer-dev/sshd.log' });
  });
});
