// `supervisor boot [-- CMD ARGS...]`: the container's PID 1, read top to
// bottom like tini's main. Each step is one call; the PID-1 duties live in
// their own files beside this one (reaper, signals, main-process, stop-budget).
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { runBootSteps, type ActionResult } from '../boot/sequence.ts';
import { BootRecorder } from '../boot/steps.ts';
import type { ConfigKind } from '../config/config-kind.ts';
import { getSocketPath } from '../control/socket-path.ts';
import { startDaemon, type Daemon } from '../daemon/daemon.ts';
import { EXIT } from '../errors.ts';
import { createLogger } from '../logging/logger.ts';
import { spawnMain, type MainProcess } from './main-process.ts';
import { becomeSubreaper, startReaper, type Reaper } from './reaper.ts';
import { configureSignals, ignoreTerminalStopSignals, killEverythingLeft } from './signals.ts';
import { checkStopTimeoutsFit, readStopBudget, remainingMs, startStopBudget } from './stop-budget.ts';

export interface BootOptions {
  /** The main process (`-- CMD ARGS`); none: run until signalled. */
  command: string[];
  version: string;
  env?: NodeJS.ProcessEnv;
  /** How the helper shims start us (default: `supervisor` on PATH). */
  shimCommand?: readonly string[];
}

/** Runs the container until its main process exits or it is told to stop; returns the exit code. */
export async function runBoot({ command, version, env = process.env, shimCommand }: BootOptions): Promise<number> {
  // Reap orphans from the very start, before anything is spawned.
  const log = await createLogger({ env });
  const reaper = startReaper({ log });
  // Under `docker run --init` or tini we are not PID 1: orphans of our children must still come to us.
  if (process.pid !== 1) becomeSubreaper({ log });
  const budget = readStopBudget(env);
  if (budget.warning) log.warn({ event: 'stop-budget' }, budget.warning);

  // The daemon first (control socket up, nothing served yet): boot steps report into it.
  const recorder = new BootRecorder();
  const daemon = await startDaemon({ configPath: null, socketPath: getSocketPath(env), version, env, log, serveOnStart: false, bootSteps: recorder, stopOrphans: false });
  let main: MainProcess | null = null;
  let mainGone = false;
  const stopping = { started: false, done: null as Promise<void> | null };
  let announceStop!: () => void;
  const stopRequested = new Promise<void>((resolve) => (announceStop = resolve));
  const stopAll = (reason: string) => {
    stopping.started = true;
    announceStop();
    stopping.done ??= stopEverything({ daemon, main: mainGone ? null : main, reaper, log, budgetS: budget.budgetS, reason });
    return stopping.done;
  };

  // Signals: TERM/INT stop, HUP reloads; all of them also reach the main process group.
  const signals = configureSignals({
    onStop: (signal) => void stopAll(`received ${signal}`),
    onReload: () => void daemon.reload().catch((err: Error) => log.error({ event: 'reload-failed' }, `reload failed: ${err.message}`)),
    forwardTo: () => (mainGone ? null : (main?.pid ?? null)),
    log,
  });

  // Boot steps in upstream's order: hooks, links, hooks, sshd, bundle, shims, auto-serve.
  // Once a stop is asked for, nothing more is started.
  const skipped = { state: 'skipped' as const, message: 'the container is stopping' };
  const steps = runBootSteps({
    env,
    log,
    recorder,
    shimCommand,
    actions: {
      startSshd: (plan) => {
        if (stopping.started) return;
        daemon.supervisor.addSystemInstance(plan).catch((err: Error) => log.error({ event: 'sshd' }, err.message));
      },
      installBundle: (archive) => (stopping.started ? Promise.resolve(skipped) : installBundle({ archive, env, log })),
      installEngineBundle: (kind) => (stopping.started ? Promise.resolve(skipped) : installEngine({ kind, env, log })),
      serve: (configPath, kind) => (stopping.started ? Promise.resolve(skipped) : serveConfig({ daemon, configPath, kind })),
    },
  });
  const outcome = await Promise.race([steps, stopRequested.then(() => null)]);
  if (outcome === null) {
    // Stopped in the middle of a boot step (a long hook): stop, then end what the step still runs.
    await stopping.done;
    killEverythingLeft({ log });
    signals.dispose();
    return EXIT.OK;
  }
  warnIfStopsCannotFit({ daemon, budgetS: budget.budgetS, log });
  if (outcome.mustExit) {
    await stopAll('a boot step failed and SUPERVISOR_ON_BOOT_ERROR=exit');
    signals.dispose();
    return EXIT.FAILED;
  }

  // The main process (CMD) with the container's stdin and TTY; without one, run until signalled.
  if (command.length > 0 && !stopping.started) {
    // The terminal goes to the main process: writing to it from the background must not stop us.
    ignoreTerminalStopSignals();
    main = spawnMain({ command: command[0], args: command.slice(1), env, reaper, log });
    const exit = await main.exited;
    mainGone = true;
    log.info({ event: 'main-exit', ...exit }, `main process exited (${exit.exitCode}): stopping everything`);
    const stoppedByUs = stopping.started;
    await stopAll('the main process exited');
    signals.dispose();
    // A main process we stopped ourselves (docker stop) ends cleanly unless it chose its own code.
    return stoppedByUs && exit.signal !== null ? EXIT.OK : exit.exitCode;
  }
  await daemon.done;
  await stopping.done;
  signals.dispose();
  return EXIT.OK;
}

// Stops the main process, the instances and sshd in parallel within the budget, then SIGKILLs what is left.
async function stopEverything({
  daemon,
  main,
  reaper,
  log,
  budgetS,
  reason,
}: {
  daemon: Daemon;
  main: MainProcess | null;
  reaper: Reaper;
  log: Logger;
  budgetS: number;
  reason: string;
}): Promise<void> {
  const budget = startStopBudget({ budgetS, nowMs: performance.now() });
  const graceMs = budget.graceDeadlineMs - performance.now();
  const lastResort = setTimeout(() => {
    log.warn({ event: 'stop-budget-exhausted' }, `stop budget of ${budgetS} s nearly spent: killing whatever is left`);
    main?.signal('SIGKILL');
    killEverythingLeft({ log });
  }, graceMs);
  await Promise.all([
    daemon.shutdown(reason, { budgetMs: Math.max(0, graceMs) }),
    main ? Promise.race([main.exited, sleep(remainingMs(budget, performance.now()))]) : undefined,
  ]);
  clearTimeout(lastResort);
  reaper.reapNow();
  reaper.stop();
}

// Lazy: node-tar and yauzl load only when a bundle is installed.
async function installBundle({ archive, env, log }: { archive: string; env: NodeJS.ProcessEnv; log: Logger }): Promise<ActionResult> {
  const { installPackage } = await import('../bundle/install.ts');
  try {
    const result = await installPackage({ archive, env, log: (line) => log.info({ event: 'bundle' }, line) });
    return { state: result.warnings.length > 0 ? 'warning' : 'ok', message: `${result.status}: ${result.version ?? result.sha256.slice(0, 12)}${result.warnings.length > 0 ? `; ${result.warnings.join('; ')}` : ''}` };
  } catch (err) {
    return { state: 'failed', message: (err as Error).message };
  }
}

// Lazy too: only a container with an engine bundle pays for its installer.
async function installEngine({ kind, env, log }: { kind: 'vllm' | 'sglang'; env: NodeJS.ProcessEnv; log: Logger }): Promise<ActionResult> {
  const { installEngineBundle } = await import('../bundle/engine-bundle.ts');
  try {
    const result = await installEngineBundle({ kind, env, log: (line) => log.info({ event: 'engine-bundle', engine: kind }, line) });
    return { state: result.status === 'missing-bundle' || result.status === 'nothing-to-do' ? 'warning' : 'ok', message: result.message };
  } catch (err) {
    return { state: 'failed', message: (err as Error).message };
  }
}

async function serveConfig({ daemon, configPath, kind }: { daemon: Daemon; configPath: string; kind: ConfigKind }): Promise<ActionResult> {
  try {
    const summary = await daemon.serve(configPath, kind);
    return { state: 'ok', message: `started: ${summary.started.join(', ') || 'none'}` };
  } catch (err) {
    return { state: 'failed', message: (err as Error).message };
  }
}

function warnIfStopsCannotFit({ daemon, budgetS, log }: { daemon: Daemon; budgetS: number; log: Logger }): void {
  const stops = daemon.supervisor.instances.map((i) => ({ name: i.name, stopTimeoutS: i.plan.policy.stopTimeoutS }));
  const warning = checkStopTimeoutsFit({ budgetS, stops });
  if (warning) log.warn({ event: 'stop-budget' }, warning);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
