// Extracts a .zip into the staging directory. yauzl reads the central
// directory (names, sizes, Unix modes in the external attributes); every entry
// is checked (policy, zip-bomb limits, free space) before the first byte is
// written. Then the files are written by a few workers (zip-entry-data.ts:
// inflated, checked against the declared size and CRC-32). Symlinks (mode 0120000, the target as data) are recorded in the
// EntryTree and created later, like tar's (see symlinks.ts).
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { Entry, ZipFile } from 'yauzl';
import { ArchiveError } from './archive-error.ts';
import type { EntryHeader, EntryKind } from './entry-policy.ts';
import type { ExtractOptions } from './extract-tar.ts';
import { readSmallEntry, writeEntryFile } from './zip-entry-data.ts';
import { findZipBomb } from './zip-limits.ts';

/** What extraction learned that the layout check needs. */
export interface ZipExtractResult {
  /** No entry carried Unix modes (made on Windows): nothing is executable. */
  withoutUnixModes: boolean;
}

/** Longest symlink target accepted (Linux PATH_MAX). */
const MAX_LINK_TARGET = 4096;
/** Hosts whose external attributes carry a Unix mode in the high 16 bits: Unix, macOS. */
const UNIX_HOSTS = new Set([3, 19]);
const S_IFMT = 0o170000;
const UNIX_KINDS: Record<number, EntryKind> = {
  0o100000: 'file',
  0o040000: 'directory',
  0o120000: 'symlink',
  0o020000: 'device',
  0o060000: 'device',
  0o010000: 'fifo',
  0o140000: 'socket',
};

// yauzl is CommonJS and requires Node built-ins, which an esbuild ESM bundle cannot do
// ("Dynamic require of fs"): load it from node_modules at run time, like pino.
const yauzl = createRequire(import.meta.url)('yauzl') as typeof import('yauzl');

interface PlannedEntry {
  entry: Entry;
  path: string;
  kind: EntryKind;
  mode: number;
}

/** Extracts a zip into `dest`; refuses it (ArchiveError, nothing written) on any policy or limit violation. */
export async function extractZip({ file, archiveName, dest, tree, budget, onProgress, signal }: ExtractOptions): Promise<ZipExtractResult> {
  const zip = await openZip(file, archiveName);
  const handle = await open(file, 'r');
  let bytesRead = 0;
  const progress = (n: number): void => {
    bytesRead += n;
    onProgress?.(bytesRead);
  };
  try {
    const entries = await readCentralDirectory(zip, archiveName);
    const bomb = findZipBomb(entries.map((e) => ({ name: e.fileName, compressedSize: e.compressedSize, uncompressedSize: e.uncompressedSize, localHeaderOffset: e.relativeOffsetOfLocalHeader, nameLength: e.fileNameRaw.length })));
    if (bomb) throw new ArchiveError(archiveName, bomb.reason, { entry: bomb.entry, offset: bomb.offset });
    let withoutUnixModes = entries.length > 0;
    const files: PlannedEntry[] = [];
    const dirs: PlannedEntry[] = [];
    for (const entry of entries) {
      const where = { entry: entry.fileName, offset: entry.relativeOffsetOfLocalHeader };
      if (entry.isEncrypted()) throw new ArchiveError(archiveName, 'encrypted entries are not supported', where);
      if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
        throw new ArchiveError(archiveName, `compression method ${entry.compressionMethod} is not supported (only stored and deflate)`, where);
      }
      const { kind, mode, unix } = classifyZipEntry(entry);
      if (unix) withoutUnixModes = false;
      const header: EntryHeader = { name: entry.fileName, kind, typeName: unix ? `mode 0${(entry.externalFileAttributes >>> 16).toString(8)}` : undefined, offset: entry.relativeOffsetOfLocalHeader };
      if (kind === 'symlink') header.linkTarget = await readLinkTarget({ zip, handle, entry, archiveName });
      const verdict = tree.add(header);
      if (!verdict.ok) throw new ArchiveError(archiveName, verdict.reason, where);
      if (verdict.skip || kind === 'symlink') continue;
      if (kind === 'file') {
        const over = budget.take(entry.uncompressedSize);
        if (over) throw new ArchiveError(archiveName, over, where);
        files.push({ entry, path: verdict.path, kind, mode });
      } else dirs.push({ entry, path: verdict.path, kind, mode });
    }
    for (const dir of dirs) await mkdir(join(dest, dir.path), { recursive: true, mode: dir.mode | 0o700 });
    const made = new Set<string>(dirs.map((d) => d.path));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < files.length) {
        const planned = files[next++];
        const parent = planned.path.includes('/') ? planned.path.slice(0, planned.path.lastIndexOf('/')) : '';
        if (parent !== '' && !made.has(parent)) {
          await mkdir(join(dest, parent), { recursive: true, mode: 0o755 });
          made.add(parent);
        }
        await writeEntryFile({ zip, file, handle, archiveName, entry: planned.entry, path: join(dest, planned.path), mode: planned.mode, onRead: progress, signal });
      }
    };
    await Promise.all(Array.from({ length: Math.min(4, Math.max(2, availableParallelism())) }, worker));
    return { withoutUnixModes };
  } finally {
    zip.close();
    await handle.close();
  }
}

/** Kind and permission bits of a zip entry, from the Unix mode when the archive has one. */
export function classifyZipEntry(entry: Pick<Entry, 'versionMadeBy' | 'externalFileAttributes' | 'fileName'>): { kind: EntryKind; mode: number; unix: boolean } {
  const unixMode = UNIX_HOSTS.has(entry.versionMadeBy >> 8) ? entry.externalFileAttributes >>> 16 : 0;
  const namedDir = entry.fileName.endsWith('/') || (entry.externalFileAttributes & 0x10) !== 0;
  if (unixMode === 0) return { kind: namedDir ? 'directory' : 'file', mode: namedDir ? 0o755 : 0o644, unix: false };
  const type = unixMode & S_IFMT;
  const kind: EntryKind = type === 0 ? (namedDir ? 'directory' : 'file') : (UNIX_KINDS[type] ?? 'unsupported');
  return { kind, mode: unixMode & 0o777, unix: true };
}

function openZip(file: string, archiveName: string): Promise<ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true }, (err, zip) => {
      if (err) reject(new ArchiveError(archiveName, `corrupt zip: ${err.message}`, { cause: err }));
      else resolve(zip);
    });
  });
}

// Reads every central directory record; yauzl's own checks (names, sizes, signatures) become ArchiveErrors.
function readCentralDirectory(zip: ZipFile, archiveName: string): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    const entries: Entry[] = [];
    let recordOffset = zip.readEntryCursor as unknown as number;
    zip.on('entry', (entry: Entry) => {
      entries.push(entry);
      recordOffset = zip.readEntryCursor as unknown as number;
      zip.readEntry();
    });
    zip.once('end', () => resolve(entries));
    zip.once('error', (err: Error) => reject(describeDirectoryError({ err, archiveName, recordOffset, index: entries.length })));
    zip.readEntry();
  });
}

const YAUZL_NAME_ERRORS: ReadonlyArray<readonly [RegExp, string]> = [
  [/^absolute path: /, 'absolute path'],
  [/^invalid relative path: /, 'path contains a ".." component'],
  [/^invalid characters in fileName: /, 'name contains a backslash (a Windows path separator)'],
];

function describeDirectoryError({ err, archiveName, recordOffset, index }: { err: Error; archiveName: string; recordOffset: number; index: number }): ArchiveError {
  for (const [pattern, reason] of YAUZL_NAME_ERRORS) {
    if (pattern.test(err.message)) return new ArchiveError(archiveName, reason, { entry: err.message.replace(pattern, ''), offset: recordOffset, cause: err });
  }
  return new ArchiveError(archiveName, `corrupt zip central directory (record #${index + 1}): ${err.message}`, { offset: recordOffset, offsetKind: 'central directory', cause: err });
}

async function readLinkTarget({ zip, handle, entry, archiveName }: { zip: ZipFile; handle: FileHandle; entry: Entry; archiveName: string }): Promise<string> {
  if (entry.uncompressedSize > MAX_LINK_TARGET) {
    throw new ArchiveError(archiveName, `symlink target longer than ${MAX_LINK_TARGET} bytes`, { entry: entry.fileName, offset: entry.relativeOffsetOfLocalHeader });
  }
  return (await readSmallEntry({ zip, handle, entry, archiveName })).toString('utf8');
}

