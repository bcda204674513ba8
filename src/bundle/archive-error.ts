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

/** `ARCHIVE: entry "NAME" (header at offset N): PROBLEM`, leaving out what is not known. */
export function formatArchiveProblem({ archive, problem, entry, offset, offsetKind }: ArchiveLocation & { archive: string; problem: string }): string {
  const where: string[] = [];
  if (entry !== undefined) where.push(`entry ${JSON.stringify(entry)}`);
  if (offset !== undefined) where.push(offsetKind ? `at ${offsetKind} offset ${offset}` : `header at offset ${offset}`);
  if (where.length === 0) return `${archive}: ${problem}`;
  const location = entry !== undefined && offset !== undefined ? `${where[0]} (${where[1]})` : where[0];
  return `${archive}: ${location}: ${problem}`;
}
