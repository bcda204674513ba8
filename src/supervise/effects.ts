// The real outside world of an instance: processes, /proc, the log file, HTTP
// and the clock. Tests build their own InstanceDeps instead.
import { stat } from 'node:fs/promises';
import { INSTANCE_MARKER_ENV, SUPERVISOR_MARKER_ENV } from '../config/instance-plan.ts';
import { errnoOf } from '../process/errno.ts';
import { findProcessesWithEnv, sweepProcessesWithEnv, waitUntilGone } from '../process/marked.ts';
import type { InstanceGpu } from '../gpu/instance-gpu.ts';
import { realClock, type Clock } from './clock.ts';
import { httpProber } from './health-probe.ts';
import type { InstanceDeps } from './instance.ts';
import { RotatingLog } from './log-writer.ts';
import { canBindPort, findPortHolder } from './port-holder.ts';
import { makeProcessSpawner } from './spawn-instance.ts';
import type { Log } from '../logging/log.ts';

/** SIGKILL is delivered asynchronously: "stopped" means gone, so wait (briefly) until it is true. */
const SWEEP_WAIT_MS = 1000;

/** InstanceDeps wired to real processes and files. */
export function makeInstanceDeps({ log, clock = realClock, gpu, socketPath = null }: { log: Log; clock?: Clock; gpu?: InstanceGpu; socketPath?: string | null }): InstanceDeps {
  return {
    gpu,
    clock,
    spawner: makeProcessSpawner({ socketPath }),
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
      return (await findProcessesWithEnv(ownMarkers(instance))).includes(pid);
    },
    fileExists,
    async sweepLeftovers(instance) {
      const pids = await sweepProcessesWithEnv(ownMarkers(instance), 'SIGKILL');
      await waitUntilGone(pids, SWEEP_WAIT_MS);
      return pids;
    },
  };
}

// A missing file is false; a path that cannot name a file at all (too long, a component that is a file) is an error worth showing.
async function fileExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return false;
    throw err;
  }
}

/** The markers of this instance's processes spawned by this supervisor, wherever they moved to. */
function ownMarkers(instance: string): Record<string, string> {
  return { [INSTANCE_MARKER_ENV]: instance, [SUPERVISOR_MARKER_ENV]: String(process.pid) };
}
