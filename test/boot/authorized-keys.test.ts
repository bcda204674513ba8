import { lstat, mkdir, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addAuthorizedKeys, parseAuthorizedKeys, parsePasswd, resolveSshUser, type SshUser } from '../../src/boot/authorized-keys.ts';
import { makeTempRoot, removeTempRoot } from './boot-fixtures.ts';

const KEY_A = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0yXoX2d4p6l7a0mB4i1k0i5Zt3bq7B0f0Jm0n0p0a alice@laptop';
const KEY_A_OTHER_COMMENT = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq0yXoX2d4p6l7a0mB4i1k0i5Zt3bq7B0f0Jm0n0p0a alice@desk';
const KEY_B = 'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBOq bob';
const PASSWD = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n';

let root: string;
beforeEach(async () => {
  root = await makeTempRoot('authorized-keys');
});
afterEach(async () => {
  await removeTempRoot(root);
});

describe('SSH_AUTHORIZED_KEYS', () => {
  it('splits on newlines and literal \\n, drops comments and blanks, reports what is not a key', () => {
    expect(parseAuthorizedKeys(`${KEY_A}\n\n# mine\r\n${KEY_B}\\nnot-a-key at all\n`)).toEqual({ keys: [KEY_A, KEY_B], invalid: ['not-a-key at all'] });
    expect(parseAuthorizedKeys(`from="10.0.0.1",no-pty ${KEY_B}`).keys).toHaveLength(1);
  });

  it('resolves SSH_USER, else me, else root, from the passwd file', () => {
    const users = parsePasswd(`${PASSWD}me:x:1001:1001:,,,:/home/me:/bin/bash\n`);
    expect(resolveSshUser({ env: {}, users })).toEqual({ name: 'me', uid: 1001, gid: 1001, home: '/home/me' });
    expect(resolveSshUser({ env: { SSH_USER: 'daemon' }, users }).home).toBe('/usr/sbin');
    expect(resolveSshUser({ env: {}, users: parsePasswd(PASSWD) }).name).toBe('root');
    expect(() => resolveSshUser({ env: { SSH_USER: 'bob' }, users })).toThrow('SSH_USER="bob": no such user in the passwd file');
  });

  it('adds keys once, keeps what is there, and sets owner and modes', async () => {
    const user: SshUser = { name: 'me', uid: 1234, gid: 2345, home: join(root, 'home', 'me') };
    await mkdir(user.home, { recursive: true });
    const first = await addAuthorizedKeys({ user, keys: [KEY_A, KEY_B, KEY_B] });
    expect(first).toEqual({ file: join(user.home, '.ssh', 'authorized_keys'), added: 2, present: 1 });
    // The same key with another comment is the same key.
    const second = await addAuthorizedKeys({ user, keys: [KEY_A_OTHER_COMMENT, KEY_B] });
    expect(second).toMatchObject({ added: 0, present: 2 });
    expect(await readFile(first.file, 'utf8')).toBe(`${KEY_A}\n${KEY_B}\n`);
    const dirInfo = await stat(join(user.home, '.ssh'));
    const fileInfo = await stat(first.file);
    expect([dirInfo.mode & 0o777, dirInfo.uid, dirInfo.gid]).toEqual([0o700, 1234, 2345]);
    expect([fileInfo.mode & 0o777, fileInfo.uid, fileInfo.gid]).toEqual([0o600, 1234, 2345]);
    expect(await readdir(join(user.home, '.ssh'))).toEqual(['authorized_keys']);
  });

  it('appends to an existing file without a trailing newline, and writes through a symlinked authorized_keys', async () => {
    const user: SshUser = { name: 'root', uid: 0, gid: 0, home: join(root, 'root') };
    await mkdir(join(user.home, '.ssh'), { recursive: true });
    const real = join(root, 'volume-keys');
    await writeFile(real, `# managed by hand\n${KEY_B}`);
    await symlink(real, join(user.home, '.ssh', 'authorized_keys'));
    const result = await addAuthorizedKeys({ user, keys: [KEY_A] });
    expect(result).toMatchObject({ file: real, added: 1 });
    expect(await readFile(real, 'utf8')).toBe(`# managed by hand\n${KEY_B}\n${KEY_A}\n`);
    expect((await lstat(join(user.home, '.ssh', 'authorized_keys'))).isSymbolicLink()).toBe(true);
  });

  it('fails with a clear message when the home directory is missing', async () => {
    const user: SshUser = { name: 'ghost', uid: 9, gid: 9, home: join(root, 'nohome') };
    await expect(addAuthorizedKeys({ user, keys: [KEY_A] })).rejects.toThrow(`home directory ${join(root, 'nohome')} of ghost does not exist`);
  });
});
