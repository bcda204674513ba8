// SSH_AUTHORIZED_KEYS: one or more public keys, added without duplicates to the
// authorized_keys of SSH_USER (default `me` if that user exists, else root),
// with the owner and modes sshd's StrictModes wants (~/.ssh 0700, the file 0600).
import { chmod, chown, mkdir, readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError, errnoOf, writeFileAtomic } from './atomic-fs.ts';
import { readText } from './env-flags.ts';
import type { StepOutcome } from './steps.ts';

/** A passwd entry, as much of it as authorized_keys needs. */
export interface SshUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const KEY_TYPE = /^(ssh-[\w.@-]+|ecdsa-sha2-[\w.@-]+|sk-[\w.@-]+)$/;
const KEY_BLOB = /^[A-Za-z0-9+/]{16,}={0,3}$/;

/** Parses /etc/passwd text. */
export function parsePasswd(text: string): SshUser[] {
  return text.split('\n').flatMap((line) => {
    const [name, , uid, gid, , home] = line.split(':');
    if (!name || uid === undefined || gid === undefined || home === undefined || line.startsWith('#')) return [];
    return [{ name, uid: Number(uid), gid: Number(gid), home }];
  });
}

/** SSH_USER if set (it must exist), else `me` if it exists, else root. */
export function resolveSshUser({ env, users }: { env: NodeJS.ProcessEnv; users: SshUser[] }): SshUser {
  const wanted = readText(env, 'SSH_USER');
  if (wanted !== null) {
    const user = users.find((u) => u.name === wanted);
    if (!user) throw new Error(`SSH_USER=${JSON.stringify(wanted)}: no such user in the passwd file`);
    return user;
  }
  return users.find((u) => u.name === 'me') ?? users.find((u) => u.name === 'root') ?? { name: 'root', uid: 0, gid: 0, home: '/root' };
}

/** Splits SSH_AUTHORIZED_KEYS into key lines (real newlines, or a literal `\n` as .env files give it); comments and blanks dropped. */
export function parseAuthorizedKeys(text: string): { keys: string[]; invalid: string[] } {
  const keys: string[] = [];
  const invalid: string[] = [];
  for (const raw of text.split(/\r?\n|\\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (getKeyIdentity(line) === null) invalid.push(line.length > 40 ? `${line.slice(0, 37)}...` : line);
    else keys.push(line);
  }
  return { keys, invalid };
}

/** `type blob` of an authorized_keys line (options and comment ignored); null when the line holds no key. */
function getKeyIdentity(line: string): string | null {
  const words = line.trim().split(/\s+/);
  for (let i = 0; i + 1 < words.length; i += 1) {
    if (KEY_TYPE.test(words[i]) && KEY_BLOB.test(words[i + 1])) return `${words[i]} ${words[i + 1]}`;
  }
  return null;
}

/** Appends the keys missing from `~/.ssh/authorized_keys` and sets owner and modes (~/.ssh 0700, the file 0600). */
export async function addAuthorizedKeys({ user, keys }: { user: SshUser; keys: string[] }): Promise<{ file: string; added: number; present: number }> {
  const sshDir = join(user.home, '.ssh');
  try {
    await mkdir(sshDir, { mode: 0o700 });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') throw new Error(`home directory ${user.home} of ${user.name} does not exist`, { cause: err });
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
  await chown(sshDir, user.uid, user.gid);
  await chmod(sshDir, 0o700);
  // A symlinked authorized_keys (e.g. into a volume) is updated where it points, not replaced by a file.
  const file = await resolveExisting(join(sshDir, 'authorized_keys'));
  let existing = '';
  try {
    existing = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  const known = new Set(existing.split('\n').flatMap((l) => getKeyIdentity(l) ?? []));
  const fresh: string[] = [];
  for (const key of keys) {
    const identity = getKeyIdentity(key) as string;
    if (known.has(identity)) continue;
    known.add(identity);
    fresh.push(key);
  }
  if (fresh.length > 0) {
    const head = existing === '' || existing.endsWith('\n') ? existing : `${existing}\n`;
    await writeFileAtomic(file, `${head}${fresh.join('\n')}\n`, { mode: 0o600, uid: user.uid, gid: user.gid });
  } else if (existing !== '') {
    await chown(file, user.uid, user.gid);
    await chmod(file, 0o600);
  }
  return { file, added: fresh.length, present: keys.length - fresh.length };
}

/** The `sshd authorized_keys` step: SSH_AUTHORIZED_KEYS into SSH_USER's file; never throws. */
export async function installAuthorizedKeys({ env, rawKeys, passwdFile }: { env: NodeJS.ProcessEnv; rawKeys: string; passwdFile: string }): Promise<StepOutcome> {
  const name = 'sshd authorized_keys';
  const { keys, invalid } = parseAuthorizedKeys(rawKeys);
  const ignored = invalid.length > 0 ? `; ignored ${invalid.length} line(s) that are not public keys: ${invalid.join(', ')}` : '';
  try {
    const user = resolveSshUser({ env, users: parsePasswd(await readFile(passwdFile, 'utf8')) });
    if (keys.length === 0) return { name, state: 'warning', message: `SSH_AUTHORIZED_KEYS holds no public key${ignored}` };
    const { file, added, present } = await addAuthorizedKeys({ user, keys });
    return { name, state: invalid.length > 0 ? 'warning' : 'ok', message: `${file}: ${added} key(s) added, ${present} already there${ignored}` };
  } catch (err) {
    return { name, state: 'failed', message: describeError(err) };
  }
}

async function resolveExisting(path: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return path;
    throw err;
  }
}
