// The errno values our process and file code expects, named in one place, and
// the one way a failed spawn is described to a user.

/** The errno code of a system error (`ENOENT`, ...), or undefined for other errors. */
export function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/** A message for a caught error, without its stack. */
export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Why `file` could not be started, for people: the errno named in words. */
export function describeSpawnError(file: string, err: unknown): string {
  switch (errnoOf(err)) {
    case 'ENOENT':
      return `cannot run ${file}: no such file, or its interpreter is missing (or not found on PATH)`;
    case 'EACCES':
      return `cannot run ${file}: permission denied (not executable?)`;
    case 'ENOEXEC':
      return `cannot run ${file}: not a valid executable (missing #! line?)`;
    case 'ENAMETOOLONG':
      return `cannot run ${file}: file name too long`;
    default:
      return `cannot run ${file}: ${describeError(err)}`;
  }
}
