// llama.cpp's rpc-server, a worker of a leader llama-server that lists it in
// `rpc = ["host:port", ...]` (rendered as --rpc). `[instance.x] engine =
// "rpc-worker"` with `host`, `port` and rpc-server's own options. It is found
// next to the instance's llama-server (same bundle, same libraries) and speaks
// no HTTP: readiness is a TCP connect, and the gateway never routes to it.
// llama.cpp calls the protocol insecure (no authentication, no encryption):
// a non-loopback host without `allow_network = true` is a config warning.
import type { ConfigTable } from '../config/overrides.ts';
import type { ExecutableLookup } from '../config/executable.ts';
import { TCP_TIMEOUT, type ProbeResult } from '../supervise/health-probe.ts';
import { PORT_TAKEN, type EngineFacts, type EngineLaunch } from './engine.ts';

/** rpc-server's own default port. */
export const RPC_DEFAULT_PORT = 50052;

/** `host:port` as --rpc takes it (an IPv6 host in brackets). */
export const RPC_ADDRESS = /^(\[[0-9a-fA-F:.]+\]|[^\s:,[\]]+):([1-9][0-9]{0,4})$/;

/** The names rpc-server has had next to llama-server (llama.cpp renamed it ggml-rpc-server). */
const RPC_SERVER_NAMES = ['rpc-server', 'ggml-rpc-server'] as const;

export const rpcWorker: EngineFacts = {
  name: 'rpc-worker',
  readsLoadLog: false,
  // As rpc-server prints them (tools/rpc/rpc-server.cpp and ggml-rpc.cpp of llama.cpp 80fb11a): `error: unknown
  // argument: --x`, `error: unknown device: CUDA9`, `error: invalid number of threads: 0`, `Invalid parameters`;
  // a taken port: `Failed to create server socket`.
  configFailures: [
    ...PORT_TAKEN,
    /\berror: unknown (argument|device)\b/,
    /\berror: invalid (device|number of threads)\b/,
    /^Invalid parameters$/m,
    /\bNo devices found\b/,
    /\bFailed to create server socket\b/,
  ],
};

/**
 * rpc-server serves one client at a time with a listen backlog of 1 (ggml-rpc.cpp): while its leader is
 * connected, a third TCP connect waits unanswered (measured: connects 3.. time out). A timeout is a busy
 * worker, not a dead one (a dead one refuses); a refusal or an unreachable host is down.
 */
export function isBusyWorker(result: ProbeResult): boolean {
  return 'error' in result && result.error.startsWith(TCP_TIMEOUT);
}

/** Is this a loopback address (where RPC is safe to listen)? */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The workers a llama-server argv names with --rpc (from `rpc = [...]`, a server key or extra_args). */
export function findRpcWorkers(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = arg === '--rpc' ? args[i + 1] : arg.startsWith('--rpc=') ? arg.slice('--rpc='.length) : undefined;
    if (value !== undefined) out.push(...value.split(',').map((s) => s.trim()).filter((s) => s !== ''));
  }
  return out;
}

/** `host:port` → where to connect; a bracketed IPv6 host loses its brackets. */
export function splitRpcAddress(address: string): { host: string; port: number } {
  const match = RPC_ADDRESS.exec(address);
  if (match === null) return { host: address, port: 0 };
  return { host: match[1].replace(/^\[(.*)\]$/, '$1'), port: Number(match[2]) };
}

/** rpc-server next to the llama-server this config resolves to, else on PATH. */
export function resolveRpcServer(llama: { path: string; libraryDir: string | null }, lookup: ExecutableLookup): { path: string; libraryDir: string | null } {
  if (llama.path.includes('/')) {
    const dir = llama.path.slice(0, llama.path.lastIndexOf('/')) || '/';
    const found = RPC_SERVER_NAMES.map((name) => `${dir}/${name}`).find((path) => lookup.isFile(path));
    return { path: found ?? `${dir}/${RPC_SERVER_NAMES[0]}`, libraryDir: llama.libraryDir };
  }
  for (const name of RPC_SERVER_NAMES) {
    const found = lookup.which(name);
    if (found !== null) return { path: found, libraryDir: found.slice(0, found.lastIndexOf('/')) || '/' };
  }
  return { path: RPC_SERVER_NAMES[0], libraryDir: null };
}

/** The launch of an rpc-worker instance, from its validated `[instance.x]` table. */
export function makeRpcWorkerLaunch({
  instance,
  executable,
  env: outer,
}: {
  instance: ConfigTable;
  executable: { path: string; libraryDir: string | null };
  env: Readonly<Record<string, string | undefined>>;
}): EngineLaunch {
  const host = (instance.host as string | undefined) ?? '127.0.0.1';
  const port = instance.port === undefined ? RPC_DEFAULT_PORT : Number(instance.port);
  const args = ['--host', host, '--port', String(port)];
  if (instance.device !== undefined) args.push('--device', String(instance.device));
  if (instance.threads !== undefined) args.push('--threads', String(instance.threads));
  if (instance.cache === true) args.push('--cache');
  const env: Record<string, string> = {};
  if (executable.libraryDir !== null) {
    const previous = outer.LD_LIBRARY_PATH;
    env.LD_LIBRARY_PATH = previous ? `${executable.libraryDir}:${previous}` : executable.libraryDir;
  }
  const warnings: EngineLaunch['warnings'] = [];
  if (!isLoopback(host) && instance.allow_network !== true) {
    warnings.push({
      path: ['host'],
      message: `rpc-server listens on ${host}, not loopback: llama.cpp's RPC has no authentication or encryption ("never run it on an open network"); set allow_network = true once only trusted peers can reach this port`,
    });
  }
  return {
    executable: executable.path,
    args,
    env,
    envNotes: {},
    host,
    port,
    model: null,
    aliases: [],
    healthPath: null,
    logPrefix: 'rpc-worker-',
    warnings,
    probe: 'tcp',
  };
}
