// Proves a staged package runs before it is activated: `bin/llama-server
// --version` from the staged tree, with LD_LIBRARY_PATH set to its bin/ (the
// way the supervisor will start it), within 20 s. A missing shared library
// shows up here, with the loader's message, instead of at the next start.
import { join } from 'node:path';
import { runCommand } from '../process/run-command.ts';

/** How long `llama-server --version` may take (a CUDA build initialises the driver first). */
const VERIFY_TIMEOUT_MS = 20_000;
/** Output kept from each stream; --version prints a few lines. */
const MAX_OUTPUT = 64 * 1024;
/** Lines of stderr shown when it fails. */
const TAIL_LINES = 15;

/** The version line, or why the binary does not run. */
export type VerifyResult = { ok: true; versionLine: string } | { ok: false; reason: string };

export interface VerifyOptions {
  /** The staged package root. */
  dir: string;
  env?: NodeJS.ProcessEnv;
  /** LD_LIBRARY_PATH entries under these dirs are dropped, so the active install cannot hide a missing library. */
  excludeDirs?: readonly string[];
  timeoutMs?: number;
}

/** LD_LIBRARY_PATH for the check: the package's bin/ first, then the inherited entries that do not point into an install. */
export function makeLibraryPath({ binDir, inherited, excludeDirs }: { binDir: string; inherited: string | undefined; excludeDirs: readonly string[] }): string {
  const kept = (inherited ?? '')
    .split(':')
    .filter((entry) => entry !== '' && !excludeDirs.some((dir) => entry === dir || entry.startsWith(`${dir}/`)));
  return [binDir, ...kept].join(':');
}

/** The line that names the version: "version: ..." if printed, else the first line mentioning a version, else the first line. */
export function pickVersionLine(output: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.find((l) => /^version:/i.test(l)) ?? lines.find((l) => /version/i.test(l)) ?? lines[0] ?? '';
}

/** Runs `bin/llama-server --version` in the staged package. */
export async function verifyLlamaServer({ dir, env = process.env, excludeDirs = [], timeoutMs = VERIFY_TIMEOUT_MS }: VerifyOptions): Promise<VerifyResult> {
  const binDir = join(dir, 'bin');
  const childEnv = { ...env, LD_LIBRARY_PATH: makeLibraryPath({ binDir, inherited: env.LD_LIBRARY_PATH, excludeDirs }) };
  const run = await runCommand({ file: join(binDir, 'llama-server'), args: ['--version'], env: childEnv, timeoutMs, maxOutputBytes: MAX_OUTPUT });
  if (run.spawnError !== null) return { ok: false, reason: `bin/llama-server could not be started: ${run.spawnError}` };
  const tail = run.stderr.trim().split('\n').slice(-TAIL_LINES).join('\n');
  const shown = tail === '' ? '' : `; its stderr:\n${tail}`;
  if (run.timedOut) return { ok: false, reason: `bin/llama-server --version did not finish within ${timeoutMs / 1000} s${shown}` };
  if (run.code !== 0) return { ok: false, reason: `bin/llama-server --version failed (${run.signal ?? `exit code ${run.code}`})${shown}` };
  return { ok: true, versionLine: pickVersionLine(`${run.stdout}\n${run.stderr}`) };
}
