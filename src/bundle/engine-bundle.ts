// Upstream's vLLM and SGLang offline bundles (install-vllm-offline.sh,
// install-sglang-offline.sh), with their variables and meaning, installed
// atomically: each bundle becomes its own version directory next to the
// project dir, built and verified there (its Python imports checked), and
// only then is the project dir — a symlink — switched to it. The previous
// version is kept. Upstream installed in place: a failed or interrupted step
// left a half-installed project.
//
//   <project>            symlink → <project>.d/<sha12> (what the runner uses)
//   <project>.d/<sha12>/ one version; complete once .installed-from.json is in it
//   <project>.d/.lock    held while an install runs
//
// A pixi environment holds absolute paths to its own prefix, so a version is
// built where it stays (never renamed); an incomplete one is removed.
import { copyFile, lstat, mkdir, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { replaceSymlink } from '../boot/atomic-fs.ts';
import { readText } from '../boot/env-flags.ts';
import { systemUsers, which } from '../config/load-config.ts';
import { makeRunnerIdentity } from '../engines/python-runner.ts';
import { SGLANG_DEFAULTS } from '../engines/sglang.ts';
import { VLLM_DEFAULTS } from '../engines/vllm.ts';
import { EngineBundleError, EXIT } from '../errors.ts';

export { EngineBundleError };
import { runCommand } from '../process/run-command.ts';
import { hashFile } from './cache.ts';
import { readHead, isTarHeader } from './detect-format.ts';
import { EntryTree } from './entry-policy.ts';
import { extractTar } from './extract-tar.ts';
import { acquireLock } from './lock.ts';
import { getFreeBytes, SpaceBudget } from './space-budget.ts';
import { writeSymlinks } from './symlinks.ts';

export type EngineKind = 'vllm' | 'sglang';

export interface EngineInstallResult {
  status: 'nothing-to-do' | 'missing-bundle' | 'installed' | 'already-installed' | 'switched';
  message: string;
  /** The active version directory afterwards. */
  version: string | null;
  previous: string | null;
}

const MARKER = '.installed-from.json';
/** pixi lock/install of a real bundle can take many minutes; each step is bounded all the same. */
const STEP_TIMEOUT_MS = 60 * 60_000;
const VERIFY_TIMEOUT_MS = 10 * 60_000;

interface KindFacts {
  prefix: string;
  projectDir(env: NodeJS.ProcessEnv): string;
  userEnv: string;
  /** What `python -c` must be able to import. */
  imports: string;
}

const KINDS: Record<EngineKind, KindFacts> = {
  vllm: {
    prefix: 'AUTO_INFER_VLLM',
    projectDir: (env) => readText(env, VLLM_DEFAULTS.projectDirEnv) ?? VLLM_DEFAULTS.projectDir,
    userEnv: VLLM_DEFAULTS.userEnv,
    imports: 'import vllm',
  },
  sglang: {
    prefix: 'AUTO_INFER_SGLANG',
    projectDir: (env) => readText(env, SGLANG_DEFAULTS.projectDirEnv) ?? SGLANG_DEFAULTS.projectDir,
    userEnv: SGLANG_DEFAULTS.userEnv,
    imports: 'import torch, sglang',
  },
};

const VLLM_TEMPLATE_DIR = '/pei-from-host/stage-2/utilities/vllm-pixi-template';

/** Installs AUTO_INFER_VLLM_BUNDLE_PATH / AUTO_INFER_SGLANG_BUNDLE_PATH (or `bundle`), verified and switched atomically. */
export async function installEngineBundle({
  kind,
  bundle,
  env = process.env,
  log = () => undefined,
}: {
  kind: EngineKind;
  bundle?: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
}): Promise<EngineInstallResult> {
  const facts = KINDS[kind];
  const bundlePath = bundle ?? readText(env, `${facts.prefix}_BUNDLE_PATH`);
  const none = { version: null, previous: null };
  if (bundlePath === null) return { status: 'nothing-to-do', message: `${facts.prefix}_BUNDLE_PATH is not set; nothing to install`, ...none };
  if (!(await isFile(bundlePath))) return { status: 'missing-bundle', message: `bundle not found: ${bundlePath}; nothing installed`, ...none };
  const project = facts.projectDir(env);
  const versions = `${project}.d`;
  const environment = readText(env, 'AUTO_INFER_VLLM_PIXI_ENVIRONMENT') ?? 'default';

  // Everything that can be known before a change: the sha, the project path, the tools.
  const sha256 = await hashFile(bundlePath);
  const expected = readText(env, `${facts.prefix}_BUNDLE_SHA256`);
  if (expected !== null && expected.toLowerCase() !== sha256) {
    throw new EngineBundleError(`${bundlePath}: sha256 is ${sha256}, ${facts.prefix}_BUNDLE_SHA256 says ${expected}; nothing installed`);
  }
  const current = await readActiveLink(project);
  if (current.kind === 'directory') {
    throw new EngineBundleError(`${project} is a directory (an in-place install by upstream's script?); move it away: versions are installed side by side in ${versions} and ${project} becomes a link to the active one`, { exitCode: EXIT.USAGE });
  }
  // The same PATH the runner will launch with: the user's pixi first.
  const who = makeRunnerIdentity({ configured: undefined, userEnv: facts.userEnv, env, users: systemUsers });
  const toolEnv: Record<string, string | undefined> = { ...env, PATH: who.env.PATH, PYTHONUNBUFFERED: '1' };
  const sh = kind === 'sglang' && bundlePath.endsWith('.sh');
  let tool: string | null = null;
  let template: string | null = null;
  if (kind === 'vllm') {
    tool = which('pixi', toolEnv.PATH);
    if (tool === null) throw new EngineBundleError(`pixi not found on PATH (${toolEnv.PATH}): cannot install ${bundlePath}; nothing was changed`);
    template = readText(env, 'AUTO_INFER_VLLM_PIXI_TEMPLATE_DIR') ?? VLLM_TEMPLATE_DIR;
    if (!(await isFile(join(template, 'pixi.toml')))) {
      throw new EngineBundleError(`no pixi.toml in the vLLM pixi template ${template} (AUTO_INFER_VLLM_PIXI_TEMPLATE_DIR); nothing was changed`, { exitCode: EXIT.USAGE });
    }
  } else if (!sh) {
    if (!/\.(tar|tar\.gz|tgz)$/.test(bundlePath)) throw new EngineBundleError(`${bundlePath}: expected a .sh (self-extracting) or .tar/.tar.gz/.tgz bundle`, { exitCode: EXIT.USAGE });
    const configured = readText(env, 'AUTO_INFER_SGLANG_PIXI_UNPACK_BIN');
    tool = configured ?? which('pixi-unpack', toolEnv.PATH);
    if (tool === null || (configured !== null && !(await isFile(configured)))) {
      throw new EngineBundleError(
        `pixi-unpack not found (${configured !== null ? `AUTO_INFER_SGLANG_PIXI_UNPACK_BIN=${configured}` : `PATH ${toolEnv.PATH}`}): cannot unpack ${bundlePath}; nothing was changed (upstream downloaded it from GitHub; this container has no such fallback)`,
      );
    }
  }

  await mkdir(versions, { recursive: true, mode: 0o755 });
  const lock = await acquireLock({ path: join(versions, '.lock'), onWait: (owner) => log(`waiting for the install of pid ${owner.pid}`) });
  try {
    const name = sha256.slice(0, 12);
    const dir = join(versions, name);
    const activeName = current.kind === 'link' ? current.name : null;
    if (await isComplete(dir, sha256)) {
      if (activeName === name) return { status: 'already-installed', message: `already installed from ${basename(bundlePath)} (${name})`, version: dir, previous: null };
      await replaceSymlink(project, relative(dirname(project), dir));
      await prune(versions, [name, activeName]);
      return { status: 'switched', message: `switched to the installed ${name}`, version: dir, previous: activeName };
    }
    // An incomplete directory of this name is a crashed attempt.
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o755 });
    try {
      const step = (what: string, file: string, args: string[], cwd = dir, timeoutMs = STEP_TIMEOUT_MS) => run({ what, file, args, cwd, env: toolEnv, timeoutMs, log });
      if (kind === 'vllm') {
        await copyFile(join(template!, 'pixi.toml'), join(dir, 'pixi.toml'));
        if (await isFile(join(template!, 'pixi.lock'))) await copyFile(join(template!, 'pixi.lock'), join(dir, 'pixi.lock'));
        await extractBundle(bundlePath, dir);
        if (!(await isDirectory(join(dir, 'channel')))) throw new EngineBundleError(`${bundlePath}: no channel/ in the bundle (is it a pixi-pack bundle?)`, { exitCode: EXIT.USAGE });
        const manifest = join(dir, 'pixi.toml');
        await writeFile(manifest, (await readFile(manifest, 'utf8')).replace(/^channels\s*=.*$/m, 'channels = ["./channel"]'));
        await step('pixi lock', tool!, ['lock', '--manifest-path', manifest]);
        await step('pixi install', tool!, ['install', '--manifest-path', manifest, '--environment', environment, '--frozen']);
        await step('verify', tool!, ['run', '--manifest-path', manifest, '--environment', environment, '--frozen', 'python', '-c', facts.imports], dir, VERIFY_TIMEOUT_MS);
      } else {
        if (sh) {
          await copyFile(bundlePath, join(dir, '_bundle.sh'));
          await step('unpack', '/bin/sh', ['_bundle.sh']);
        } else await step('pixi-unpack', tool!, [bundlePath]);
        const python = join(dir, 'env', 'bin', 'python');
        if (!(await isFile(python))) throw new EngineBundleError(`${bundlePath}: no env/bin/python after unpacking`, { exitCode: EXIT.USAGE });
        await step('verify', python, ['-c', facts.imports], dir, VERIFY_TIMEOUT_MS);
      }
      // Upstream ran these steps as the user who runs the engine; we hand the finished tree over to them.
      await handOver({ dir, user: who.user, log });
      const record = { bundle_path: bundlePath, bundle_sha256: sha256, pixi_environment: environment, installed_at_unix: Math.floor(Date.now() / 1000) };
      await writeFile(join(dir, MARKER), `${JSON.stringify(record, null, 2)}\n`);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    await replaceSymlink(project, relative(dirname(project), dir));
    await prune(versions, [name, activeName]);
    log(`installed ${basename(bundlePath)} as ${dir}; ${project} -> ${name}`);
    return { status: 'installed', message: `installed ${basename(bundlePath)} (${name})${activeName ? `; previous ${activeName} kept` : ''}`, version: dir, previous: activeName };
  } finally {
    await lock.release();
  }
}

async function handOver({ dir, user, log }: { dir: string; user: string | null; log: (line: string) => void }): Promise<void> {
  if (user === null || !systemUsers.isRoot) return;
  const ids = systemUsers.ids?.(user) ?? null;
  if (ids === null) return;
  await run({ what: `chown to ${user}`, file: 'chown', args: ['-R', `${ids.uid}:${ids.gid}`, dir], cwd: dir, env: { PATH: '/usr/bin:/bin' }, timeoutMs: STEP_TIMEOUT_MS, log });
}

async function run({ what, file, args, cwd, env, timeoutMs, log }: { what: string; file: string; args: string[]; cwd: string; env: Record<string, string | undefined>; timeoutMs: number; log: (line: string) => void }): Promise<void> {
  log(`${what}: ${[file, ...args].join(' ')}`);
  const result = await runCommand({ file, args, env, cwd, timeoutMs, killGraceMs: 5000 });
  if (result.ok) return;
  const why = result.spawnError ?? (result.timedOut ? `timed out after ${timeoutMs / 1000} s` : result.signal ? `killed by ${result.signal}` : `exit ${result.code}`);
  const tail = result.stderr.trim().split('\n').slice(-3).join(' | ');
  throw new EngineBundleError(`${what} failed (${why})${tail ? `: ${tail}` : ''}; the previous install is unchanged`);
}

// The pixi-pack tar, with the llama.cpp installer's entry checks (no path out of the directory, links checked).
async function extractBundle(file: string, dest: string): Promise<void> {
  const head = await readHead(file);
  const gzip = head[0] === 0x1f && head[1] === 0x8b;
  if (!gzip && !isTarHeader(head)) throw new EngineBundleError(`${file}: not a tar or tar.gz archive`, { exitCode: EXIT.USAGE });
  const tree = new EntryTree();
  const budget = new SpaceBudget({ free: await getFreeBytes(dest), where: dest });
  await extractTar({ file, archiveName: basename(file), dest, tree, budget, gzip });
  const { problems } = tree.checkLinks('');
  if (problems.length > 0) throw new EngineBundleError(`${file}: ${problems[0].reason}`, { exitCode: EXIT.USAGE });
  await writeSymlinks({ dest, links: tree.links, root: '' });
}

async function readActiveLink(project: string): Promise<{ kind: 'none' } | { kind: 'link'; name: string } | { kind: 'directory' }> {
  try {
    const info = await lstat(project);
    if (info.isSymbolicLink()) return { kind: 'link', name: basename(await readlink(project)) };
    return { kind: 'directory' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    throw err;
  }
}

async function isComplete(dir: string, sha256: string): Promise<boolean> {
  try {
    return JSON.parse(await readFile(join(dir, MARKER), 'utf8')).bundle_sha256 === sha256;
  } catch {
    return false;
  }
}

// Keeps the active version and the one before it; older ones (and crashed attempts) go.
async function prune(versions: string, keep: ReadonlyArray<string | null>): Promise<void> {
  for (const entry of await readdir(versions)) {
    if (entry.startsWith('.') || keep.includes(entry)) continue;
    await rm(join(versions, entry), { recursive: true, force: true });
  }
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isFile(), () => false);
}

async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}
