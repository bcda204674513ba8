// Versions side by side, one active. Each install is a directory under
// llama-cpp.d/ named after its checksum; /soft/app/llama-cpp is a symlink to
// one of them, switched by renaming a new symlink over it (one atomic step: a
// reader sees the old install or the new one, never neither). history.json
// lists activations, newest last, so --rollback knows the previous version;
// pruning keeps the active and the previous version (and their archives).
import { randomBytes } from 'node:crypto';
import { lstat, readdir, readFile, readlink, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { replaceSymlink, writeFileAtomic } from '../boot/atomic-fs.ts';
import { SupervisorError } from '../errors.ts';
import { TRASH_PREFIX, type BundlePaths } from './paths.ts';

/** `.installed-from.json` in every install (upstream's file, plus the version line). */
export interface InstalledFrom {
  archive_name: string;
  sha256: string;
  installed_at: string;
  installed_at_unix: number;
  /** The line `llama-server --version` printed; null with --no-verify. */
  version: string | null;
}

/** The install the active path leads to. */
export interface ActiveInstall {
  /** 'link': our symlink into llama-cpp.d; 'directory': a real directory left by an older installer. */
  kind: 'link' | 'directory';
  /** Its directory (absolute). */
  dir: string;
  /** The version directory's name under llama-cpp.d (link only, and only if it points there). */
  name: string | null;
  record: InstalledFrom | null;
}

const RECORD_FILE = '.installed-from.json';
/** Characters of the checksum in a version directory's name. */
const VERSION_ID_LENGTH = 16;
/** How many activations history.json remembers. */
const HISTORY_LIMIT = 20;
interface History {
  version: 1;
  activations: { name: string; sha256: string | null; at: string }[];
}

/** Reads an install's `.installed-from.json`, or null if it has none (or an unreadable one). */
async function readRecord(dir: string): Promise<InstalledFrom | null> {
  try {
    const record = JSON.parse(await readFile(join(dir, RECORD_FILE), 'utf8')) as InstalledFrom;
    return typeof record.sha256 === 'string' ? record : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof SyntaxError) return null;
    throw err;
  }
}

/** Writes `.installed-from.json` (temp + rename). */
export async function writeRecord(dir: string, record: InstalledFrom): Promise<void> {
  await writeFileAtomic(join(dir, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
}

/** What the active path is now, or null if there is none (or it dangles). */
export async function readActive(paths: BundlePaths): Promise<ActiveInstall | null> {
  let info;
  try {
    info = await lstat(paths.activeLink);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  if (info.isDirectory()) return { kind: 'directory', dir: paths.activeLink, name: null, record: await readRecord(paths.activeLink) };
  if (!info.isSymbolicLink()) throw new SupervisorError(`${paths.activeLink} is neither a symlink nor a directory; move it away and retry`);
  const dir = resolve(paths.root, await readlink(paths.activeLink));
  if (!(await isDirectory(dir))) return null;
  const name = dirname(dir) === paths.versionsDir ? basename(dir) : null;
  return { kind: 'link', dir, name, record: await readRecord(dir) };
}

/** The name of a kept version directory holding exactly this checksum, if any. */
export async function findVersionBySha(paths: BundlePaths, sha256: string): Promise<string | null> {
  for (const name of await listVersions(paths)) {
    if (!name.startsWith(sha256.slice(0, VERSION_ID_LENGTH))) continue;
    if ((await readRecord(join(paths.versionsDir, name)))?.sha256 === sha256) return name;
  }
  return null;
}

/** A free directory name for a checksum: the prefix, or prefix-2, -3... when a forced reinstall needs a second one. */
export async function pickVersionName(paths: BundlePaths, sha256: string | null): Promise<string> {
  const taken = new Set(await listVersions(paths));
  const base = sha256 ? sha256.slice(0, VERSION_ID_LENGTH) : `legacy-${Date.now()}`;
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

/** Moves a real directory at the active path (an older installer's) into llama-cpp.d, so it can be kept and rolled back to. */
async function migrateLegacyDir(paths: BundlePaths, active: ActiveInstall): Promise<string> {
  const name = await pickVersionName(paths, active.record?.sha256 ?? null);
  await rename(paths.activeLink, join(paths.versionsDir, name));
  // It was the active version, so it is the one --rollback goes back to.
  await recordActivation(paths, name);
  return name;
}

/**
 * Makes `name` the active version: an older installer's real directory at the active path is moved into
 * llama-cpp.d first (and moved back if the switch fails). Returns the name of the version active before.
 */
export async function activateVersion(paths: BundlePaths, active: ActiveInstall | null, name: string): Promise<string | null> {
  if (active?.kind !== 'directory') {
    await switchActive(paths, name);
    return active?.name ?? null;
  }
  const legacy = await migrateLegacyDir(paths, active);
  try {
    await switchActive(paths, name);
  } catch (err) {
    await rename(join(paths.versionsDir, legacy), paths.activeLink);
    throw err;
  }
  return legacy;
}

/** Points the active path at a version directory, atomically. A legacy directory there must be migrated first. */
async function switchActive(paths: BundlePaths, name: string): Promise<void> {
  await replaceSymlink(paths.activeLink, relative(paths.root, join(paths.versionsDir, name)));
  await recordActivation(paths, name);
}

/** The version active before `activeName`, if its directory is still there. */
export async function findPrevious(paths: BundlePaths, activeName: string | null): Promise<string | null> {
  const { activations } = await readHistory(paths);
  const present = new Set(await listVersions(paths));
  for (let i = activations.length - 1; i >= 0; i--) {
    const { name } = activations[i];
    if (name !== activeName && present.has(name)) return name;
  }
  return null;
}

/** Removes version directories other than `keep`, and cached archives no kept version came from; returns what went. */
export async function pruneVersions(paths: BundlePaths, keep: readonly string[]): Promise<{ versions: string[]; archives: string[] }> {
  const versions: string[] = [];
  const keptShas = new Set<string>();
  for (const name of await listVersions(paths)) {
    const dir = join(paths.versionsDir, name);
    if (keep.includes(name)) {
      const sha = (await readRecord(dir))?.sha256;
      if (sha) keptShas.add(sha);
      continue;
    }
    // Renamed first, so a crash mid-delete leaves a .trash-* dir (cleaned next run), never a half version.
    const trash = join(paths.versionsDir, `${TRASH_PREFIX}${name}-${randomBytes(4).toString('hex')}`);
    await rename(dir, trash);
    await rm(trash, { recursive: true, force: true });
    versions.push(name);
  }
  const archives: string[] = [];
  for (const file of await readdirOrEmpty(paths.cacheDir)) {
    const match = /^([0-9a-f]{64})\./.exec(file);
    if (!match || keptShas.has(match[1])) continue;
    await rm(join(paths.cacheDir, file), { force: true });
    archives.push(file);
  }
  return { versions, archives };
}

/** Version directory names under llama-cpp.d (not hidden entries or history.json). */
async function listVersions(paths: BundlePaths): Promise<string[]> {
  const names: string[] = [];
  for (const name of await readdirOrEmpty(paths.versionsDir)) {
    if (name.startsWith('.')) continue;
    if (await isDirectory(join(paths.versionsDir, name), false)) names.push(name);
  }
  return names;
}

async function recordActivation(paths: BundlePaths, name: string): Promise<void> {
  const history = await readHistory(paths);
  const sha256 = (await readRecord(join(paths.versionsDir, name)))?.sha256 ?? null;
  history.activations.push({ name, sha256, at: new Date().toISOString() });
  history.activations = history.activations.slice(-HISTORY_LIMIT);
  await writeFileAtomic(paths.historyFile, `${JSON.stringify(history, null, 2)}\n`, { mode: 0o644 });
}

async function readHistory(paths: BundlePaths): Promise<History> {
  try {
    const history = JSON.parse(await readFile(paths.historyFile, 'utf8')) as History;
    if (Array.isArray(history.activations)) return history;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
  }
  return { version: 1, activations: [] };
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function isDirectory(path: string, follow = true): Promise<boolean> {
  try {
    return (follow ? await stat(path) : await lstat(path)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return false;
    throw err;
  }
}
