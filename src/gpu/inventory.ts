// The GPUs of this machine as nvidia-smi describes them, parsed from its CSV
// (`--format=csv,noheader,nounits`), and the compute processes it sees on
// them. Pure: text in, facts out, tested on recorded output.

/** One GPU (or MIG device, whose UUID starts with `MIG-`). */
export interface GpuInfo {
  index: number;
  uuid: string;
  name: string;
  /** MiB; null when the driver does not report it. */
  totalMiB: number | null;
  usedMiB: number | null;
  freeMiB: number | null;
  /** Percent busy over the driver's last sample period. */
  utilization: number | null;
  pciBusId: string | null;
  /** MIG devices carved out of this GPU. */
  mig: Array<{ index: number; uuid: string; profile: string }>;
}

/** A process holding memory on a GPU. */
export interface GpuProcess {
  pid: number;
  gpuUuid: string;
  usedMiB: number | null;
}

/** The fields asked of `nvidia-smi --query-gpu`, in this order. */
export const GPU_QUERY_FIELDS = ['index', 'uuid', 'name', 'memory.total', 'memory.used', 'memory.free', 'utilization.gpu', 'pci.bus_id'] as const;
/** The fields asked of `nvidia-smi --query-compute-apps`. */
export const PROCESS_QUERY_FIELDS = ['pid', 'gpu_uuid', 'used_memory'] as const;

/** Rows of `--query-gpu` CSV → GPUs; a malformed row is an error (nvidia-smi's own error text ends up here). */
export function parseGpuCsv(text: string): GpuInfo[] {
  return csvRows(text).map((cells, row) => {
    if (cells.length < GPU_QUERY_FIELDS.length) throw new Error(`nvidia-smi: expected ${GPU_QUERY_FIELDS.length} fields in row ${row + 1}, got: ${cells.join(', ')}`);
    const [index, uuid, name, total, used, free, utilization, bus] = cells;
    const i = number(index);
    if (i === null) throw new Error(`nvidia-smi: row ${row + 1} has no GPU index: ${cells.join(', ')}`);
    return { index: i, uuid, name, totalMiB: number(total), usedMiB: number(used), freeMiB: number(free), utilization: number(utilization), pciBusId: known(bus), mig: [] };
  });
}

/** Rows of `--query-compute-apps` CSV → processes. */
export function parseProcessCsv(text: string): GpuProcess[] {
  return csvRows(text).flatMap((cells) => {
    const pid = number(cells[0]);
    return pid === null || cells[1] === undefined ? [] : [{ pid, gpuUuid: cells[1], usedMiB: number(cells[2]) }];
  });
}

/** `nvidia-smi -L`: adds the MIG devices listed under each GPU. */
export function addMigDevices(gpus: readonly GpuInfo[], listing: string): GpuInfo[] {
  const byUuid = new Map(gpus.map((g) => [g.uuid, { ...g, mig: [] as GpuInfo['mig'] }]));
  let current: GpuInfo | undefined;
  for (const line of listing.split('\n')) {
    const gpu = /^GPU \d+: .*\(UUID: (GPU-[^)]+)\)/.exec(line);
    if (gpu) {
      current = byUuid.get(gpu[1]);
      continue;
    }
    const mig = /^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^)]+)\)/.exec(line);
    if (mig && current) current.mig.push({ profile: mig[1], index: Number(mig[2]), uuid: mig[3] });
  }
  return [...byUuid.values()];
}

/** Resolves a `gpu_ids` entry (an index or a UUID, `GPU-…` or `MIG-…`) to the GPU it names; null when none does. */
export function findGpu(gpus: readonly GpuInfo[], id: string): GpuInfo | null {
  if (/^\d+$/.test(id)) return gpus.find((g) => g.index === Number(id)) ?? null;
  return gpus.find((g) => g.uuid === id || g.mig.some((m) => m.uuid === id)) ?? null;
}

// CSV as nvidia-smi writes it: comma + space separated, no quoting (names hold no commas).
function csvRows(text: string): string[][] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => line.split(',').map((cell) => cell.trim()));
}

// `[N/A]`, `[Not Supported]` and friends mean "unknown".
function known(cell: string | undefined): string | null {
  return cell === undefined || cell === '' || cell.startsWith('[') ? null : cell;
}

function number(cell: string | undefined): number | null {
  const text = known(cell);
  if (text === null) return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}
