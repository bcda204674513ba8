// Who already listens on an instance's port? Before starting llama-server we name
// the holder (pid and command line) so "address in use" becomes an actionable error.

import { readdir, readFile, readlink } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';

export interface PortHolder {
  /** 0 when the socket exists but its owner could not be read (another user's process). */
  pid: number;
  command: string;
}

export interface PortHolderOptions {
  /** Where procfs is mounted; tests point it at a fixture tree. */
  procRoot?: string;
}

const DEFAULT_PROC_ROOT = '/proc';
/** TCP_LISTEN in include/net/tcp_states.h, as /proc/net/tcp prints it. */
const TCP_LISTEN = '0A';
const MAX_COMMAND_CHARS = 200;
const UNKNOWN_HOLDER: PortHolder = Object.freeze({ pid: 0, command: 'unknown process' });

/** Names the process listening on a local TCP port (IPv4 or IPv6); null when nothing listens. */
export async function findPortHolder(port: number, opts: PortHolderOptions = {}): Promise<PortHolder | null> {
  const procRoot = opts.procRoot ?? DEFAULT_PROC_ROOT;
  const inodes = await findListeningInodes({ procRoot, port });
  if (inodes.size === 0) return null;
  const pid = await findSocketOwner({ procRoot, inodes });
  if (pid === null) return { ...UNKNOWN_HOLDER };
  const command = await readCommand({ procRoot, pid });
  // The owner may exit between the fd scan and the cmdline read; the socket was still its.
  return { pid, command: command ?? UNKNOWN_HOLDER.command };
}

/** Whether anything listens on a local TCP port, without naming it (no fd scan). */
export async function isPortListening(port: number, opts: PortHolderOptions = {}): Promise<boolean> {
  const inodes = await findListeningInodes({ procRoot: opts.procRoot ?? DEFAULT_PROC_ROOT, port });
  return inodes.size > 0;
}

async function findListeningInodes({ procRoot, port }: { procRoot: string; port: number }): Promise<Set<string>> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`port must be an integer from 1 to 65535, received ${port}`);
  }
  const inodes = new Set<string>();
  for (const table of ['tcp', 'tcp6']) {
    const text = await readOptional({ path: join(procRoot, 'net', table) });
    for (const inode of parseListeners({ text: text ?? '', port })) inodes.add(inode);
  }
  return inodes;
}

/**
 * Lines look like `0: 0100007F:1F90 00000000:0000 0A ... uid timeout inode ...`:
 * fields 1 (local address:hex port), 3 (state) and 9 (inode).
 */
function parseListeners({ text, port }: { text: string; port: number }): string[] {
  const inodes: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    const inode = fields[9];
    if (local === undefined || inode === undefined || fields[3] !== TCP_LISTEN) continue;
    const hexPort = local.slice(local.lastIndexOf(':') + 1);
    if (Number.parseInt(hexPort, 16) === port && inode !== '0') inodes.push(inode);
  }
  return inodes;
}

async function findSocketOwner({ procRoot, inodes }: { procRoot: string; inodes: Set<string> }): Promise<number | null> {
  const links = new Set([...inodes].map((inode) => `socket:[${inode}]`));
  const pids = (await readdir(procRoot)).filter((n) => /^\d+$/.test(n));
  for (const pid of pids) {
    const fdDir = join(procRoot, pid, 'fd');
    const fds = await readdirOptional({ path: fdDir });
    for (const fd of fds ?? []) {
      const target = await readlinkOptional({ path: join(fdDir, fd) });
      if (target !== null && links.has(target)) return Number(pid);
    }
  }
  return null;
}

async function readCommand({ procRoot, pid }: { procRoot: string; pid: number }): Promise<string | null> {
  const cmdline = await readOptional({ path: join(procRoot, String(pid), 'cmdline') });
  if (cmdline === null) return null;
  let command = cmdline.split('\0').filter((part) => part !== '').join(' ');
  if (command === '') {
    // Kernel threads and zombies have an empty cmdline; comm still names them.
    const comm = await readOptional({ path: join(procRoot, String(pid), 'comm') });
    command = comm === null ? '' : `[${comm.trim()}]`;
  }
  if (command.length > MAX_COMMAND_CHARS) command = `${command.slice(0, MAX_COMMAND_CHARS - 1)}…`;
  return command === '' ? null : command;
}

/** ENOENT/ESRCH: the process or fd vanished while we looked; EACCES/EPERM: not ours to read. */
const VANISHED_OR_FORBIDDEN = new Set(['ENOENT', 'ESRCH', 'EACCES', 'EPERM']);

function isVanishedOrForbidden(err: unknown): boolean {
  return VANISHED_OR_FORBIDDEN.has((err as NodeJS.ErrnoException | null)?.code ?? '');
}

async function readOptional({ path }: { path: string }): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isVanishedOrForbidden(err)) return null;
    throw err;
  }
}

async function readdirOptional({ path }: { path: string }): Promise<string[] | null> {
  try {
    return await readdir(path);
  } catch (err) {
    if (isVanishedOrForbidden(err)) return null;
    throw err;
  }
}

async function readlinkOptional({ path }: { path: string }): Promise<string | null> {
  try {
    return await readlink(path);
  } catch (err) {
    if (isVanishedOrForbidden(err)) return null;
    throw err;
  }
}

/**
 * The fast path of the port preflight: can we bind the port right now? A
 * bind and close costs about a millisecond; reading /proc/net/tcp* and every
 * process's fds to name a holder costs ten, so that only happens when the bind fails.
 */
export function canBindPort(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createNetServer();
    // EADDRINUSE: someone listens. Any other error (EACCES on a low port without root…): we cannot tell, so look in /proc.
    server.once('error', () => resolve(false));
    server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve(true)));
  });
}
