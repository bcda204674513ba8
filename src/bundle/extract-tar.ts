// Extracts a .tar or .tar.gz into the staging directory with node-tar, streaming
// (the archive is never held in memory). node-tar's filter runs the entry
// policy on every header before anything of that entry is written: a refused
// entry stops the extraction. Symlinks are not written here; they are recorded
// in the EntryTree and created after the layout checks (see symlinks.ts).
// Reading and gunzip run asynchronously (libuv threads); node-tar writes with
// its synchronous unpacker: per file that is several syscalls without a
// thread-pool round trip each (about twice as fast on many small files), and
// when it fails nothing is still being written behind our back.
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { UnpackSync, type ReadEntry } from 'tar';
import { SupervisorError } from '../errors.ts';
import { ArchiveError } from './archive-error.ts';
import type { EntryKind, EntryTree } from './entry-policy.ts';
import { formatBytes, type SpaceBudget } from './space-budget.ts';
import { TarOffsets } from './tar-offsets.ts';

/** Options of extractTar and extractZip. */
export interface ExtractOptions {
  /** The file to read (the cached copy). */
  file: string;
  /** The archive's name in messages. */
  archiveName: string;
  /** The empty staging directory. */
  dest: string;
  tree: EntryTree;
  budget: SpaceBudget;
  /** Called with the archive bytes read so far. */
  onProgress?: (bytesRead: number) => void;
  signal?: AbortSignal;
}

/** Read size: large reads keep the syscall and stream overhead small on big bundles. */
const READ_CHUNK = 1024 * 1024;
const GUNZIP_CHUNK = 256 * 1024;
/** A gzip stream that expands more than this, beyond RATIO_FLOOR bytes, is refused as a decompression bomb. */
const MAX_EXPANSION_RATIO = 100;
const RATIO_FLOOR = 16 * 1024 * 1024;

const TAR_KINDS: Record<string, EntryKind> = {
  File: 'file',
  OldFile: 'file',
  ContiguousFile: 'file',
  Directory: 'directory',
  GNUDumpDir: 'directory',
  SymbolicLink: 'symlink',
  Link: 'hardlink',
  CharacterDevice: 'device',
  BlockDevice: 'device',
  FIFO: 'fifo',
};

/** Extracts a tar stream (gzip-compressed when `gzip`) into `dest`, checking every entry first. */
export async function extractTar({ file, archiveName, dest, tree, budget, onProgress, signal, gzip }: ExtractOptions & { gzip: boolean }): Promise<void> {
  const offsets = new TarOffsets();
  const located = new WeakMap<object, { name: string; offset?: number }>();
  let compressed = 0;
  let expanded = 0;
  let refusal: SupervisorError | undefined;
  const source = createReadStream(file, { highWaterMark: READ_CHUNK });
  const refuse = (error: SupervisorError): false => {
    refusal ??= error;
    source.destroy(refusal);
    return false;
  };

  const unpack = new UnpackSync({
    cwd: dest,
    strict: true,
    preserveOwner: false,
    filter: (_path: string, entry: ReadEntry | import('node:fs').Stats) => {
      const read = entry as ReadEntry;
      const position = offsets.take();
      if (refusal) return false;
      const header = { name: read.path, kind: TAR_KINDS[read.type] ?? 'unsupported', typeName: read.type, linkTarget: read.linkpath, offset: position?.offset };
      const verdict = tree.add(header);
      if (!verdict.ok) return refuse(new ArchiveError(archiveName, verdict.reason, { entry: read.path, offset: position?.offset }));
      if (verdict.skip || header.kind === 'symlink') return false;
      if (header.kind === 'file') {
        const over = budget.take(read.size ?? 0);
        if (over) return refuse(new ArchiveError(archiveName, over, { entry: read.path, offset: position?.offset }));
      }
      // Modes are kept, less setuid/setgid/sticky: a package has no use for them.
      if (typeof read.mode === 'number') read.mode &= 0o777;
      located.set(read, { name: read.path, offset: position?.offset });
      return true;
    },
  });

  const walk = async function* (chunks: AsyncIterable<Buffer>) {
    for await (const chunk of chunks) {
      expanded += chunk.length;
      if (!gzip) {
        compressed = expanded;
        onProgress?.(compressed);
      }
      if (gzip && expanded > RATIO_FLOOR && expanded > MAX_EXPANSION_RATIO * compressed) {
        throw new ArchiveError(archiveName, `gzip data expands more than ${MAX_EXPANSION_RATIO} times (${formatBytes(expanded)} from ${formatBytes(compressed)}): refused as a decompression bomb`, { offset: compressed, offsetKind: 'compressed byte' });
      }
      offsets.push(chunk);
      const ignored = offsets.takeIgnored();
      if (ignored) {
        throw new ArchiveError(archiveName, `unsupported tar entry type ${JSON.stringify(ignored.type)} (sparse files, tape volumes and vendor types cannot be extracted)`, { entry: ignored.rawName, offset: ignored.offset });
      }
      yield chunk;
    }
  };

  // The synchronous unpacker is fed by hand (not through stream.pipeline, which misses its synchronous
  // 'finish'); it may report more than one error for a failing entry: the first one counts.
  let failure: unknown;
  unpack.on('error', (err: unknown) => {
    failure ??= err;
  });
  if (gzip) {
    source.on('data', (chunk: string | Buffer) => {
      compressed += chunk.length;
      onProgress?.(compressed);
    });
  }
  const input = gzip ? pipeline(source, createGunzip({ chunkSize: GUNZIP_CHUNK }), () => {}) : source;
  try {
    for await (const chunk of walk(input)) {
      signal?.throwIfAborted();
      unpack.write(chunk);
      if (failure !== undefined || refusal) break;
    }
    if (failure === undefined && !refusal) unpack.end();
  } catch (err) {
    failure ??= err;
  } finally {
    source.destroy();
  }
  if (refusal) throw refusal;
  if (failure !== undefined) throw describeTarFailure({ err: failure, archiveName, compressed, located });
}

/** Turns a zlib, node-tar or filesystem error into a message that names the archive and, where known, the entry. */
function describeTarFailure({ err, archiveName, compressed, located }: {
  err: unknown;
  archiveName: string;
  compressed: number;
  located: WeakMap<object, { name: string; offset?: number }>;
}): unknown {
  if (err instanceof SupervisorError || (err as Error)?.name === 'AbortError') return err;
  const e = err as NodeJS.ErrnoException & { tarCode?: string; entry?: ReadEntry; errno?: number };
  const where = e.entry ? (located.get(e.entry) ?? { name: e.entry.path }) : undefined;
  if (typeof e.code === 'string' && e.code.startsWith('Z_')) {
    return new ArchiveError(archiveName, `the gzip data is corrupt or truncated (${e.message})`, { offset: compressed, offsetKind: 'compressed byte', cause: err });
  }
  if (e.tarCode === 'TAR_BAD_ARCHIVE' && /Truncated input/.test(e.message)) {
    return new ArchiveError(archiveName, 'the archive ends in the middle of this entry (truncated)', { entry: where?.name, offset: where?.offset, cause: err });
  }
  if (e.tarCode === 'TAR_BAD_ARCHIVE') {
    return new ArchiveError(archiveName, `not a valid tar archive (${e.message.replace(/^TAR_BAD_ARCHIVE: /, '')})`, { cause: err });
  }
  if (e.tarCode === 'TAR_ENTRY_INVALID') {
    return new ArchiveError(archiveName, `corrupt tar header (${e.message.replace(/^TAR_ENTRY_INVALID: /, '')})`, { cause: err });
  }
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') {
    return new SupervisorError(`${archiveName}: no space left while writing ${where ? JSON.stringify(where.name) : 'the package'} (${e.code})`, { cause: err });
  }
  if (e.code === 'ENAMETOOLONG' && where) {
    // The policy refuses names Linux cannot hold; this is one that fits nowhere under the staging directory.
    return new ArchiveError(archiveName, 'name too long to extract (ENAMETOOLONG)', { entry: where.name, offset: where.offset, cause: err });
  }
  if (where) return new SupervisorError(`${archiveName}: cannot write entry ${JSON.stringify(where.name)}: ${e.message}`, { cause: err });
  return err;
}
