// Zip-bomb checks on the central directory, before anything is extracted: an
// entry (or the whole archive) that claims to expand far more than real
// packages do, and entries whose data overlap (the trick that makes a 42 kB
// zip expand to petabytes). The sizes the directory claims are enforced again
// while inflating (extract-zip.ts), so lying about them does not help.
import { formatBytes } from './space-budget.ts';

/** What the checks need to know about one entry. */
export interface ZipEntrySizes {
  name: string;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
  /** Length of the name in bytes (the local header repeats it). */
  nameLength: number;
}

/** A shared library compresses 2-5×, text 5-10×; 100× is far beyond any real package. */
export const MAX_ZIP_RATIO = 100;
/** Entries smaller than this may have any ratio (a small file of zeros is harmless). */
const ZIP_RATIO_FLOOR = 1024 * 1024;
/** Fixed part of a local file header. */
const LOCAL_HEADER_BYTES = 30;

/** The first zip-bomb sign found, or null. */
export function findZipBomb(entries: readonly ZipEntrySizes[]): { entry?: string; offset?: number; reason: string } | null {
  for (const e of entries) {
    if (e.uncompressedSize >= ZIP_RATIO_FLOOR && e.uncompressedSize > MAX_ZIP_RATIO * Math.max(e.compressedSize, 1)) {
      const ratio = Math.round(e.uncompressedSize / Math.max(e.compressedSize, 1));
      return {
        entry: e.name,
        offset: e.localHeaderOffset,
        reason: `expands ${ratio} times (${formatBytes(e.uncompressedSize)} from ${formatBytes(e.compressedSize)}), more than the ${MAX_ZIP_RATIO} times any real package needs: refused as a zip bomb`,
      };
    }
  }
  const total = entries.reduce((sum, e) => sum + e.uncompressedSize, 0);
  const packed = entries.reduce((sum, e) => sum + e.compressedSize, 0);
  if (total >= ZIP_RATIO_FLOOR && total > MAX_ZIP_RATIO * Math.max(packed, 1)) {
    return { reason: `the entries expand ${Math.round(total / Math.max(packed, 1))} times in all (${formatBytes(total)}): refused as a zip bomb` };
  }
  const byOffset = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const before = byOffset[i - 1];
    const after = byOffset[i];
    if (before.localHeaderOffset + LOCAL_HEADER_BYTES + before.nameLength + before.compressedSize > after.localHeaderOffset) {
      return {
        entry: after.name,
        offset: after.localHeaderOffset,
        reason: `overlaps the data of entry ${JSON.stringify(before.name)} (overlapping entries are a zip-bomb technique)`,
      };
    }
  }
  return null;
}
