// What the supervisor needs to know from sshd_config: the port sshd listens on,
// for the TCP probe. sshd reads the file itself; we only look for `Port`.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { errnoOf, readDirOrEmpty } from './atomic-fs.ts';

/** sshd's port when sshd_config names none. */
export const DEFAULT_SSH_PORT = 22;
const MAX_INCLUDE_DEPTH = 8;

/** The first `Port` of an sshd_config (following `Include`; a file is read up to its first `Match`); 22 when none. */
export async function readSshdPort(configPath: string): Promise<number> {
  return (await findPort({ path: configPath, baseDir: dirname(configPath), depth: 0 })) ?? DEFAULT_SSH_PORT;
}

async function findPort({ path, baseDir, depth }: { path: string; baseDir: string; depth: number }): Promise<number | null> {
  if (depth > MAX_INCLUDE_DEPTH) return null;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    // sshd itself ignores an Include that matches nothing.
    if (depth > 0 && errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [keyword, ...rest] = line.split(/[\s=]+/);
    const word = keyword.toLowerCase();
    // Port is not allowed inside a Match block, and a Match block runs to the end of its file.
    if (word === 'match') return null;
    if (word === 'port') {
      const port = Number(rest[0]);
      if (Number.isInteger(port) && port > 0 && port < 65536) return port;
    }
    if (word !== 'include') continue;
    for (const pattern of rest) {
      for (const file of await expandInclude({ pattern, baseDir })) {
        const found = await findPort({ path: file, baseDir, depth: depth + 1 });
        if (found !== null) return found;
      }
    }
  }
  return null;
}

// `Include` takes glob patterns; relative ones are relative to /etc/ssh. Only the last component may hold wildcards here.
async function expandInclude({ pattern, baseDir }: { pattern: string; baseDir: string }): Promise<string[]> {
  const full = isAbsolute(pattern) ? pattern : join(baseDir, pattern);
  const dir = dirname(full);
  const last = full.slice(dir.length + 1);
  if (!/[*?]/.test(last)) return [full];
  const regex = new RegExp(`^${last.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  const names = await readDirOrEmpty(dir);
  return names.filter((n) => regex.test(n)).sort().map((n) => join(dir, n));
}
