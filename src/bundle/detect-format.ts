// Which kind of archive a file is, from its first bytes (magic numbers), not
// its name: a gzip file named .tar works, and a .zip that is really an HTML
// error page gets an error saying so.
import { open } from 'node:fs/promises';
import { basename } from 'node:path';

/** The formats the installer extracts. */
export type ArchiveFormat = 'tar' | 'tar.gz' | 'zip';

/** What the supported formats are, for error messages. */
export const SUPPORTED_FORMATS = '.tar, .tar.gz / .tgz (gzip-compressed tar) and .zip';

/** Bytes detectFormat looks at: a tar header block. */
const HEAD_BYTES = 512;

/** A recognised format, or what the file is instead. */
export type Detection = { ok: true; format: ArchiveFormat } | { ok: false; what: string };

const MAGIC: ReadonlyArray<readonly [number[], string]> = [
  [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz-compressed data (.tar.xz)'],
  [[0x42, 0x5a, 0x68], 'bzip2-compressed data (.tar.bz2)'],
  [[0x28, 0xb5, 0x2f, 0xfd], 'zstd-compressed data (.tar.zst)'],
  [[0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], 'a 7-Zip archive'],
  [[0x52, 0x61, 0x72, 0x21, 0x1a, 0x07], 'a RAR archive'],
  [[0x50, 0x4b, 0x07, 0x08], 'a split (multi-volume) zip'],
  [[0x7f, 0x45, 0x4c, 0x46], 'an ELF executable, not an archive'],
];

const startsWith = (head: Buffer, bytes: readonly number[]): boolean => head.length >= bytes.length && bytes.every((b, i) => head[i] === b);

/** Names the format of a file from its first HEAD_BYTES bytes (fewer if the file is shorter). */
export function detectFormat(head: Buffer): Detection {
  if (head.length === 0) return { ok: false, what: 'an empty file' };
  if (startsWith(head, [0x1f, 0x8b])) return { ok: true, format: 'tar.gz' };
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || startsWith(head, [0x50, 0x4b, 0x05, 0x06])) return { ok: true, format: 'zip' };
  if (isTarHeader(head)) return { ok: true, format: 'tar' };
  for (const [bytes, what] of MAGIC) if (startsWith(head, bytes)) return { ok: false, what };
  const text = head.subarray(0, 64).toString('latin1').trimStart().toLowerCase();
  if (text.startsWith('<!doctype html') || text.startsWith('<html')) return { ok: false, what: 'an HTML page (a failed download?)' };
  const hex = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return { ok: false, what: `an unknown format (first bytes ${hex})` };
}

/** A tar header block: "ustar" at 257, or (old v7 tar) a valid header checksum. */
export function isTarHeader(head: Buffer): boolean {
  if (head.length < HEAD_BYTES) return false;
  if (head.toString('latin1', 257, 262) === 'ustar') return true;
  const stored = parseInt(head.toString('latin1', 148, 156).replace(/\0.*$/s, '').trim(), 8);
  if (!Number.isInteger(stored) || head[0] === 0) return false;
  let sum = 0;
  for (let i = 0; i < HEAD_BYTES; i++) sum += i >= 148 && i < 156 ? 0x20 : head[i];
  return sum === stored;
}

/** The file extension a file name suggests, to warn when it disagrees with the content. */
export function formatFromName(name: string): ArchiveFormat | null {
  const lower = basename(name).toLowerCase();
  if (lower.endsWith('.tar.gz') || lower.endsWith('.tgz')) return 'tar.gz';
  if (lower.endsWith('.tar')) return 'tar';
  if (lower.endsWith('.zip')) return 'zip';
  return null;
}

/** Reads the first HEAD_BYTES bytes of a file. */
export async function readHead(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
