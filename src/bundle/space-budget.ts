// Refuses an archive that would not fit: the bytes it expands to are counted
// against the free space of the staging filesystem, measured once before
// extraction, and an entry that would go over is refused before it is written.
import { statfs } from 'node:fs/promises';

/** Free bytes for an unprivileged writer on the filesystem holding `dir`. */
export async function getFreeBytes(dir: string): Promise<number> {
  const stats = await statfs(dir);
  return stats.bavail * stats.bsize;
}

/** Bytes as "12.3 MiB". */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** Counts bytes to be written against the free space. */
export class SpaceBudget {
  readonly free: number;
  readonly where: string;
  #used = 0;

  constructor({ free, where }: { free: number; where: string }) {
    this.free = free;
    this.where = where;
  }

  /** Takes `bytes` from the budget; a message when they do not fit (nothing taken then). */
  take(bytes: number): string | null {
    if (this.#used + bytes <= this.free) {
      this.#used += bytes;
      return null;
    }
    return `the archive expands to more than ${formatBytes(this.#used + bytes)} but only ${formatBytes(this.free)} is free on ${this.where}`;
  }

  get used(): number {
    return this.#used;
  }
}
