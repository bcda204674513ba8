// Preparation for a supervised sshd: the privilege-separation dir, host keys
// made in this container (never baked into the image), SSH_AUTHORIZED_KEYS for
// SSH_USER, and the InstancePlan that runs `sshd -D -e` under supervision
// (upstream ran `service ssh start` once and never looked at it again).
import { chmod, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_POLICY, type InstancePlan } from '../config/instance-plan.ts';
import { runCommand } from '../process/run-command.ts';
import { describeError, errnoOf } from './atomic-fs.ts';
import { installAuthorizedKeys } from './authorized-keys.ts';
import { silentLog, type Log } from '../logging/log.ts';
import { readBool } from './env-flags.ts';
import { DEFAULT_SSH_PORT, readSshdPort } from './sshd-config.ts';
import type { StepOutcome } from './steps.ts';

/** Every path sshd preparation touches; tests point them into a temp dir. */
export interface SshPaths {
  /** Default `/usr/sbin/sshd`. */
  sshd: string;
  /** Default `/etc/ssh/sshd_config`. */
  sshdConfig: string;
  /** Host keys go to `<hostKeyRoot>/etc/ssh/` (`ssh-keygen -A -f <hostKeyRoot>`); default `/`. */
  hostKeyRoot: string;
  /** sshd's privilege-separation directory; default `/run/sshd`. */
  runDir: string;
  /** Default `/etc/passwd`. */
  passwd: string;
  /** Default `/var/log/infer-dev/sshd.log`. */
  logFile: string;
  /** Default `ssh-keygen` (on PATH). */
  keygen: string;
}

/** The real paths. */
const DEFAULT_SSH_PATHS: Readonly<SshPaths> = Object.freeze({
  sshd: '/usr/sbin/sshd',
  sshdConfig: '/etc/ssh/sshd_config',
  hostKeyRoot: '/',
  runDir: '/run/sshd',
  passwd: '/etc/passwd',
  logFile: '/var/log/infer-dev/sshd.log',
  keygen: 'ssh-keygen',
});

/** sshd's plan: always a TCP-connect probe (sshd speaks SSH, not HTTP). */
export type SshdPlan = InstancePlan & { probe: 'tcp' };

/** The result of prepareSshd: the plan to supervise (or null and why not), and one outcome per step. */
export interface SshdPreparation {
  plan: SshdPlan | null;
  reason: string | null;
  steps: StepOutcome[];
}

/** sshd leaves on SIGTERM at once; a short grace leaves the stop budget to the instances. */
const SSHD_STOP_TIMEOUT_S = 2;
/** Back quickly after a crash or a `kill -9`: sshd restarts in milliseconds. */
const SSHD_BACKOFF_INITIAL_MS = 500;
const SSHD_BACKOFF_MAX_MS = 10_000;
/** sshd listens within milliseconds; 30 s without a port means it is stuck. */
const SSHD_STARTUP_STALL_S = 30;
const SSHD_LOG_MAX_BYTES = 10 * 1024 * 1024;
const KEYGEN_TIMEOUT_MS = 60_000;
const HOST_KEY_NAME = /^ssh_host_(\w+)_key$/;

/** The paths with some of them replaced. */
export function getSshPaths(overrides: Partial<SshPaths> = {}): SshPaths {
  return { ...DEFAULT_SSH_PATHS, ...overrides };
}

/** Prepares everything sshd needs and returns its plan; null (with the reason) when sshd does not apply. */
export async function prepareSshd({
  env = process.env,
  paths = DEFAULT_SSH_PATHS,
  log = silentLog,
  validateConfig = true,
}: {
  env?: NodeJS.ProcessEnv;
  paths?: SshPaths;
  log?: Log;
  /** Run `sshd -t` to catch a broken sshd_config before supervision starts it in a loop. */
  validateConfig?: boolean;
}): Promise<SshdPreparation> {
  const startedAt = Date.now();
  const outcome = (name: string, state: StepOutcome['state'], message: string, since = startedAt): StepOutcome => ({
    name,
    state,
    message,
    startedAt: since,
    durationMs: Date.now() - since,
  });
  const reason = await findWhySshdIsOff({ env, paths });
  if (reason !== null) {
    log.info({ event: 'boot-sshd-off' }, `sshd: not supervised: ${reason}`);
    return { plan: null, reason, steps: [outcome('sshd', 'skipped', reason)] };
  }
  const steps: StepOutcome[] = [];

  const keysAt = Date.now();
  try {
    const { generated, kept } = await generateHostKeys({ hostKeyRoot: paths.hostKeyRoot, keygen: paths.keygen });
    const message = generated.length > 0 ? `generated ${generated.join(', ')}${kept.length ? `; kept ${kept.join(', ')}` : ''}` : `kept existing ${kept.join(', ')}`;
    steps.push(outcome('sshd host keys', 'ok', message, keysAt));
  } catch (err) {
    steps.push(outcome('sshd host keys', 'failed', describeError(err), keysAt));
  }

  const authAt = Date.now();
  const rawKeys = env.SSH_AUTHORIZED_KEYS ?? '';
  if (rawKeys.trim() === '') steps.push(outcome('sshd authorized_keys', 'skipped', 'SSH_AUTHORIZED_KEYS is not set', authAt));
  else steps.push({ ...(await installAuthorizedKeys({ env, rawKeys, passwdFile: paths.passwd })), startedAt: authAt, durationMs: Date.now() - authAt });

  const prepAt = Date.now();
  let port = DEFAULT_SSH_PORT;
  try {
    await mkdir(paths.runDir, { recursive: true, mode: 0o755 });
    await chmod(paths.runDir, 0o755);
    port = await readSshdPort(paths.sshdConfig);
    const problem = validateConfig ? await checkSshdConfig({ sshd: paths.sshd, sshdConfig: paths.sshdConfig }) : null;
    if (problem !== null) steps.push(outcome('sshd', 'failed', `sshd -t rejects ${paths.sshdConfig}: ${problem}`, prepAt));
    else steps.push(outcome('sshd', 'ok', `ready to start on port ${port}, log ${paths.logFile}`, prepAt));
  } catch (err) {
    steps.push(outcome('sshd', 'failed', `cannot prepare sshd: ${describeError(err)}`, prepAt));
  }
  for (const step of steps) {
    const level = step.state === 'failed' ? 'error' : step.state === 'warning' ? 'warn' : 'info';
    log[level]({ event: 'boot-sshd', step: step.name, state: step.state }, `${step.name}: ${step.message}`);
  }
  // The plan goes out even after a failure: supervision shows sshd failing, and picks up a fixed config on its next restart.
  return { plan: makeSshdPlan({ sshd: paths.sshd, sshdConfig: paths.sshdConfig, port, logFile: paths.logFile }), reason: null, steps };
}

/** null when sshd should run; else why not (SUPERVISOR_SSHD off, not installed, no config). */
export async function findWhySshdIsOff({ env, paths }: { env: NodeJS.ProcessEnv; paths: SshPaths }): Promise<string | null> {
  const flag = readBool(env, 'SUPERVISOR_SSHD', true);
  if (!flag.value) return flag.warning ?? 'SUPERVISOR_SSHD is off';
  if (!(await isFile(paths.sshd))) return `${paths.sshd} is not installed (openssh-server)`;
  if (!(await isFile(paths.sshdConfig))) return `${paths.sshdConfig} does not exist`;
  return null;
}

/** The supervised sshd: foreground, logging to stderr (`-D -e`), restarted always, probed by TCP connect. */
export function makeSshdPlan({
  sshd = DEFAULT_SSH_PATHS.sshd,
  sshdConfig = DEFAULT_SSH_PATHS.sshdConfig,
  port = DEFAULT_SSH_PORT,
  logFile = DEFAULT_SSH_PATHS.logFile,
}: { sshd?: string; sshdConfig?: string; port?: number; logFile?: string } = {}): SshdPlan {
  const args = ['-D', '-e'];
  if (sshdConfig !== DEFAULT_SSH_PATHS.sshdConfig) args.push('-f', sshdConfig);
  return {
    name: 'sshd',
    enabled: true,
    executable: sshd,
    args,
    env: {},
    logFile,
    gpuIds: null,
    host: '127.0.0.1',
    port,
    background: true,
    user: null,
    model: null,
    probe: 'tcp',
    policy: {
      ...DEFAULT_POLICY,
      restart: 'always',
      backoffInitialMs: SSHD_BACKOFF_INITIAL_MS,
      backoffMaxMs: SSHD_BACKOFF_MAX_MS,
      stopTimeoutS: SSHD_STOP_TIMEOUT_S,
      // Unused: the TCP probe sends no request.
      healthPath: '/',
      startupStallS: SSHD_STARTUP_STALL_S,
      logMaxBytes: SSHD_LOG_MAX_BYTES,
    },
  };
}

/** Runs `ssh-keygen -A` (into `<hostKeyRoot>/etc/ssh`); it makes only the missing key types. Throws when no key exists afterwards. */
export async function generateHostKeys({ hostKeyRoot = '/', keygen = 'ssh-keygen' }: { hostKeyRoot?: string; keygen?: string } = {}): Promise<{ generated: string[]; kept: string[] }> {
  const dir = join(hostKeyRoot, 'etc', 'ssh');
  // ssh-keygen -A exits 0 even when it cannot write into a missing directory.
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const before = await listHostKeyTypes(dir);
  // Every type -A makes is there (a restarted container): it would change nothing, so skip its spawn on the boot path.
  if (await hasEveryHostKey(dir)) return { generated: [], kept: before };
  const args = hostKeyRoot === '/' ? ['-A'] : ['-A', '-f', hostKeyRoot];
  const { failure, output } = await runShort({ file: keygen, args, timeoutMs: KEYGEN_TIMEOUT_MS });
  const after = await listHostKeyTypes(dir);
  if (failure !== null || /could not|failed/i.test(output) || after.length === 0) {
    throw new Error(`ssh-keygen -A failed${failure ? ` (${failure})` : ''}: ${output.trim() || 'no host key in ' + dir}`);
  }
  return { generated: after.filter((t) => !before.includes(t)), kept: before };
}

/** The host key types `ssh-keygen -A` makes (OpenSSH 7 and later). */
const KEYGEN_ALL_TYPES = ['ecdsa', 'ed25519', 'rsa'];

// ssh-keygen -A skips a type whose private key file exists and is not empty; so do we.
async function hasEveryHostKey(dir: string): Promise<boolean> {
  const sizes = await Promise.all(KEYGEN_ALL_TYPES.map((t) => stat(join(dir, `ssh_host_${t}_key`)).then((s) => s.size, () => 0)));
  return sizes.every((size) => size > 0);
}

async function listHostKeyTypes(dir: string): Promise<string[]> {
  const names = await readdir(dir);
  return names.flatMap((n) => HOST_KEY_NAME.exec(n)?.[1] ?? []).sort();
}

// sshd -t: parses the config and loads the host keys. null when fine, else sshd's complaint.
async function checkSshdConfig({ sshd, sshdConfig }: { sshd: string; sshdConfig: string }): Promise<string | null> {
  const { failure, output } = await runShort({ file: sshd, args: ['-t', '-f', sshdConfig], timeoutMs: KEYGEN_TIMEOUT_MS });
  return failure === null ? null : output.trim() || failure;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return false;
    throw err;
  }
}

// Runs a short command; failure is null on exit 0, else how it ended. Output is stdout + stderr.
async function runShort({ file, args, timeoutMs }: { file: string; args: string[]; timeoutMs: number }): Promise<{ failure: string | null; output: string }> {
  const run = await runCommand({ file, args, env: process.env, timeoutMs });
  const output = `${run.stdout}${run.stderr}`;
  if (run.spawnError !== null) return { failure: run.spawnError, output };
  if (run.timedOut) return { failure: `killed after ${timeoutMs / 1000} s`, output };
  return { failure: run.ok ? null : `exit code ${run.code ?? run.signal}`, output };
}
