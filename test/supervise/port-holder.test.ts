import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findPortHolder, isPortListening } from '../../src/supervise/port-holder.ts';
import { freePort } from '../support/llama-server.ts';

const children: ChildProcess[] = [];
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'port-holder-'));
});

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }
  }
  await rm(dir, { recursive: true, force: true });
});

/** Starts `node -e` listening on a free port of `host`; resolves with the child and its port. */
async function listenInChild(host: string): Promise<{ child: ChildProcess; port: number }> {
  const script = `const s=require('net').createServer();s.listen(0,${JSON.stringify(host)},()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', script, '--', 'port-holder-test-marker'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', (code) => reject(new Error(`listener exited early with code ${code}`)));
  });
  return { child, port };
}

describe('findPortHolder on the live /proc', () => {
  it('names the child process listening on 127.0.0.1', async () => {
    const { child, port } = await listenInChild('127.0.0.1');
    const holder = await findPortHolder(port);
    expect(holder).not.toBeNull();
    expect(holder!.pid).toBe(child.pid);
    expect(holder!.command).toContain(process.execPath);
    expect(holder!.command).toContain('-e');
    expect(holder!.command).toContain('port-holder-test-marker');
    expect(await isPortListening(port)).toBe(true);
  });

  it('names the fake llama-server fixture by its command line', async () => {
    const port = await freePort();
    const fixture = new URL('../fixtures/fake-server.mjs', import.meta.url).pathname;
    const child = spawn(process.execPath, [fixture, '--port', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr!.on('data', (chunk: Buffer) => {
        err += chunk.toString();
        if (err.includes(`fake-server listening on 127.0.0.1:${port}`)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`fake-server exited early with code ${code}: ${err}`)));
    });
    expect(await findPortHolder(port)).toEqual({
      pid: child.pid,
      command: `${process.execPath} ${fixture} --port ${port}`,
    });
  });

  it('names an IPv6 (tcp6) listener too', async () => {
    const { child, port } = await listenInChild('::');
    expect((await findPortHolder(port))?.pid).toBe(child.pid);
  });

  it('names ourselves when we hold the port', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    try {
      expect((await findPortHolder(port))?.pid).toBe(process.pid);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    // Negative control: once closed, nobody holds it.
    expect(await findPortHolder(port)).toBeNull();
  });

  it('returns null for a free port', async () => {
    const port = await freePort();
    expect(await findPortHolder(port)).toBeNull();
    expect(await isPortListening(port)).toBe(false);
  });

  it('rejects ports outside 1..65535', async () => {
    await expect(findPortHolder(0)).rejects.toThrow(/port must be an integer from 1 to 65535, received 0/);
    await expect(isPortListening(70000)).rejects.toThrow(/received 70000/);
  });
});

describe('findPortHolder on a fixture /proc', () => {
  const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
  // Port 8080 = 0x1F90.
  const row = (sl: number, local: string, state: string, inode: number) =>
    `   ${sl}: ${local} 00000000:0000 ${state} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0\n`;

  async function makeProc({ tcp, tcp6 }: { tcp: string; tcp6?: string }): Promise<string> {
    const procRoot = join(dir, 'proc');
    await mkdir(join(procRoot, 'net'), { recursive: true });
    await writeFile(join(procRoot, 'net', 'tcp'), header + tcp);
    if (tcp6 !== undefined) await writeFile(join(procRoot, 'net', 'tcp6'), header + tcp6);
    return procRoot;
  }

  async function addProcess(procRoot: string, pid: number, { cmdline, fds }: { cmdline: string; fds: string[] }) {
    await mkdir(join(procRoot, String(pid), 'fd'), { recursive: true });
    await writeFile(join(procRoot, String(pid), 'cmdline'), cmdline);
    for (const [i, target] of fds.entries()) await symlink(target, join(procRoot, String(pid), 'fd', String(i)));
  }

  it('finds the listener by inode and joins its cmdline', async () => {
    const procRoot = await makeProc({
      tcp: row(0, '0100007F:1F90', '01', 111) + row(1, '00000000:1F90', '0A', 222) + row(2, '00000000:1F91', '0A', 333),
    });
    await addProcess(procRoot, 40, { cmdline: 'bash\0', fds: ['/dev/null', 'socket:[111]', 'socket:[333]'] });
    await addProcess(procRoot, 41, { cmdline: 'llama-server\0--port\x008080\0', fds: ['pipe:[9]', 'socket:[222]'] });
    expect(await findPortHolder(8080, { procRoot })).toEqual({ pid: 41, command: 'llama-server --port 8080' });
    expect(await isPortListening(8080, { procRoot })).toBe(true);
    // 0x1F91 is listened on by pid 40; a connected (01) socket on 8080 does not count.
    expect(await findPortHolder(8081, { procRoot })).toEqual({ pid: 40, command: 'bash' });
  });

  it('reads tcp6 and tolerates a missing tcp6 table', async () => {
    const v6 = await makeProc({ tcp: '', tcp6: row(0, '00000000000000000000000000000000:1F90', '0A', 555) });
    await addProcess(v6, 50, { cmdline: 'server6\0', fds: ['socket:[555]'] });
    expect(await findPortHolder(8080, { procRoot: v6 })).toEqual({ pid: 50, command: 'server6' });
    await rm(v6, { recursive: true });
    const noV6 = await makeProc({ tcp: '' });
    expect(await findPortHolder(8080, { procRoot: noV6 })).toBeNull();
  });

  it('reports an unknown process when the socket exists but no readable fd names it', async () => {
    const procRoot = await makeProc({ tcp: row(0, '00000000:1F90', '0A', 777) });
    await addProcess(procRoot, 60, { cmdline: 'other\0', fds: ['socket:[778]'] });
    await mkdir(join(procRoot, '61')); // no fd dir: vanished, or another user's (EACCES)
    expect(await findPortHolder(8080, { procRoot })).toEqual({ pid: 0, command: 'unknown process' });
  });

  it('trims a long command line to about 200 characters', async () => {
    const procRoot = await makeProc({ tcp: row(0, '00000000:1F90', '0A', 888) });
    const args = Array.from({ length: 100 }, (_, i) => `--arg${i}`);
    await addProcess(procRoot, 70, { cmdline: `llama-server\0${args.join('\0')}\0`, fds: ['socket:[888]'] });
    const holder = await findPortHolder(8080, { procRoot });
    expect(holder!.command.length).toBe(200);
    expect(holder!.command.startsWith('llama-server --arg0 --arg1')).toBe(true);
    expect(holder!.command.endsWith('…')).toBe(true);
  });
});

describe('canBindPort', () => {
  it('is true for a free port and false for one somebody listens on (any address)', async () => {
    const { canBindPort } = await import('../../src/supervise/port-holder.ts');
    const { createServer } = await import('node:net');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    try {
      expect(await canBindPort(port)).toBe(false);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(await canBindPort(port)).toBe(true);
  });
});
