// Readies the control socket's path before the daemon binds it. The socket is
// root's door into the daemon, so what surrounds it must be root's too:
//   - the directory that holds it belongs to the daemon's user and nobody else
//     may write to it; otherwise anyone could rename the socket away and bind
//     their own in its place, and every `supervisor` call would talk to them.
//     Only that directory is checked: a sticky, world-writable ancestor such as
//     /tmp is fine once the socket's own directory is private.
//   - the only thing ever removed at the path is a socket nobody answers on
//     (lstat first: a symlink is not followed to whatever it points at).
// In a private directory nobody else can change the entry between the checks
// and the unlink, so checking first is safe.

import { lstat, mkdir, readlink, stat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { SupervisorError } from '../errors.ts';

/** How long the stale-socket probe waits for a daemon to accept. */
const PROBE_TIMEOUT_MS = 1000;
/**
 * Mode bits that let someone other than the owner add, rename or remove entries. The sticky bit does not
 * make them safe: it stops others removing our socket, not squatting its name before we bind it.
 */
const GROUP_OR_OTHER_WRITE = 0o022;

/** Creates the socket's directory (0700) if needed, refuses an unsafe one, and clears a stale socket at `path`. */
export async function prepareSocketPath(path: string): Promise<void> {
  await ensurePrivateDirectory({ dir: dirname(path), path });
  await removeStaleSocket(path);
}

/** Makes the directory if it is missing; an existing one keeps its mode but must be ours and writable only by us. */
async function ensurePrivateDirectory({ dir, path }: { dir: string; path: string }): Promise<void> {
  let info;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // Followed: what matters is the real directory the socket will be in.
    info = await stat(dir);
  } catch (err) {
    throw new SupervisorError(`cannot create the control socket's directory for ${path}: ${(err as Error).message}`, { cause: err });
  }
  const uid = process.geteuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw new SupervisorError(
      `refusing the control socket directory ${dir}: it belongs to uid ${info.uid}, not to this daemon (uid ${uid}), so its owner could replace the socket; ` +
        'use a directory of your own (SUPERVISOR_SOCKET)',
    );
  }
  if ((info.mode & GROUP_OR_OTHER_WRITE) !== 0) {
    const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
    throw new SupervisorError(
      `refusing the control socket directory ${dir}: its mode ${mode} lets group or others write to it, so they could replace the socket; ` +
        `run chmod go-w ${dir}, or set SUPERVISOR_SOCKET to a path in a private directory`,
    );
  }
}

/** Unlinks a socket file nobody answers on; a live daemon, or anything that is not a socket, is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  const found = await describeEntry(path);
  if (found === null) return;
  if (found !== 'socket') {
    throw new SupervisorError(`${path} is ${found}, not a socket: refusing to remove it to listen there; move it away or set SUPERVISOR_SOCKET to another path`);
  }
  const probe = await probeSocket(path);
  if (probe === 'absent') return;
  if (probe === 'alive') throw new SupervisorError(`another supervisor is already running on ${path}`);
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else removed it first
    throw new SupervisorError(`cannot remove the stale control socket ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** What is at `path` without following a symlink: 'socket', a phrase for anything else, or null for nothing. */
async function describeEntry(path: string): Promise<string | null> {
  let info;
  try {
    info = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SupervisorError(`cannot check the control socket path ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (info.isSocket()) return 'socket';
  if (info.isSymbolicLink()) {
    // Only for the message: a link that cannot be read is still a link, and still refused.
    const target = await readlink(path).catch((err: NodeJS.ErrnoException) => `unreadable: ${err.code ?? err.message}`);
    return `a symlink (to ${JSON.stringify(target)})`;
  }
  if (info.isFile()) return 'a regular file';
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO';
  return 'a device node';
}

/** Tries to connect: 'alive' if a daemon accepts, 'stale' if the file refuses, 'absent' if there is no file. */
function probeSocket(path: string): Promise<'alive' | 'stale' | 'absent'> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      // A file that neither accepts nor refuses is a socket whose owner hangs: do not steal it.
      resolve('alive');
    }, PROBE_TIMEOUT_MS);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve('alive');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      if (err.code === 'ENOENT') resolve('absent');
      else if (err.code === 'ECONNREFUSED') resolve('stale');
      else reject(new SupervisorError(`cannot check the control socket ${path}: ${err.message}`, { cause: err }));
    });
  });
}
