// The real outside world of an instance: processes, /proc, the log file, HTTP
// and the clock. Tests build their own InstanceDeps instead.
import { existsSync } from 'node:fs';
import { INSTANCE_MARKER_ENV, SUPERVISOR_MARKER_ENV } from '../config/instance-plan.ts';
import { realClock, type Clock } from './clock.ts';
import { httpProber } from './health-probe.ts';
import type { EventLog, InstanceDeps } from './instance.ts';
import { RotatingLog } from './log-writer.ts';
import { canBindPort, findPortHolder } from './port-holder.ts';
import { findMarkedProcesses, isAlive } from './process-tree.ts';
import { processSpawner } from './spawn-instance.ts';

/** InstanceDeps wired to real processes and files. */
export function makeInstanceDeps({ log, clock = realClock }: { log: EventLog; clock?: Clock }): InstanceDeps {
  return {
    clock,
    spawner: processSpawner,
    prober: httpProber,
    log,
    async openLog(plan) {
      const file = new RotatingLog({ file: plan.logFile, maxBytes: plan.policy.logMaxBytes, keep: plan.policy.logKeep });
      file.on('error', (err: Error) => log.error({ instance: plan.name, err, event: 'log-error' }, `${plan.name}: cannot write log ${plan.logFile}: ${err.message}`));
      await file.open();
      return file;
    },
    findPortHolder: async (port) => ((await canBindPort(port)) ? null : findPortHolder(port)),
    async isOwnProcess(pid, instance) {
      return (await findOwnProcesses(instance)).includes(pid);
    },
    fileExists: (path) => existsSync(path),
    async sweepLeftovers(instance) {
      const pids = await findOwnProcesses(instance);
      for (const pid of pids) signalPid(pid, 'SIGKILL');
      await waitUntilGone(pids);
      return pids;
    },
  };
}

/** SIGKILL is delivered asynchronously: "stopped" means gone, so wait (briefly) until it is true. */
const SWEEP_WAIT_MS = 1000;

async function waitUntilGone(pids: number[]): Promise<void> {
  const deadline = Date.now() + SWEEP_WAIT_MS;
  let left = pids;
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    left = left.filter((pid) => isAlive(pid));
  }
}

/** Processes of this instance spawned by this supervisor (both markers), wherever they moved to. */
async function findOwnProcesses(instance: string): Promise<number[]> {
  const [ofInstance, ofUs] = await Promise.all([
    findMarkedProcesses(INSTANCE_MARKER_ENV, instance),
    findMarkedProcesses(SUPERVISOR_MARKER_ENV, String(process.pid)),
  ]);
  const ours = new Set(ofUs);
  return ofInstance.filter((pid) => ours.has(pid));
}

// ESRCH: it exited between the scan and the signal, which is what we wanted.
function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}
