// The daemon's view of its GPUs: nvidia-smi asked at start and then only on
// demand (a status, a start, /metrics), its answer kept for a short while, so
// an idle daemon runs nothing and status stays fast. Without nvidia-smi every
// answer is "no GPUs", and nothing is asked again.
import type { GpuInfo, GpuProcess } from './inventory.ts';
import { findGpu } from './inventory.ts';
import { queryGpuProcesses, queryGpus, type GpuQuery } from './nvidia-smi.ts';

/** What nvidia-smi said at one moment. */
export interface GpuSnapshot {
  at: number;
  gpus: readonly GpuInfo[];
  /** The compute processes; null when the driver did not list them. */
  processes: readonly GpuProcess[] | null;
}

export interface GpuMonitorOptions {
  queryGpus?: () => Promise<GpuQuery>;
  queryProcesses?: () => Promise<GpuProcess[] | null>;
  now?: () => number;
  /** How old an answer may be and still be used as it is. */
  maxAgeMs?: number;
}

/** An answer is this fresh at most, unless a caller asks for a fresher one. */
const DEFAULT_MAX_AGE_MS = 2000;

/** The GPUs of this machine, asked for when needed. */
export class GpuMonitor {
  readonly #queryGpus: () => Promise<GpuQuery>;
  readonly #queryProcesses: () => Promise<GpuProcess[] | null>;
  readonly #now: () => number;
  readonly #maxAgeMs: number;
  #latest: GpuSnapshot | null = null;
  /** false once nvidia-smi was found missing: then nothing is asked again. */
  #present: boolean | null = null;
  #error: string | null = null;
  #inFlight: Promise<GpuSnapshot | null> | null = null;

  constructor({ queryGpus: gpus = queryGpus, queryProcesses = queryGpuProcesses, now = Date.now, maxAgeMs = DEFAULT_MAX_AGE_MS }: GpuMonitorOptions = {}) {
    this.#queryGpus = gpus;
    this.#queryProcesses = queryProcesses;
    this.#now = now;
    this.#maxAgeMs = maxAgeMs;
  }

  /** The last answer (possibly old), null before the first or without GPUs. */
  get latest(): GpuSnapshot | null {
    return this.#latest;
  }

  /** Whether this machine has GPUs we can see: null until nvidia-smi first answered. */
  get present(): boolean | null {
    return this.#present;
  }

  /** Why nvidia-smi gave no answer last time (a driver problem), if it did not. */
  get error(): string | null {
    return this.#error;
  }

  /** An answer no older than `maxAgeMs` (asks nvidia-smi when the last one is older); null without GPUs. */
  async snapshot(maxAgeMs = this.#maxAgeMs): Promise<GpuSnapshot | null> {
    if (this.#present === false) return null;
    if (this.#latest !== null && this.#now() - this.#latest.at <= maxAgeMs) return this.#latest;
    this.#inFlight ??= this.#refresh().finally(() => (this.#inFlight = null));
    return this.#inFlight;
  }

  /** The latest answer at once, and a fresh one asked for in the background when it is old (status, /metrics). */
  peek(): GpuSnapshot | null {
    if (this.#present !== false && (this.#latest === null || this.#now() - this.#latest.at > this.#maxAgeMs)) void this.snapshot();
    return this.#latest;
  }

  /** The GPU indices a selection names ('all': every GPU; ids by index or UUID); [] without GPUs. */
  devicesOf(selection: 'all' | 'none' | readonly string[], gpus: readonly GpuInfo[]): number[] {
    if (selection === 'none') return [];
    if (selection === 'all') return gpus.map((g) => g.index);
    return [...new Set(selection.flatMap((id) => findGpu(gpus, id)?.index ?? []))];
  }

  async #refresh(): Promise<GpuSnapshot | null> {
    const at = this.#now();
    const [found, processes] = await Promise.all([this.#queryGpus(), this.#queryProcesses()]);
    if (!found.ok) {
      if (found.absent) this.#present = false;
      this.#error = found.absent ? null : found.error;
      return this.#latest;
    }
    this.#present = found.gpus.length > 0;
    this.#error = null;
    this.#latest = { at, gpus: found.gpus, processes };
    return this.#latest;
  }
}
