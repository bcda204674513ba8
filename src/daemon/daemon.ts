// `supervisor run`: load the config (a broken one stops us before anything
// starts), open the control socket, start the instances, and stop them all on
// SIGTERM/SIGINT within docker's grace; SIGHUP reloads. PID 1 (`boot`) reuses it.
import type { Logger } from 'pino';
import type { LaunchPlan } from '../config/instance-plan.ts';
import { loadLaunchPlan } from '../config/load-config.ts';
import { makeControlHandler } from '../control/handlers.ts';
import { startControlServer, type ControlServer } from '../control/server.ts';
import { ConfigError, formatConfigIssue } from '../errors.ts';
import { createLogger } from '../logging/logger.ts';
import { makeInstanceDeps } from '../supervise/effects.ts';
import { Supervisor } from '../supervise/supervisor.ts';

export interface DaemonOptions {
  configPath: string | null;
  socketPath: string;
  version: string;
  env?: NodeJS.ProcessEnv;
}

export interface Daemon {
  supervisor: Supervisor;
  log: Logger;
  /** Re-reads the config; a config with errors is rejected and nothing running is touched. */
  reload(): Promise<unknown>;
  /** Stops every instance and closes the socket. Safe to call twice. */
  shutdown(reason: string): Promise<void>;
  /** Resolves when the daemon has shut down. */
  done: Promise<void>;
}

const EMPTY_PLAN: LaunchPlan = { enabled: true, instances: [] };

/** Starts the daemon; resolves once the socket listens and the instances are being started. */
export async function startDaemon({ configPath, socketPath, version, env = process.env }: DaemonOptions): Promise<Daemon> {
  const log = await createLogger({ env });
  const read = () => {
    if (configPath === null) return { plan: EMPTY_PLAN, warnings: [] };
    const loaded = loadLaunchPlan(configPath, env);
    for (const warning of loaded.warnings) log.warn({ event: 'config-warning', ...warning }, formatConfigIssue(warning));
    return loaded;
  };
  const { plan } = read();
  if (configPath === null) log.warn({ event: 'no-config' }, 'no config file given: no instance is supervised');
  const supervisor = new Supervisor({ plan, deps: makeInstanceDeps({ log }) });

  let server: ControlServer | null = null;
  let closing: Promise<void> | null = null;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));

  const daemon: Daemon = {
    supervisor,
    log,
    done,
    async reload() {
      let next: LaunchPlan;
      try {
        next = read().plan;
      } catch (err) {
        if (err instanceof ConfigError) log.error({ event: 'reload-rejected', issues: err.issues }, `reload rejected, nothing changed:\n${err.message}`);
        throw err;
      }
      return supervisor.reload(next);
    },
    shutdown(reason) {
      closing ??= (async () => {
        log.info({ event: 'shutdown', reason }, `stopping all instances (${reason})`);
        await supervisor.shutdown(reason);
        await server?.close();
        log.info({ event: 'shutdown-complete' }, 'all instances stopped');
        resolveDone();
      })();
      return closing;
    },
  };

  server = await startControlServer({ path: socketPath, handle: makeControlHandler({ supervisor, reload: daemon.reload, version }), log });
  log.info({ event: 'listening', socket: socketPath, config: configPath, version, daemon_pid: process.pid }, `supervisor ${version} listening on ${socketPath}`);
  supervisor.startAll().catch((err: Error) => log.error({ err, event: 'start-all-failed' }, `starting the instances failed: ${err.message}`));
  return daemon;
}

/** Runs the daemon in the foreground until SIGTERM/SIGINT; returns the exit code. */
export async function runDaemon(options: DaemonOptions): Promise<number> {
  const daemon = await startDaemon(options);
  const stop = (signal: NodeJS.Signals) => void daemon.shutdown(`received ${signal}`);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    daemon.log.info({ event: 'sighup' }, 'SIGHUP: reloading the config');
    daemon.reload().catch((err: Error) => {
      if (!(err instanceof ConfigError)) daemon.log.error({ err }, `reload failed: ${err.message}`);
    });
  });
  await daemon.done;
  return 0;
}
