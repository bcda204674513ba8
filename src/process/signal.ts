// Sending signals: to one process, or to a whole process group. kill(0) and
// kill(-1) would hit our own group or every process we may signal, so targets
// are checked first. ESRCH ("nobody there") is an answer, not an error.
import { errnoOf } from './errno.ts';

/** Sends `signal` to `target` (a pid, or -pgid for a group); false when no such process or group exists. */
export function sendSignal(target: number, signal: NodeJS.Signals | number): boolean {
  try {
    process.kill(target, signal);
    return true;
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return false;
    throw err;
  }
}

/** Signals every member of process group `pgid`; false when the group has no member left. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | number): boolean {
  // pgid 1 is init's group; 0 and negatives are not groups at all.
  if (!Number.isInteger(pgid) || pgid < 2) throw new RangeError(`pgid must be an integer >= 2, received ${pgid}`);
  return sendSignal(-pgid, signal);
}
