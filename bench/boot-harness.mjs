// Shared by bench/boot-spawn.mjs and bench/boot-stop.mjs: the built
// `supervisor boot` (dist/cli.js) as PID 1 of fresh PID, mount and network
// namespaces, through test/fixtures/boot/launch.sh (tmpfs or temp dirs over
// every path boot writes: /run, /soft, /hard, /etc/infer-dev,
// /var/lib/infer-dev, /etc/ssh, /root/.ssh, /var/log; the host is untouched).
// The control socket is <dir>/run/infer-dev/supervisor.sock from outside.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, collectEvents, findLlamaServer, llamaServerToml, makeTempDir, onCleanup, sleep, waitForEvent, writeTinyModel } from './lib.mjs';

export const LAUNCHER = join(REPO_ROOT, 'test/fixtures/boot/launch.sh');
export const UNSHARE = ['unshare', '--pid', '--mount', '--net', '--fork', '--mount-proc', '--kill-child'];

/** Throws unless namespaces, sshd and a cached llama-server are there; returns the llama-server path. */
export function checkPrerequisites() {
  const probe = spawnSync(UNSHARE[0], [...UNSHARE.slice(1), 'true'], { stdio: 'ignore', timeout: 10_000 });
  if (probe.status !== 0) throw new Error(`needs \`${UNSHARE.join(' ')}\` (root): cannot make the namespaces here`);
  if (spawnSync('sh', ['-c', 'command -v ssh-keygen && test -x /usr/sbin/sshd'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('needs openssh-server (/usr/sbin/sshd, ssh-keygen)');
  }
  const llama = findLlamaServer();
  if (llama.path === null) throw new Error(llama.reason);
  return llama.path;
}

/** A temp dir holding the tiny model and host keys made once (a restarted container: RSA generation takes seconds). */
export function prepareAssets() {
  const { dir } = makeTempDir('bootb');
  const model = join(dir, 'tiny.gguf');
  writeTinyModel(model);
  const hostKeys = join(dir, 'host-keys');
  mkdirSync(join(hostKeys, 'etc/ssh'), { recursive: true });
  const keygen = spawnSync('ssh-keygen', ['-A', '-f', hostKeys], { encoding: 'utf8' });
  if (keygen.status !== 0) throw new Error(`ssh-keygen -A failed: ${keygen.stderr}`);
  return { dir, model, hostKeys: join(hostKeys, 'etc/ssh') };
}

/** Two real llama-server instances on the tiny model (ports are free: the network namespace is new). */
export function writeLlamaConfig({ dir, llamaServer, model, names }) {
  const instances = names.map((name, i) => ({ name, port: 18080 + i, alias: name }));
  const file = join(dir, 'infer-dev.toml');
  writeFileSync(file, llamaServerToml({ llamaServer, model, instances, logDir: dir, control: ['stop_timeout_s = 5'], server: ['ctx_size = 512'] }));
  return file;
}

/**
 * Starts the launcher (boot without CMD). `spawnedAt` is Date.now() taken just before spawn;
 * the launcher writes its own clock ($EPOCHREALTIME) to `execStampFile` just before it execs boot.
 */
export function startBoot({ dir, env }) {
  mkdirSync(join(dir, 'run'), { recursive: true });
  const execStampFile = join(dir, 'exec-at');
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(SUPERVISOR_|AUTO_INFER_|SSH_|BOOT_)/.test(k)));
  const childEnv = { ...base, BOOT_RUN_DIR: join(dir, 'run'), BOOT_NODE: process.execPath, BOOT_EXEC_STAMP: execStampFile, ...env };
  let stderr = '';
  const spawnedAt = Date.now();
  const child = spawn(UNSHARE[0], [...UNSHARE.slice(1), 'bash', LAUNCHER], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const { events, listeners } = collectEvents(child.stdout);
  child.stderr.on('data', (chunk) => (stderr += chunk));
  let exit = null;
  const exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      exit = { code, signal, at: Date.now(), atPerf: performance.now() };
      resolve(exit);
    }),
  );
  let pidNs = null;
  const kill = onCleanup(async () => {
    if (exit === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const pid of processesInNs(pidNs)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await Promise.race([exited, sleep(5000)]);
  });

  const boot = {
    dir,
    socket: join(dir, 'run/infer-dev/supervisor.sock'),
    child,
    events,
    spawnedAt,
    exited,
    kill,
    get stderr() {
      return stderr;
    },
    /** The launcher's clock just before `exec node dist/cli.js boot`, as Date.now() ms. */
    execAt() {
      return Number(readFileSync(execStampFile, 'utf8').trim()) * 1000;
    },
    /** PID 1's pid as the host sees it (unshare's child). */
    async pid1(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const [pid] = childrenOf(child.pid);
        if (pid !== undefined) {
          pidNs ??= readlinkSafe(`/proc/${pid}/ns/pid`);
          return pid;
        }
        if (Date.now() > deadline || exit !== null) throw new Error(`no PID 1 under unshare ${child.pid}; stderr: ${stderr}`);
        await sleep(5);
      }
    },
    get pidNs() {
      return pidNs;
    },
    /** Resolves with the first event (seen already, or later) that matches. */
    waitEvent(match, timeoutMs, what) {
      return waitForEvent({ events, listeners, exited, stderr: () => stderr, label: 'boot' }, { match, timeoutMs, what });
    },
    waitTransition(instance, to, timeoutMs = 30_000) {
      return boot.waitEvent((e) => e.event === 'transition' && e.instance === instance && e.to === to, timeoutMs, `${instance} -> ${to}`);
    },
  };
  return boot;
}

/** The pids of a pid namespace (`pid:[inode]`), as the host sees them. */
export function processesInNs(ns) {
  if (ns === null) return [];
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => readlinkSafe(`/proc/${pid}/ns/pid`) === ns);
}

/** Pids whose environment holds `entry` (e.g. INFER_DEV_INSTANCE=name). */
export function pidsWithEnvEntry(entry) {
  const found = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').split('\0').includes(entry)) found.push(Number(name));
    } catch {
      // gone
    }
  }
  return found;
}

function childrenOf(pid) {
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tids.flatMap((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').split(' ').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
}

function readlinkSafe(path) {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}
