// Which of our children libuv waits for. libuv only reaps the children it
// spawned, one waitpid(pid) each (libuv issue 4179); if the reaper waited on one
// of those first, Node would never see its exit. Every child_process spawn in
// this thread (spawn, exec, execFile, fork) is announced on the `child_process`
// diagnostics channel, so nobody has to remember to register a child.
import type { ChildProcess } from 'node:child_process';
import diagnosticsChannel from 'node:diagnostics_channel';

/** Answers "does libuv own this pid?" for the reaper. */
export interface ChildTracker {
  /** True while libuv (or a caller, through trackChild) owns the pid. */
  isTracked(pid: number): boolean;
  /** Marks a pid as someone else's to wait for (a child not made through child_process). */
  trackChild(pid: number): void;
  untrackChild(pid: number): void;
  /** Stops listening to the channel. */
  dispose(): void;
}

const CHANNEL = 'child_process';

/** Starts following child_process spawns; must run before the first spawn it should cover. */
export function trackChildProcesses(): ChildTracker {
  // The channel fires inside ChildProcess#spawn, before `pid` is set: keep the object, read the pid later.
  const spawned = new Set<ChildProcess>();
  const explicit = new Set<number>();
  const onSpawn = (message: unknown) => {
    const child = (message as { process?: ChildProcess }).process;
    if (child) spawned.add(child);
  };
  diagnosticsChannel.subscribe(CHANNEL, onSpawn);

  return {
    isTracked(pid) {
      if (explicit.has(pid)) return true;
      for (const child of spawned) {
        if (!isOwnedByLibuv(child)) spawned.delete(child);
        else if (child.pid === pid) return true;
      }
      return false;
    },
    trackChild: (pid) => void explicit.add(pid),
    untrackChild: (pid) => void explicit.delete(pid),
    dispose() {
      diagnosticsChannel.unsubscribe(CHANNEL, onSpawn);
      spawned.clear();
    },
  };
}

// A spawn that failed never had a pid; exitCode/signalCode are set only after libuv has reaped the child.
function isOwnedByLibuv(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}
