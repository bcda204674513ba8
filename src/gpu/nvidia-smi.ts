// Asking nvidia-smi. Without it (a CPU machine, CI) every answer is "no GPUs",
// quietly; a driver that does not answer is said once, in the result.
import { runCommand } from '../process/run-command.ts';
import { addMigDevices, GPU_QUERY_FIELDS, parseGpuCsv, parseProcessCsv, PROCESS_QUERY_FIELDS, type GpuInfo, type GpuProcess } from './inventory.ts';

/** nvidia-smi answers in tens of milliseconds; a hung driver must not hang a start. */
const NVIDIA_SMI_TIMEOUT_MS = 5000;

/** What nvidia-smi said: the GPUs, or why there are none. */
export type GpuQuery = { ok: true; gpus: GpuInfo[] } | { ok: false; absent: boolean; error: string };

export interface NvidiaSmiOptions {
  /** The executable; default `nvidia-smi` on PATH. */
  file?: string;
  env?: NodeJS.ProcessEnv;
}

/** The GPUs (with their MIG devices); `absent` when there is no nvidia-smi at all. */
export async function queryGpus({ file = 'nvidia-smi', env = process.env }: NvidiaSmiOptions = {}): Promise<GpuQuery> {
  const run = await runNvidiaSmi(file, env, [`--query-gpu=${GPU_QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits']);
  if (!run.ok) return run;
  let gpus: GpuInfo[];
  try {
    gpus = parseGpuCsv(run.stdout);
  } catch (err) {
    return { ok: false, absent: false, error: (err as Error).message };
  }
  // MIG devices are listed only by -L; without MIG the listing just repeats the GPUs.
  const listing = await runNvidiaSmi(file, env, ['-L']);
  return { ok: true, gpus: listing.ok ? addMigDevices(gpus, listing.stdout) : gpus };
}

/** The compute processes on every GPU (their pids as the driver sees them: host pids inside a container). */
export async function queryGpuProcesses({ file = 'nvidia-smi', env = process.env }: NvidiaSmiOptions = {}): Promise<GpuProcess[] | null> {
  const run = await runNvidiaSmi(file, env, [`--query-compute-apps=${PROCESS_QUERY_FIELDS.join(',')}`, '--format=csv,noheader,nounits']);
  return run.ok ? parseProcessCsv(run.stdout) : null;
}

async function runNvidiaSmi(file: string, env: NodeJS.ProcessEnv, args: string[]): Promise<{ ok: true; stdout: string } | { ok: false; absent: boolean; error: string }> {
  const run = await runCommand({ file, args, env, timeoutMs: NVIDIA_SMI_TIMEOUT_MS });
  if (run.spawnError !== null) return { ok: false, absent: /no such file/.test(run.spawnError), error: run.spawnError };
  if (!run.ok) {
    const why = run.timedOut ? `no answer within ${NVIDIA_SMI_TIMEOUT_MS / 1000} s` : `${run.stdout}${run.stderr}`.trim().split('\n')[0] || `exit code ${run.code}`;
    return { ok: false, absent: false, error: `nvidia-smi: ${why}` };
  }
  return { ok: true, stdout: run.stdout };
}
