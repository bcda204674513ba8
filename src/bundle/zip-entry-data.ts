// One zip entry's data, read and checked: where it starts (from the local
// header, via yauzl), inflated when deflated, never beyond its declared size,
// and matching its declared size and CRC-32. Small entries are read in one
// piece and inflated at once; large ones are streamed with large reads.
import { createReadStream, createWriteStream } from 'node:fs';
import { writeFile, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { crc32, createInflateRaw, inflateRawSync } from 'node:zlib';
import type { Entry, ZipFile } from 'yauzl';
import { SupervisorError } from '../errors.ts';
import { ArchiveError } from './archive-error.ts';

const READ_CHUNK = 1024 * 1024;
const INFLATE_CHUNK = 256 * 1024;
/** Entries up to this size (compressed) are read in one piece and inflated at once: no stream set-up per small file. */
const SMALL_ENTRY = 1024 * 1024;

/** What every function here needs to find an entry and name it in errors. */
export interface EntrySource {
  zip: ZipFile;
  entry: Entry;
  archiveName: string;
}

/** A small entry in one read, inflated at once (never beyond its declared size), checked against its size and CRC-32. */
export async function readSmallEntry({ zip, handle, entry, archiveName }: EntrySource & { handle: FileHandle }): Promise<Buffer> {
  const where = { entry: entry.fileName, offset: entry.relativeOffsetOfLocalHeader };
  const start = await getDataStart({ zip, entry, archiveName });
  const raw = Buffer.allocUnsafe(entry.compressedSize);
  const { bytesRead } = await handle.read(raw, 0, raw.length, start);
  if (bytesRead !== raw.length) throw new ArchiveError(archiveName, 'the archive ends inside this entry\'s data (truncated)', where);
  let data = raw;
  if (entry.compressionMethod === 8) {
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.uncompressedSize) });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ERR_BUFFER_TOO_LARGE') throw new ArchiveError(archiveName, `data expands beyond the declared ${entry.uncompressedSize} bytes`, { ...where, cause: err });
      throw new ArchiveError(archiveName, `corrupt deflate data (${(err as Error).message})`, { ...where, cause: err });
    }
  }
  if (data.length !== entry.uncompressedSize) throw new ArchiveError(archiveName, `data is ${data.length} bytes, the directory says ${entry.uncompressedSize} (truncated or corrupt)`, where);
  if (crc32(data) !== entry.crc32) throw new ArchiveError(archiveName, 'CRC-32 mismatch: the data is corrupt', where);
  return data;
}

/** Writes an entry to a new file (it must not exist: staging is fresh and every path unique, so never through a symlink). */
export async function writeEntryFile({ zip, file, handle, archiveName, entry, path, mode, onRead, signal }: EntrySource & {
  file: string;
  handle: FileHandle;
  path: string;
  mode: number;
  onRead: (n: number) => void;
  signal?: AbortSignal;
}): Promise<void> {
  if (entry.compressedSize <= SMALL_ENTRY) {
    const data = await readSmallEntry({ zip, handle, entry, archiveName });
    try {
      await writeFile(path, data, { flag: 'wx', mode });
    } catch (err) {
      throw describeWriteError({ err, archiveName, entry: entry.fileName });
    }
    onRead(entry.compressedSize);
    return;
  }
  const { stages, where } = await openEntryData({ zip, file, entry, archiveName, onRead });
  const out = createWriteStream(path, { flags: 'wx', mode, highWaterMark: READ_CHUNK });
  await runStages({ stages: [...stages, out], where, archiveName, signal });
}

function describeWriteError({ err, archiveName, entry }: { err: unknown; archiveName: string; entry: string }): SupervisorError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return new SupervisorError(`${archiveName}: no space left while writing ${JSON.stringify(entry)} (${e.code})`, { cause: err });
  // The policy refuses names Linux cannot hold; this is one that fits nowhere under the staging directory.
  if (e.code === 'ENAMETOOLONG') return new ArchiveError(archiveName, 'name too long to extract (ENAMETOOLONG)', { entry, cause: err });
  return new SupervisorError(`${archiveName}: cannot extract entry ${JSON.stringify(entry)}: ${e.message}`, { cause: err });
}

async function runStages({ stages, where, archiveName, signal }: { stages: unknown[]; where: { entry: string; offset: number }; archiveName: string; signal?: AbortSignal }): Promise<void> {
  try {
    await (pipeline as (...args: unknown[]) => Promise<void>)(...stages, { signal });
  } catch (err) {
    if (err instanceof SupervisorError || (err as Error).name === 'AbortError') throw err;
    const e = err as NodeJS.ErrnoException;
    if (typeof e.code === 'string' && e.code.startsWith('Z_')) throw new ArchiveError(archiveName, `corrupt deflate data (${e.message})`, { ...where, cause: err });
    throw describeWriteError({ err, archiveName, entry: where.entry });
  }
}

// Where an entry's data starts, checked by yauzl to lie inside the file.
async function getDataStart({ zip, entry, archiveName }: EntrySource): Promise<number> {
  try {
    return (await zip.readLocalFileHeaderPromise(entry, { minimal: true })).fileDataStart;
  } catch (err) {
    throw new ArchiveError(archiveName, `corrupt local header: ${(err as Error).message}`, { entry: entry.fileName, offset: entry.relativeOffsetOfLocalHeader, cause: err });
  }
}

// The entry's data as a stream: raw bytes, inflated when deflated, counted against the declared size and CRC-32.
async function openEntryData({ zip, file, entry, archiveName, onRead }: EntrySource & { file: string; onRead?: (n: number) => void }) {
  const start = await getDataStart({ zip, entry, archiveName });
  const where = { entry: entry.fileName, offset: entry.relativeOffsetOfLocalHeader };
  const raw = entry.compressedSize === 0 ? [] : createReadStream(file, { start, end: start + entry.compressedSize - 1, highWaterMark: Math.min(READ_CHUNK, entry.compressedSize) });
  const count = async function* (chunks: AsyncIterable<Buffer>) {
    for await (const chunk of chunks) {
      onRead?.(chunk.length);
      yield chunk;
    }
  };
  const check = async function* (chunks: AsyncIterable<Buffer>) {
    let size = 0;
    let crc = 0;
    for await (const chunk of chunks) {
      size += chunk.length;
      if (size > entry.uncompressedSize) throw new ArchiveError(archiveName, `data expands beyond the declared ${entry.uncompressedSize} bytes`, where);
      crc = crc32(chunk, crc);
      yield chunk;
    }
    if (size !== entry.uncompressedSize) throw new ArchiveError(archiveName, `data is ${size} bytes, the directory says ${entry.uncompressedSize} (truncated or corrupt)`, where);
    if (crc !== entry.crc32) throw new ArchiveError(archiveName, 'CRC-32 mismatch: the data is corrupt', where);
  };
  const inflate = entry.compressionMethod === 8 ? [createInflateRaw({ chunkSize: INFLATE_CHUNK })] : [];
  return { stages: [raw, count, ...inflate, check], where };
}
