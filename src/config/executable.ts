// Which llama-server an instance runs, and the library directory that goes in
// front of its LD_LIBRARY_PATH. The filesystem and PATH are asked through the
// planner's context, so the fallback order is tested from strings.

/** Upstream's executable fallback order when `llama_cpp_path` is empty or missing. */
const EXECUTABLE_FALLBACKS = [
  '/soft/app/llama-cpp/bin/llama-server',
  '/hard/volume/workspace/llama-cpp/build/bin/llama-server',
] as const;

/** What the lookup may ask of the outside world. */
export interface ExecutableLookup {
  /** Is this a regular file? (the executable fallback) */
  isFile(path: string): boolean;
  /** Resolve a bare command name on PATH (or on `path` when given); null when not found. */
  which(name: string, path?: string): string | null;
}

/** `[master] llama_cpp_path`, else the first fallback that is a file, else `llama-server` on PATH. */
export function resolveExecutable(configured: string | undefined, lookup: ExecutableLookup): { path: string; libraryDir: string | null } {
  let path = configured !== undefined && configured !== '' ? configured : undefined;
  path ??= EXECUTABLE_FALLBACKS.find((candidate) => lookup.isFile(candidate)) ?? 'llama-server';
  if (path.includes('/')) return { path, libraryDir: dirname(path) };
  const found = lookup.which(path);
  return { path, libraryDir: found === null ? null : dirname(found) };
}

function dirname(path: string): string {
  const cut = path.lastIndexOf('/');
  if (cut < 0) return '';
  return cut === 0 ? '/' : path.slice(0, cut);
}
