// What each control command does in the daemon. The CLI sends one request;
// the daemon answers from the supervisor. One handler per command, beside
// the table that names them.
import { parseConfigKind, type ConfigKind } from '../config/config-kind.ts';
import { SupervisorError, UsageError } from '../errors.ts';
import { followLog, readLastLines } from '../supervise/log-reader.ts';
import { addRequestStats, type DaemonGateway } from '../gateway/daemon-gateway.ts';
import type { GpuMonitor } from '../gpu/monitor.ts';
import type { LifecycleController } from '../lifecycle/controller.ts';
import { summarizeGpus } from '../gpu/summary.ts';
import type { Supervisor } from '../supervise/supervisor.ts';
import type { ControlHandler } from './server.ts';

/** What `status` shows above the instances at boot. */
export interface BootStepsView {
  rows(): unknown[];
}

export interface DaemonControl {
  supervisor: Supervisor;
  /** Re-reads the config and applies it; throws ConfigError with nothing touched. */
  reload(): Promise<unknown>;
  /** Starts the config's instances that are not running; `config` names the file to use from now on. */
  serve(config?: string, kind?: ConfigKind): Promise<unknown>;
  version: string;
  bootSteps?: BootStepsView;
  /** Drains instances around restarts and counts their requests. */
  gateway?: Pick<DaemonGateway, 'withDrain' | 'stats' | 'address'>;
  /** The machine's GPUs (absent: none are looked at). */
  gpus?: Pick<GpuMonitor, 'snapshot' | 'peek' | 'present' | 'error'>;
  /** Models on demand: load, unload, and the lifecycle part of status. */
  lifecycle?: Pick<LifecycleController, 'load' | 'unload' | 'status'>;
}

type Args = Record<string, unknown>;
type Command = (args: Args, signal: AbortSignal) => Promise<unknown> | unknown;

/** `logs -n` is capped so one reply stays well inside the protocol's 1 MiB frame. */
const MAX_LOG_LINES = 10_000;
const MAX_LOG_REPLY_BYTES = 768 * 1024;

// Keeps the newest lines that fit in one reply.
function fitReply(lines: string[]): string[] {
  let bytes = 0;
  for (let i = lines.length - 1; i >= 0; i--) {
    bytes += Buffer.byteLength(lines[i]) + 8;
    if (bytes > MAX_LOG_REPLY_BYTES) return lines.slice(i + 1);
  }
  return lines;
}

const names = (args: Args): string[] => (Array.isArray(args.names) ? args.names.map(String) : []);

/** Builds the daemon's request handler from the command table. */
export function makeControlHandler(daemon: DaemonControl): ControlHandler {
  const { supervisor } = daemon;
  // Each row with its lifecycle part (on demand, last use, the memory it needs); null without a loader.
  const withLifecycle = <Row extends { name: string }>(rows: Row[]) =>
    rows.map((row) => {
      const instance = supervisor.instance(row.name);
      return { ...row, lifecycle: instance && daemon.lifecycle ? daemon.lifecycle.status(instance) : null };
    });
  // A Map, not a plain object: a lookup of "constructor" or "__proto__" must find nothing, not Object.prototype's members.
  const commands = new Map<string, Command>(Object.entries({
    ping: () => ({ version: daemon.version, pid: process.pid }),
    status: (args) => withLifecycle(addRequestStats(supervisor.status(names(args)), daemon.gateway ?? null)),
    // Makes room by memory first (and waits for it), as a request would; resolves once the start is under way.
    load: async (args) => {
      const chosen = supervisor.select(names(args), false);
      if (daemon.lifecycle === undefined) throw new SupervisorError('models are not loaded on demand by this daemon');
      for (const instance of chosen) {
        const answer = await daemon.lifecycle.load(instance.name, 'load command');
        if (!answer.ok) throw new SupervisorError(`${instance.name}: cannot load: ${answer.reason}`);
      }
      return withLifecycle(supervisor.status(chosen.map((i) => i.name)));
    },
    unload: async (args) => {
      const chosen = supervisor.select(names(args), args.all === true);
      await Promise.all(chosen.map((i) => (daemon.lifecycle ? daemon.lifecycle.unload(i.name, 'unload command') : i.unload('unload command'))));
      return withLifecycle(supervisor.status(chosen.map((i) => i.name)));
    },
    // `ready` answers `health --ready` (Kubernetes readiness): the gateway listens and has an instance to serve.
    health: () => ({ ...supervisor.health(), ready: supervisor.readiness((daemon.gateway?.address ?? null) !== null) }),
    // `fresh`: ask nvidia-smi now (supervisor gpus); else the last answer, so status stays fast.
    gpus: async (args) => {
      const monitor = daemon.gpus;
      if (monitor === undefined) return { present: false, error: null, gpus: [] };
      const snapshot = args.fresh === true ? await monitor.snapshot() : monitor.peek();
      const memory = supervisor.status().map((s) => ({ name: s.name, memory: s.gpu?.memory ?? [] }));
      return { present: monitor.present === true, error: monitor.error, at: snapshot ? new Date(snapshot.at).toISOString() : null, gpus: summarizeGpus(snapshot, memory) };
    },
    start: async (args) => {
      const chosen = supervisor.select(names(args), args.all === true);
      await Promise.all(chosen.map((i) => i.start('start command')));
      return supervisor.status(chosen.map((i) => i.name));
    },
    stop: async (args) => {
      const chosen = supervisor.select(names(args), args.all === true);
      await Promise.all(chosen.map((i) => i.stop('stop command')));
      return supervisor.status(chosen.map((i) => i.name));
    },
    restart: async (args) => {
      // `install-pkg --restart`: every instance (not stopped by hand) whose executable lies under the bundle.
      const under = typeof args.under === 'string' ? args.under.replace(/\/+$/, '') : null;
      const chosen =
        under !== null
          ? supervisor.instances.filter(
              (i) => (i.plan.executable === under || i.plan.executable.startsWith(`${under}/`)) && i.state !== 'stopped',
            )
          : supervisor.select(names(args), args.all === true);
      const restart = () => Promise.all(chosen.map((i) => i.restart('restart command')));
      // Through the gateway, in-flight requests finish first and new ones wait for the restart.
      await (daemon.gateway ? daemon.gateway.withDrain(chosen.map((i) => i.name), restart) : restart());
      return supervisor.status(chosen.map((i) => i.name));
    },
    reload: () => daemon.reload(),
    serve: (args) => {
      const kind = typeof args.engine === 'string' ? parseConfigKind(args.engine) : 'llama-cpp';
      if (kind === null) throw new UsageError(`unknown engine ${JSON.stringify(args.engine)} (expected llama-cpp, vllm or sglang)`);
      return daemon.serve(typeof args.config === 'string' ? args.config : undefined, kind);
    },
    'boot-steps': () => daemon.bootSteps?.rows() ?? [],
    logs: async (args, signal) => {
      const [instance] = supervisor.select([String(args.name ?? '')], false);
      const file = instance.plan.logFile;
      const count = Math.min(Number.isInteger(args.lines) ? (args.lines as number) : 50, MAX_LOG_LINES);
      const head = await readLastLines(file, count).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return [] as string[];
        throw new SupervisorError(`cannot read ${file}: ${err.message}`);
      });
      if (args.follow !== true) return { file, lines: fitReply(head) };
      return {
        stream: (async function* () {
          if (head.length > 0) yield `${head.join('\n')}\n`;
          yield* followLog(file, signal);
        })(),
      };
    },
  } satisfies Record<string, Command>));
  return async (cmd, args, ctx) => {
    const command = commands.get(cmd);
    if (command === undefined) {
      throw new UsageError(`unknown command "${cmd}" (known: ${[...commands.keys()].join(', ')})`);
    }
    return command(args, ctx.signal);
  };
}
