// The effectful edge of config loading: read the file, ask the filesystem and
// PATH for the executable fallback, and check that model files exist.
import { accessSync, closeSync, constants, fstatSync, openSync, readFileSync, readSync, statSync, type Stats } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ConfigError, SupervisorError, type ConfigIssue, UsageError } from '../errors.ts';
import type { LaunchPlan } from './instance-plan.ts';
import { makeLaunchPlan, type PlanResult } from './launch-plan.ts';
import type { KnownGpu } from './gpu-ids.ts';
import { CONFIG_KINDS, type ConfigKind } from './config-kind.ts';
import type { UserLookup } from '../engines/python-runner.ts';
import { parsePasswd } from '../boot/authorized-keys.ts';

const CONFIG_ENV = CONFIG_KINDS['llama-cpp'].configEnv;

/** A config larger than this is refused (real ones are a few KiB); nothing beyond it is read. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

/** The config file to use: `--config`, else AUTO_INFER_LLAMA_CPP_CONFIG (or the kind's variable); null when neither is given. */
export function getConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env, kind: ConfigKind = 'llama-cpp'): string | null {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env[CONFIG_KINDS[kind].configEnv];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : null;
}

/** Reads and plans a config file; the result carries every issue, errors and warnings. */
export function readLaunchPlan(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
  { gpus = null, kind = 'llama-cpp' }: { gpus?: readonly KnownGpu[] | null; kind?: ConfigKind } = {},
): PlanResult {
  const read = readConfigText(file);
  if (!read.ok) return { plan: null, issues: [{ severity: 'error', file, path: '', message: `cannot read config: ${read.why}` }] };
  const text = read.text;
  const result = makeLaunchPlan(text, { env, file, isFile, which: (name, path) => which(name, path ?? env.PATH), gpus, kind, users: systemUsers });
  if (result.plan) result.issues.push(...checkModelFiles(result.plan, file));
  return result;
}

/** Like readLaunchPlan, but a config with errors throws a ConfigError (exit 2). */
export function loadLaunchPlan(file: string, env: NodeJS.ProcessEnv = process.env, kind: ConfigKind = 'llama-cpp'): { plan: LaunchPlan; warnings: ConfigIssue[] } {
  const { plan, issues } = readLaunchPlan(file, env, { kind });
  if (!plan) throw new ConfigError(issues);
  return { plan, warnings: issues.filter((i) => i.severity === 'warning') };
}

/**
 * The text of a config file, read only if it is a regular file of at most
 * MAX_CONFIG_BYTES: /dev/zero would be read forever, a FIFO would block until a
 * writer comes, a device may act on open. Type and size are checked before the
 * open and again on the open descriptor (the path may change in between);
 * O_NONBLOCK keeps a FIFO swapped in from blocking the open, O_NOCTTY keeps a
 * terminal from becoming PID 1's controlling one, and the read stops one byte
 * past the limit whatever the size said (files in /proc say 0).
 */
function readConfigText(file: string): { ok: true; text: string } | { ok: false; why: string } {
  let fd: number | null = null;
  try {
    const refusal = refuseNonRegular(statSync(file));
    if (refusal) return { ok: false, why: refusal };
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    const opened = fstatSync(fd);
    const refusedOpen = refuseNonRegular(opened);
    if (refusedOpen) return { ok: false, why: refusedOpen };
    // Sized to the file (at least 64 KiB: /proc says 0), grown while it turns out longer.
    let buffer = Buffer.allocUnsafe(Math.min(MAX_CONFIG_BYTES + 1, Math.max(opened.size + 1, 64 * 1024)));
    let size = 0;
    for (;;) {
      const n = readSync(fd, buffer, size, buffer.length - size, null);
      if (n === 0) break;
      size += n;
      if (size === buffer.length) {
        if (size > MAX_CONFIG_BYTES) break;
        const grown = Buffer.allocUnsafe(Math.min(MAX_CONFIG_BYTES + 1, size * 2));
        buffer.copy(grown);
        buffer = grown;
      }
    }
    if (size > MAX_CONFIG_BYTES) return { ok: false, why: tooLarge(Math.max(size, fstatSync(fd).size)) };
    return { ok: true, text: buffer.toString('utf8', 0, size) };
  } catch (err) {
    return { ok: false, why: describeReadError(err as NodeJS.ErrnoException) };
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function refuseNonRegular(stats: Stats): string | null {
  if (stats.isFile()) return stats.size > MAX_CONFIG_BYTES ? tooLarge(stats.size) : null;
  const kind = stats.isDirectory()
    ? 'a directory'
    : stats.isFIFO()
      ? 'a FIFO'
      : stats.isCharacterDevice()
        ? 'a character device'
        : stats.isBlockDevice()
          ? 'a block device'
          : stats.isSocket()
            ? 'a socket'
            : 'not a file';
  return `${kind}, not a regular file`;
}

const tooLarge = (size: number) => `it is ${size} bytes; a config may be at most ${MAX_CONFIG_BYTES} bytes`;

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file',
  ENOTDIR: 'a part of the path is not a directory',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'the path or a name in it is too long',
  EISDIR: 'a directory, not a regular file',
};

function describeReadError(err: NodeJS.ErrnoException): string {
  return (err.code && READ_ERRORS[err.code]) ?? err.code ?? err.message;
}

/** A missing model is a warning here; at start it makes only that instance fatal. */
function checkModelFiles(plan: LaunchPlan, file: string): ConfigIssue[] {
  return plan.instances
    .filter((i) => i.enabled && i.model !== null && !isFile(i.model))
    .map((i) => ({
      severity: 'warning' as const,
      file,
      path: `instance.${i.name}.server.model`,
      message: `model file not found: ${i.model} (this instance will not start)`,
    }));
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES' || code === 'ELOOP' || code === 'ENAMETOOLONG') return false;
    throw err;
  }
}

/** Looks a command up on PATH like the shell does (first executable file wins). */
export function which(name: string, path: string | undefined): string | null {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EACCES' && code !== 'ENOTDIR' && code !== 'ELOOP' && code !== 'ENAMETOOLONG') throw err;
    }
  }
  return null;
}

/** Users from /etc/passwd, read when a vLLM or SGLang instance asks (its launch user). */
export const systemUsers: UserLookup = {
  home: (user) => findPasswdUser(user)?.home || null,
  ids(user) {
    const found = findPasswdUser(user);
    return found ? { uid: found.uid, gid: found.gid } : null;
  },
  get isRoot() {
    return process.getuid?.() === 0;
  },
};

function findPasswdUser(user: string) {
  try {
    return parsePasswd(readFileSync('/etc/passwd', 'utf8')).find((u) => u.name === user) ?? null;
  } catch {
    return null;
  }
}

/** No config given at all: a usage error naming both ways to give one. */
export function missingConfigError(kind: ConfigKind = 'llama-cpp'): SupervisorError {
  return new UsageError(`no config file: pass --config FILE or set ${CONFIG_KINDS[kind].configEnv}`);
}
