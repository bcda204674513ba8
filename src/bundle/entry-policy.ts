// Which archive entries may be extracted: pure path and link checks, no I/O.
// An EntryTree sees every entry in archive order and keeps a model of what the
// staging directory will hold, so it can refuse an entry before anything is
// written:
//   - names: absolute paths, ".." components, NUL or "\" in a name, a name or
//     component longer than Linux allows (PATH_MAX, NAME_MAX: bytes, not characters);
//   - types: device nodes, FIFOs, sockets and anything else that is not a file,
//     directory, symlink or hardlink;
//   - writes through a symlink (or under a file), and a second entry at a path;
//   - symlinks that are absolute or resolve (following the other links) outside
//     the archive, and hardlinks to anything but a regular file seen before.
// Symlinks are created by the extractors only after every other entry is
// written, so while the archive is extracted there is no symlink in staging to
// write through; `checkLinks` repeats the link checks on the final tree.

/** What an entry is. */
export type EntryKind = 'file' | 'directory' | 'symlink' | 'hardlink' | 'device' | 'fifo' | 'socket' | 'unsupported';

/** One entry as read from an archive header. */
export interface EntryHeader {
  /** The name as stored. */
  name: string;
  kind: EntryKind;
  /** How the archive names the type, for messages (e.g. "CharacterDevice"). */
  typeName?: string;
  /** Symlink: the link text; hardlink: the path of the earlier entry it links to. */
  linkTarget?: string;
  /** Where the header is, kept for messages about this entry raised later. */
  offset?: number;
}

/** Extract at `path` (relative to the archive root); `repeat` for a directory seen before; `skip` for the root itself. */
export type EntryVerdict = { ok: true; path: string; repeat?: boolean; skip?: boolean } | { ok: false; reason: string };

/** A symlink kept for creation after extraction. */
export interface LinkRecord {
  path: string;
  target: string;
  name: string;
  offset?: number;
}

/** A link that fails the final check. */
export interface LinkProblem {
  link: LinkRecord;
  reason: string;
}

/** Deepest path accepted; real packages are a few levels deep. */
export const MAX_PATH_DEPTH = 64;
/** Longest name accepted, in UTF-8 bytes (Linux PATH_MAX). */
const MAX_NAME_BYTES = 4096;
/** Longest path component accepted, in UTF-8 bytes (Linux NAME_MAX): the kernel refuses a longer file name. */
const MAX_COMPONENT_BYTES = 255;
/** Symlinks followed while resolving one target before it counts as a loop (Linux uses 40). */
export const MAX_LINK_HOPS = 40;

type Node = 'file' | 'directory' | 'symlink';
type Resolution = { ok: true; parts: string[] } | { ok: false; reason: string };

const KIND_WORDS: Record<EntryKind, string> = {
  file: 'regular file',
  directory: 'directory',
  symlink: 'symlink',
  hardlink: 'hardlink',
  device: 'device node',
  fifo: 'FIFO',
  socket: 'socket',
  unsupported: 'entry',
};

/** Normalizes an archive name to "a/b/c" ("" for the root), or says why it is refused. */
export function normalizeEntryPath(name: string): { ok: true; path: string } | { ok: false; reason: string } {
  if (name.length === 0) return { ok: false, reason: 'empty name' };
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES) return { ok: false, reason: `name is ${bytes} bytes, longer than the ${MAX_NAME_BYTES} a path may have (PATH_MAX)` };
  if (name.includes('\0')) return { ok: false, reason: 'name contains a NUL byte' };
  if (name.includes('\\')) return { ok: false, reason: 'name contains a backslash (a Windows path separator)' };
  if (name.startsWith('/')) return { ok: false, reason: 'absolute path' };
  if (/^[a-zA-Z]:/.test(name)) return { ok: false, reason: 'absolute path (drive letter)' };
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) return { ok: false, reason: 'path contains a ".." component' };
  if (parts.length > MAX_PATH_DEPTH) return { ok: false, reason: `path deeper than ${MAX_PATH_DEPTH} levels` };
  const long = parts.find((part) => Buffer.byteLength(part) > MAX_COMPONENT_BYTES);
  if (long !== undefined) {
    const reason = `a path component is ${Buffer.byteLength(long)} bytes, longer than the ${MAX_COMPONENT_BYTES} a file name may have (NAME_MAX)`;
    return { ok: false, reason };
  }
  return { ok: true, path: parts.join('/') };
}

/** True when `path` is `root` or inside it ("" is the archive root). */
export function isWithin(path: string, root: string): boolean {
  return root === '' || path === root || path.startsWith(`${root}/`);
}

/** The model of the tree an archive extracts to; add() every entry in order. */
export class EntryTree {
  readonly #nodes = new Map<string, Node>();
  readonly #links = new Map<string, LinkRecord>();

  /** Checks one entry against everything seen before it, and records it when accepted. */
  add(header: EntryHeader): EntryVerdict {
    const norm = normalizeEntryPath(header.name);
    if (!norm.ok) return norm;
    const { path } = norm;
    const what = header.typeName ? `${KIND_WORDS[header.kind]} (${header.typeName})` : KIND_WORDS[header.kind];
    if (header.kind === 'device' || header.kind === 'fifo' || header.kind === 'socket') {
      return { ok: false, reason: `${what} entries are not allowed in a package` };
    }
    if (header.kind === 'unsupported') return { ok: false, reason: `unsupported entry type ${header.typeName ?? '(unknown)'}` };
    if (path === '') {
      return header.kind === 'directory' ? { ok: true, path, skip: true } : { ok: false, reason: `a ${what} in place of the archive root` };
    }
    const parentProblem = this.#checkParents(path);
    if (parentProblem) return { ok: false, reason: parentProblem };
    const existing = this.#nodes.get(path);
    if (existing !== undefined) {
      if (existing === 'directory' && header.kind === 'directory') return { ok: true, path, repeat: true };
      return { ok: false, reason: `duplicate entry: ${path} was already extracted as a ${KIND_WORDS[existing]}` };
    }
    if (header.kind === 'symlink') {
      const problem = this.#checkSymlinkTarget(path, header.linkTarget);
      if (problem) return { ok: false, reason: problem };
      this.#links.set(path, { path, target: header.linkTarget!, name: header.name, offset: header.offset });
    }
    if (header.kind === 'hardlink') {
      const problem = this.#checkHardlinkTarget(header.linkTarget);
      if (problem) return { ok: false, reason: problem };
    }
    this.#addParents(path);
    this.#nodes.set(path, header.kind === 'directory' ? 'directory' : header.kind === 'symlink' ? 'symlink' : 'file');
    return { ok: true, path };
  }

  /** The symlinks recorded so far, in archive order. */
  get links(): LinkRecord[] {
    return [...this.#links.values()];
  }

  /** What is at a path: 'file', 'directory', 'symlink', or undefined. */
  kindOf(path: string): Node | undefined {
    return this.#nodes.get(path);
  }

  /** Paths directly under a directory ("" for the archive root). */
  childrenOf(dir: string): string[] {
    const prefix = dir === '' ? '' : `${dir}/`;
    const found: string[] = [];
    for (const path of this.#nodes.keys()) {
      if (path.startsWith(prefix) && path.length > prefix.length && !path.slice(prefix.length).includes('/')) found.push(path);
    }
    return found;
  }

  /**
   * Re-checks every symlink under `root` against the complete tree: each must
   * resolve inside `root` (the package root, "" or its single top folder).
   * Dangling links are allowed but listed.
   */
  checkLinks(root: string): { problems: LinkProblem[]; dangling: LinkRecord[] } {
    const problems: LinkProblem[] = [];
    const dangling: LinkRecord[] = [];
    const floor = root === '' ? 0 : root.split('/').length;
    for (const link of this.#links.values()) {
      if (!isWithin(link.path, root)) continue;
      const resolved = this.#resolve(parentOf(link.path), link.target, floor, 'the package root');
      if (!resolved.ok) problems.push({ link, reason: resolved.reason });
      else if (resolved.parts.length > floor && !this.#nodes.has(resolved.parts.join('/'))) dangling.push(link);
    }
    return { problems, dangling };
  }

  // Every proper prefix must be a directory (or not seen yet): never a symlink, never a file.
  #checkParents(path: string): string | null {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const node = this.#nodes.get(prefix);
      if (node === 'symlink') {
        return `would be written through the symlink ${prefix} (-> ${JSON.stringify(this.#links.get(prefix)?.target)})`;
      }
      if (node === 'file') return `its parent ${prefix} is a file, not a directory`;
    }
    return null;
  }

  #addParents(path: string): void {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      if (!this.#nodes.has(prefix)) this.#nodes.set(prefix, 'directory');
    }
  }

  #checkSymlinkTarget(path: string, target: string | undefined): string | null {
    if (target === undefined || target === '') return 'symlink without a target';
    if (target.includes('\0')) return 'symlink target contains a NUL byte';
    const bytes = Buffer.byteLength(target);
    if (bytes > MAX_NAME_BYTES) return `symlink target is ${bytes} bytes, longer than the ${MAX_NAME_BYTES} a path may have (PATH_MAX)`;
    if (target.startsWith('/')) return `symlink target ${JSON.stringify(target)} is an absolute path`;
    const resolved = this.#resolve(parentOf(path), target, 0, 'the archive');
    if (!resolved.ok) return resolved.reason;
    return null;
  }

  #checkHardlinkTarget(target: string | undefined): string | null {
    if (target === undefined || target === '') return 'hardlink without a target';
    const norm = normalizeEntryPath(target);
    if (!norm.ok) return `hardlink target ${JSON.stringify(target)}: ${norm.reason}`;
    const node = this.#nodes.get(norm.path);
    if (node !== 'file') {
      const found = node === undefined ? 'not an earlier entry' : `a ${KIND_WORDS[node]}`;
      return `hardlink target ${JSON.stringify(target)} is ${found}; a hardlink must point to a regular file extracted before it`;
    }
    return null;
  }

  // Resolves a link target from a directory the way the kernel would, following the links known so far;
  // climbing above `floor` path components (the root being checked) is an escape.
  #resolve(fromDir: string, target: string, floor: number, rootName: string): Resolution {
    const hops = { count: 0 };
    return this.#walk({ start: fromDir === '' ? [] : fromDir.split('/'), target, hops, original: target, floor, rootName });
  }

  #walk({ start, target, hops, original, floor, rootName }: WalkState): Resolution {
    if (target.startsWith('/')) return { ok: false, reason: `symlink target ${JSON.stringify(original)} leads to an absolute path` };
    const parts = [...start];
    for (const part of target.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (parts.length <= floor) return { ok: false, reason: `symlink target ${JSON.stringify(original)} resolves outside ${rootName}` };
        parts.pop();
        continue;
      }
      parts.push(part);
      const link = this.#links.get(parts.join('/'));
      if (link === undefined) continue;
      if (++hops.count > MAX_LINK_HOPS) return { ok: false, reason: `symlink target ${JSON.stringify(original)} is a symlink loop` };
      parts.pop();
      const inner = this.#walk({ start: parts, target: link.target, hops, original, floor, rootName });
      if (!inner.ok) return inner;
      parts.splice(0, parts.length, ...inner.parts);
    }
    return { ok: true, parts };
  }
}

interface WalkState {
  start: string[];
  target: string;
  hops: { count: number };
  original: string;
  floor: number;
  rootName: string;
}

function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '' : path.slice(0, slash);
}
