// Runs a command to its end within a time limit: its own process group,
// SIGTERM to the group at the limit and SIGKILL after a grace, output kept
// (bounded) or handed to the caller chunk by chunk. Success and failure have
// the same shape, so callers read one result.
import { isSupervisorError } from '../errors.ts';
import { describeError } from './errno.ts';
import { signalGroup } from './signal.ts';
import { spawnGroup, type AfterDrain, type ExitStatus } from './spawn-group.ts';

/** After the exit, how long the pipes may take to deliver the last output (a backgrounded grandchild can hold them for ever). */
const OUTPUT_DRAIN_MS = 200;

/** What to run and how long it may take. */
export interface RunCommandOptions {
  file: string;
  args?: readonly string[];
  /** The whole environment of the command. */
  env: Readonly<Record<string, string | undefined>>;
  timeoutMs: number;
  /** SIGTERM → SIGKILL grace once the time is up; 0 kills at once. */
  killGraceMs?: number;
  /** Bytes of each stream kept in the result (the end of stderr, the start of stdout). */
  maxOutputBytes?: number;
  /** Called with every chunk of output as it arrives. */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  /** Called once the command runs (its pid known). */
  onStart?: (pid: number) => void;
  /** Called when the time is up, just before the SIGTERM. */
  onTimeout?: () => void;
  /** Pipes still open after the drain (a daemon the command started): closed or kept reading; default closed. */
  afterDrain?: AfterDrain;
  /** Working directory; default ours. */
  cwd?: string;
}

/** How a command ended. `spawnError` is set (and nothing else ran) when it could not start. */
export interface CommandResult extends ExitStatus {
  ok: boolean;
  spawnError: string | null;
  timedOut: boolean;
  /** SIGKILL had to follow the SIGTERM. */
  forced: boolean;
  durationMs: number;
  stdout: string;
  stderr: string;
}

const DEFAULT_MAX_OUTPUT = 64 * 1024;

/** Runs a command to its end (or its time limit) and says how it went; never rejects for the command's own failures. */
export async function runCommand({
  file,
  args = [],
  env,
  timeoutMs,
  killGraceMs = 0,
  maxOutputBytes = DEFAULT_MAX_OUTPUT,
  onOutput,
  onStart,
  onTimeout,
  afterDrain = 'close',
  cwd,
}: RunCommandOptions): Promise<CommandResult> {
  const startedAt = Date.now();
  const empty = { code: null, signal: null, timedOut: false, forced: false, stdout: '', stderr: '' };
  let child;
  try {
    child = await spawnGroup({ file, args, env, cwd });
  } catch (err) {
    if (!isSupervisorError(err)) throw err;
    return { ...empty, ok: false, spawnError: describeError(err), durationMs: Date.now() - startedAt };
  }
  onStart?.(child.pid);
  const kept = { stdout: new OutputTail(maxOutputBytes, 'head'), stderr: new OutputTail(maxOutputBytes, 'tail') };
  for (const name of ['stdout', 'stderr'] as const) {
    child[name].on('data', (chunk: Buffer) => {
      kept[name].add(chunk);
      onOutput?.(name, chunk);
    });
  }
  let timedOut = false;
  let forced = false;
  let killTimer: NodeJS.Timeout | undefined;
  const timeoutTimer = setTimeout(() => {
    timedOut = true;
    onTimeout?.();
    if (killGraceMs === 0) {
      forced = true;
      child.signal('SIGKILL');
      return;
    }
    child.signal('SIGTERM');
    killTimer = setTimeout(() => {
      forced = true;
      child.signal('SIGKILL');
    }, killGraceMs);
  }, timeoutMs);
  const status = await child.exited;
  clearTimeout(timeoutTimer);
  clearTimeout(killTimer);
  // A command stopped for its time takes its whole group along, also children that outlived it.
  if (timedOut) signalGroup(child.pid, 'SIGKILL');
  await child.drainOutput({ ms: OUTPUT_DRAIN_MS, afterwards: afterDrain });
  return {
    ...status,
    ok: !timedOut && status.code === 0,
    spawnError: null,
    timedOut,
    forced,
    durationMs: Date.now() - startedAt,
    stdout: kept.stdout.text(),
    stderr: kept.stderr.text(),
  };
}

/** Keeps the first (head) or last (tail) `max` bytes of a stream. */
class OutputTail {
  readonly #max: number;
  readonly #keep: 'head' | 'tail';
  #chunks: Buffer[] = [];
  #bytes = 0;

  constructor(max: number, keep: 'head' | 'tail') {
    this.#max = max;
    this.#keep = keep;
  }

  add(chunk: Buffer): void {
    if (this.#bytes >= this.#max && (this.#keep === 'head' || this.#max === 0)) return;
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
    if (this.#keep === 'tail' && this.#bytes > 2 * this.#max) {
      const joined = Buffer.concat(this.#chunks).subarray(-this.#max);
      this.#chunks = [joined];
      this.#bytes = joined.length;
    }
  }

  text(): string {
    if (this.#max === 0) return '';
    const all = Buffer.concat(this.#chunks);
    return (this.#keep === 'head' ? all.subarray(0, this.#max) : all.subarray(-this.#max)).toString('utf8');
  }
}
