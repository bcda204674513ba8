// The boot steps in upstream's order: stage-1 first-run and every-run hooks, the
// /soft links, stage-2 first-run and every-run hooks, then sshd, the llama.cpp
// bundle, the helper shims and auto-serve. Every step is recorded for
// `supervisor status`; a failed one is logged loudly and boot goes on, unless
// SUPERVISOR_ON_BOOT_ERROR=exit, which stops at the first failure.
import { stat } from 'node:fs/promises';
import { describeError, errnoOf } from './atomic-fs.ts';
import { silentLog, type Log } from '../logging/log.ts';
import { readBool, readSeconds, readText } from './env-flags.ts';
import { DEFAULT_HOOKS_DIR, DEFAULT_STATE_DIR, runStageHooks, type HookKind, type HookStage, type StageHooksOptions, type StageHooksReport } from './hooks.ts';
import { linkSoftDirs } from './links.ts';
import { DEFAULT_HOOK_TIMEOUT_S } from './run-hook.ts';
import { writeEngineShims, writeLlamaShims } from './shims.ts';
import { CONFIG_KINDS, type ConfigKind } from '../config/config-kind.ts';
import { getSshPaths, prepareSshd, type SshdPlan, type SshPaths } from './ssh.ts';
import { BootRecorder, readOnBootError, type BootStep, type FinalStepState, type StepOutcome } from './steps.ts';

/** Every filesystem root boot touches; defaults are the real ones. */
export interface BootRoots {
  /** Default `/soft`. */
  soft?: string;
  /** Default `/hard`. */
  hard?: string;
  /** Default: SUPERVISOR_HOOKS_DIR, else `/etc/infer-dev/hooks`. */
  hooks?: string;
  /** First-run markers; default `/var/lib/infer-dev`. */
  state?: string;
  ssh?: Partial<SshPaths>;
}

/** What a callback step reports. */
export interface ActionResult {
  state: FinalStepState;
  message: string;
}

/** Steps that need the daemon or the installer; each is optional (see BootOutcome for what is left to do). */
export interface BootActions {
  /** Starts supervising sshd right after its preparation, so SSH is up before a long bundle install. */
  startSshd?(plan: SshdPlan): Promise<void> | void;
  /** Installs the llama.cpp bundle at this path (absent until the installer lands: recorded as "not available"). */
  installBundle?(archivePath: string): Promise<ActionResult>;
  /** Starts the instances of this config (a llama.cpp, vLLM or SGLang runner file) under supervision. */
  serve?(configPath: string, kind: ConfigKind): Promise<ActionResult>;
  /** Installs upstream's vLLM or SGLang offline bundle (AUTO_INFER_VLLM_BUNDLE_*, AUTO_INFER_SGLANG_BUNDLE_*). */
  installEngineBundle?(kind: 'vllm' | 'sglang'): Promise<ActionResult>;
}

/** runBootSteps' options; everything defaults to production. */
export interface BootOptions {
  env?: NodeJS.ProcessEnv;
  roots?: BootRoots;
  log?: Log;
  recorder?: BootRecorder;
  actions?: BootActions;
  /** How the shims start the supervisor; default `['supervisor']`. */
  shimCommand?: readonly string[];
  /** SIGTERM → SIGKILL grace of a timed-out hook (tests shorten it). */
  hookKillGraceMs?: number;
  /** Run `sshd -t` on the config (default true). */
  validateSshdConfig?: boolean;
}

/** What the boot command does next. */
export interface BootOutcome {
  /** The plan to supervise, or null and why not. Already handed to actions.startSshd when given. */
  sshd: { plan: SshdPlan | null; reason: string | null; started: boolean };
  /** AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT on and AUTO_INFER_LLAMA_CPP_PKG_PATH set; `done` when actions.installBundle ran. */
  bundle: { requested: boolean; archivePath: string | null; done: boolean };
  /** AUTO_INFER_LLAMA_CPP_ON_BOOT on and AUTO_INFER_LLAMA_CPP_CONFIG an existing file; `done` when actions.serve ran. */
  serve: { requested: boolean; configPath: string | null; done: boolean };
  /** The same for AUTO_INFER_VLLM_ON_BOOT / AUTO_INFER_VLLM_CONFIG and AUTO_INFER_SGLANG_ON_BOOT / AUTO_INFER_SGLANG_CONFIG. */
  engineServe: Record<'vllm' | 'sglang', { requested: boolean; configPath: string | null; done: boolean }>;
  /** SUPERVISOR_ON_BOOT_ERROR=exit and a step failed: end the container (boot stopped at that step). */
  mustExit: boolean;
  failures: BootStep[];
}

const STAGE_1_HOOKS: ReadonlyArray<readonly [HookStage, HookKind]> = [
  ['stage-1', 'on-first-run'],
  ['stage-1', 'on-every-run'],
];
const STAGE_2_HOOKS: ReadonlyArray<readonly [HookStage, HookKind]> = [
  ['stage-2', 'on-first-run'],
  ['stage-2', 'on-every-run'],
];

/** Runs the boot steps in order and says what is left for the daemon to do. */
export async function runBootSteps({
  env = process.env,
  roots = {},
  log = silentLog,
  recorder = new BootRecorder(),
  actions = {},
  shimCommand,
  hookKillGraceMs,
  validateSshdConfig = true,
}: BootOptions = {}): Promise<BootOutcome> {
  const policy = readOnBootError(env);
  const chmodVolumes = readBool(env, 'SUPERVISOR_CHMOD_VOLUMES', false);
  const hookTimeout = readSeconds(env, 'SUPERVISOR_HOOK_TIMEOUT_S', DEFAULT_HOOK_TIMEOUT_S);
  const bundleFlag = readBool(env, 'AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT', false);
  const serveFlag = readBool(env, 'AUTO_INFER_LLAMA_CPP_ON_BOOT', false);
  const sshdFlag = readBool(env, 'SUPERVISOR_SSHD', true);
  const engineFlags = {
    vllm: { serve: readBool(env, 'AUTO_INFER_VLLM_ON_BOOT', false), bundle: readBool(env, 'AUTO_INFER_VLLM_BUNDLE_ON_BOOT', false) },
    sglang: { serve: readBool(env, 'AUTO_INFER_SGLANG_ON_BOOT', false), bundle: readBool(env, 'AUTO_INFER_SGLANG_BUNDLE_ON_BOOT', false) },
  };
  const exitOnFailure = policy.value === 'exit';
  const outcome: BootOutcome = {
    sshd: { plan: null, reason: null, started: false },
    bundle: { requested: false, archivePath: null, done: false },
    serve: { requested: false, configPath: null, done: false },
    engineServe: { vllm: { requested: false, configPath: null, done: false }, sglang: { requested: false, configPath: null, done: false } },
    mustExit: false,
    failures: [],
  };
  // Only this boot's rows count, also when the caller's recorder already holds some.
  const firstRow = recorder.rows().length;
  const failures = () => recorder.rows().slice(firstRow).filter((row) => row.state === 'failed');
  const stop = () => exitOnFailure && failures().length > 0;
  const finishBoot = () => {
    outcome.failures = failures();
    outcome.mustExit = exitOnFailure && outcome.failures.length > 0;
    if (outcome.mustExit) log.error({ event: 'boot-exit-on-error' }, 'boot stopped: a step failed and SUPERVISOR_ON_BOOT_ERROR=exit');
    return outcome;
  };
  const record = (step: StepOutcome) => {
    recorder.add(step);
    if (step.state === 'failed') shoutFailure({ log, name: step.name, message: step.message, exitOnFailure });
  };
  const act = (name: string, run: () => Promise<ActionResult>) => runAction({ name, recorder, log, exitOnFailure, run });

  // Environment: every value we could not understand, in one row.
  const engineFlagValues = Object.values(engineFlags).flatMap((f) => [f.bundle, f.serve]);
  const warnings = [policy, chmodVolumes, hookTimeout, bundleFlag, serveFlag, sshdFlag, ...engineFlagValues].flatMap((v) => v.warning ?? []);
  for (const warning of warnings) log.warn({ event: 'boot-env-warning' }, warning);
  if (warnings.length > 0) record({ name: 'environment', state: 'warning', message: warnings.join('\n') });

  // Hooks, links, hooks: upstream's order.
  const hookOptions: StageHooksOptions = {
    hooksDir: roots.hooks ?? readText(env, 'SUPERVISOR_HOOKS_DIR') ?? DEFAULT_HOOKS_DIR,
    stateDir: roots.state ?? DEFAULT_STATE_DIR,
    timeoutMs: hookTimeout.value * 1000,
    killGraceMs: hookKillGraceMs,
    env,
    log,
    stopOnFailure: exitOnFailure,
  };
  const runHooks = async (groups: typeof STAGE_1_HOOKS) => {
    for (const [stage, kind] of groups) {
      await runHookGroup({ stage, kind, hookOptions, recorder, record, log });
      if (stop()) return false;
    }
    return true;
  };
  if (!(await runHooks(STAGE_1_HOOKS))) return finishBoot();
  try {
    for (const step of await linkSoftDirs({ softRoot: roots.soft, hardRoot: roots.hard, chmodVolumes: chmodVolumes.value, log })) record(step);
  } catch (err) {
    record({ name: 'links', state: 'failed', message: describeError(err) });
  }
  if (stop() || !(await runHooks(STAGE_2_HOOKS))) return finishBoot();

  // sshd: prepared here, supervised by the daemon. Its preparation (ssh-keygen, sshd -t) runs
  // beside the next steps, so serving does not wait on it; under the exit policy it runs first.
  const sshdBranch = (async () => {
    const sshd = await prepareSshd({ env, paths: getSshPaths(roots.ssh), log, validateConfig: validateSshdConfig });
    for (const step of sshd.steps) record(step);
    outcome.sshd = { plan: sshd.plan, reason: sshd.reason, started: false };
    if (stop()) return;
    const { plan } = sshd;
    if (plan !== null && actions.startSshd) {
      const startSshd = actions.startSshd;
      const state = await act('sshd start', async () => {
        await startSshd(plan);
        return { state: 'ok', message: 'supervised' };
      });
      outcome.sshd.started = state === 'ok';
    }
  })();
  if (exitOnFailure) {
    await sshdBranch;
    if (stop()) return finishBoot();
  }
  const finishWithSshd = async () => {
    await sshdBranch;
    return finishBoot();
  };

  // The llama.cpp bundle, before the shims: an install replaces /soft/app/llama-cpp.
  const archivePath = readText(env, 'AUTO_INFER_LLAMA_CPP_PKG_PATH');
  outcome.bundle = { requested: bundleFlag.value && archivePath !== null, archivePath, done: false };
  if (!bundleFlag.value) record({ name: 'bundle', state: 'skipped', message: 'AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT is off' });
  else if (archivePath === null) record({ name: 'bundle', state: 'warning', message: 'AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT is on but AUTO_INFER_LLAMA_CPP_PKG_PATH is not set' });
  else if (!actions.installBundle) record({ name: 'bundle', state: 'warning', message: `${archivePath}: not available (this build has no bundle installer)` });
  else {
    await act('bundle', () => actions.installBundle!(archivePath));
    outcome.bundle.done = true;
    if (stop()) return finishWithSshd();
  }

  record(await writeLlamaShims({ softRoot: roots.soft, command: shimCommand, log }));
  if (stop()) return finishWithSshd();
  for (const step of await writeEngineShims({ softRoot: roots.soft, command: shimCommand, log })) record(step);
  if (stop()) return finishWithSshd();

  // Auto-serve, in upstream's order: llama.cpp, then vLLM's bundle and serve, then SGLang's.
  const configPath = readText(env, 'AUTO_INFER_LLAMA_CPP_CONFIG');
  const serveProblem = await findServeProblem({ on: serveFlag.value, configPath, kind: 'llama-cpp' });
  outcome.serve = { requested: serveProblem === null, configPath, done: false };
  if (serveProblem !== null) record(serveProblem);
  else if (actions.serve) {
    await act('serve', () => actions.serve!(configPath as string, 'llama-cpp'));
    outcome.serve.done = true;
  }
  for (const kind of ['vllm', 'sglang'] as const) {
    if (stop()) return finishWithSshd();
    // Most containers serve no vLLM or SGLang: their rows appear only once a switch of theirs is on.
    if (!engineFlags[kind].bundle.value && !engineFlags[kind].serve.value) continue;
    const facts = CONFIG_KINDS[kind];
    const bundleEnv = `AUTO_INFER_${kind.toUpperCase()}_BUNDLE_ON_BOOT`;
    if (!engineFlags[kind].bundle.value) record({ name: `bundle ${kind}`, state: 'skipped', message: `${bundleEnv} is off` });
    else if (!actions.installEngineBundle) record({ name: `bundle ${kind}`, state: 'warning', message: 'not available (this build has no engine bundle installer)' });
    else await act(`bundle ${kind}`, () => actions.installEngineBundle!(kind));
    if (stop()) return finishWithSshd();
    const file = readText(env, facts.configEnv);
    const problem = await findServeProblem({ on: engineFlags[kind].serve.value, configPath: file, kind });
    outcome.engineServe[kind] = { requested: problem === null, configPath: file, done: false };
    if (problem !== null) record(problem);
    else if (actions.serve) {
      await act(`serve ${kind}`, () => actions.serve!(file as string, kind));
      outcome.engineServe[kind].done = true;
    }
  }
  return finishWithSshd();
}

// One hook directory: a row per hook (shown running while it runs) and, for first-run, a row for the marker.
async function runHookGroup({
  stage,
  kind,
  hookOptions,
  recorder,
  record,
  log,
}: {
  stage: HookStage;
  kind: HookKind;
  hookOptions: StageHooksOptions;
  recorder: BootRecorder;
  record: (step: StepOutcome) => void;
  log: Log;
}): Promise<void> {
  const running = new Map<string, ReturnType<BootRecorder['begin']>>();
  let report: StageHooksReport;
  try {
    report = await runStageHooks({ ...hookOptions, stage, kind, onHookStart: (name) => running.set(name, recorder.begin(`hook ${name}`, 'running')) });
  } catch (err) {
    // Only the marker write can throw here (hook failures are results).
    for (const finish of running.values()) finish('failed', 'interrupted');
    record({ name: `${stage} ${kind}`, state: 'failed', message: describeError(err) });
    return;
  }
  for (const result of report.results) {
    const state: FinalStepState = result.skipped ? 'warning' : result.ok ? 'ok' : 'failed';
    const finish = running.get(result.name);
    if (finish === undefined) {
      record({ name: `hook ${result.name}`, state, message: result.message, startedAt: result.startedAt, durationMs: result.durationMs });
      continue;
    }
    finish(state, result.message);
    if (state === 'failed') shoutFailure({ log, name: `hook ${result.name}`, message: result.message, exitOnFailure: hookOptions.stopOnFailure ?? false });
  }
  const marker = report.marker;
  if (marker === null) return;
  if (marker.state === 'present') record({ name: `${stage} first-run`, state: 'skipped', message: marker.message });
  else if (marker.state === 'not-written') record({ name: `${stage} first-run`, state: 'warning', message: marker.message });
  else if (report.results.length > 0) record({ name: `${stage} first-run`, state: 'ok', message: marker.message });
}

// A step done by the daemon or the installer, timed and recorded; a throw is a failure. Returns its state.
async function runAction({ name, recorder, log, exitOnFailure, run }: { name: string; recorder: BootRecorder; log: Log; exitOnFailure: boolean; run: () => Promise<ActionResult> }): Promise<FinalStepState> {
  const finish = recorder.begin(name);
  let result: ActionResult;
  try {
    result = await run();
  } catch (err) {
    result = { state: 'failed', message: describeError(err) };
  }
  finish(result.state, result.message);
  if (result.state === 'failed') shoutFailure({ log, name, message: result.message, exitOnFailure });
  return result.state;
}

// Why auto-serve of one kind is not requested, as a row; null when it is.
async function findServeProblem({ on, configPath, kind }: { on: boolean; configPath: string | null; kind: ConfigKind }): Promise<StepOutcome | null> {
  const { onBootEnv, configEnv } = CONFIG_KINDS[kind];
  const name = kind === 'llama-cpp' ? 'serve' : `serve ${kind}`;
  if (!on) return { name, state: 'skipped', message: `${onBootEnv} is off` };
  if (configPath === null) return { name, state: 'warning', message: `${onBootEnv} is on but ${configEnv} is not set` };
  try {
    if ((await stat(configPath)).isFile()) return null;
    return { name, state: 'warning', message: `${configEnv}=${configPath} is not a file; nothing served` };
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT' && errnoOf(err) !== 'ENOTDIR') throw err;
    return { name, state: 'warning', message: `config file not found at ${configPath}; nothing served` };
  }
}

// A failed step must not scroll by unnoticed in `docker logs`.
function shoutFailure({ log, name, message, exitOnFailure }: { log: Log; name: string; message: string; exitOnFailure: boolean }): void {
  const next = exitOnFailure ? 'the container stops (SUPERVISOR_ON_BOOT_ERROR=exit)' : 'boot goes on; see `supervisor status`';
  log.error({ event: 'boot-step-failed', step: name }, `BOOT STEP FAILED: ${name}: ${message} -- ${next}`);
}
