// The installer's user-facing failure: an archive or a package layout that
// cannot be installed. Exit 2 (EXIT.USAGE: "nothing was changed"), and the
// message says what was wrong and where: the archive, the entry and the byte
// offset of its header (in the decompressed stream for .tar.gz).
import { EXIT, SupervisorError } from '../errors.ts';

/** Where in an archive a problem is. */
export interface ArchiveLocation {
  /** The entry's name as stored in the archive. */
  entry?: string;
  /** Byte offset of the entry's header (tar: in the decompressed stream; zip: of its central directory record). */
  offset?: number;
  /** What the offset counts, when it is not an entry header ("compressed byte"). */
  offsetKind?: string;
}

/** An archive or package that is refused; the previously active install is untouched. */
export class ArchiveError extends SupervisorError {
  readonly entry: string | undefined;
  readonly offset: number | undefined;

  constructor(archive: string, problem: string, { entry, offset, offsetKind, cause }: ArchiveLocation & { cause?: unknown } = {}) {
    super(formatArchiveProblem({ archive, problem, entry, offset, offsetKind }), { exitCode: EXIT.USAGE, cause });
    this.entry = entry;
    this.offset = offset;
  }
}
Object.defineProperty(ArchiveError.prototype, 'name', { value: 'ArchiveError', enumerable: false });

/** Longest entry name a message shows, in UTF-8 bytes; a longer one is cut and its length given (names may be 4 KiB). */
const MAX_SHOWN_NAME_BYTES = 128;

/** `ARCHIVE: entry "NAME" (header at offset N): PROBLEM`, leaving out what is not known; a long NAME is cut. */
export function formatArchiveProblem({ archive, problem, entry, offset, offsetKind }: ArchiveLocation & { archive: string; problem: string }): string {
  const at = offset === undefined ? undefined : offsetKind ? `at ${offsetKind} offset ${offset}` : `header at offset ${offset}`;
  if (entry === undefined) return at === undefined ? `${archive}: ${problem}` : `${archive}: ${at}: ${problem}`;
  const bytes = Buffer.byteLength(entry);
  const details = [...(bytes > MAX_SHOWN_NAME_BYTES ? [`${bytes} bytes`] : []), ...(at === undefined ? [] : [at])];
  const name = JSON.stringify(truncateUtf8(entry, MAX_SHOWN_NAME_BYTES));
  return `${archive}: entry ${name}${details.length > 0 ? ` (${details.join(', ')})` : ''}: ${problem}`;
}

/** `text` cut to at most maxBytes of UTF-8, between two characters (never inside one), with "…" when cut. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  // By code point, so a surrogate pair (4 bytes in UTF-8) is kept or cut whole.
  for (const char of text) {
    bytes += Buffer.byteLength(char);
    if (bytes > maxBytes) break;
    end += char.length;
  }
  return `${text.slice(0, end)}…`;
}
