// supervisor config check [FILE] [--json] | config print [FILE] [--json] | config schema
import type { KnownGpu } from '../../config/gpu-ids.ts';
import type { InstancePlan, LaunchPlan } from '../../config/instance-plan.ts';
import { getConfigPath, missingConfigError, readLaunchPlan } from '../../config/load-config.ts';
import { ConfigError, EXIT, formatConfigIssue, UsageError } from '../../errors.ts';
import { readKindFlag, type ParsedArgs } from '../args.ts';
import { printJson } from '../request.ts';

export default async function config(args: ParsedArgs): Promise<number> {
  const [action, file, ...rest] = args.positionals;
  if (rest.length > 0) throw new UsageError('usage: supervisor config check|print [FILE] | config schema');
  if (action === 'schema') {
    const { makeJsonSchema } = await import('../../config/json-schema.ts');
    printJson(makeJsonSchema());
    return EXIT.OK;
  }
  if (action !== 'check' && action !== 'print') throw new UsageError('usage: supervisor config check|print [FILE] | config schema');
  const kind = readKindFlag(args);
  const path = getConfigPath(file ?? (args.flags.config as string | undefined), process.env, kind);
  if (path === null) throw missingConfigError(kind);
  // check compares gpu_ids with this machine's GPUs (quietly none without nvidia-smi); print has no need to ask.
  const gpus = action === 'check' ? await findMachineGpus() : null;
  const { plan, issues } = readLaunchPlan(path, process.env, { gpus, kind });
  if (action === 'check') {
    if (args.flags.json) printJson({ ok: plan !== null, issues });
    else {
      for (const issue of issues) process.stdout.write(`${formatConfigIssue(issue)}\n`);
      if (plan) {
        const enabled = plan.instances.filter((i) => i.enabled).length;
        process.stdout.write(`${path}: ok, ${plan.instances.length} instance(s), ${enabled} enabled${plan.enabled ? '' : ' (master.enable = false: nothing starts)'}\n`);
      }
    }
    return plan ? EXIT.OK : EXIT.USAGE;
  }
  if (!plan) throw new ConfigError(issues);
  for (const warning of issues) process.stderr.write(`${formatConfigIssue(warning)}\n`);
  if (args.flags.json) printJson(describePlan(plan));
  else process.stdout.write(formatPlan(plan));
  return EXIT.OK;
}

async function findMachineGpus(): Promise<readonly KnownGpu[] | null> {
  const { queryGpus } = await import('../../gpu/nvidia-smi.ts');
  const found = await queryGpus();
  return found.ok ? found.gpus : null;
}

/** The JSON form of `config print`. */
function describePlan(plan: LaunchPlan): unknown {
  return {
    enabled: plan.enabled,
    instances: plan.instances.map((i) => ({
      name: i.name,
      enabled: i.enabled,
      engine: i.engine ?? 'llama-server',
      executable: i.executable,
      user: i.user,
      args: i.args,
      env: i.env,
      env_notes: i.envNotes ?? {},
      log_file: i.logFile,
      gpu_ids: i.gpuIds,
      port: i.port,
      background: i.background,
      restart: {
        policy: i.policy.restart,
        max_restarts: i.policy.maxRestarts,
        restart_window_s: i.policy.restartWindowS,
        backoff_initial_ms: i.policy.backoffInitialMs,
        backoff_max_ms: i.policy.backoffMaxMs,
        stop_timeout_s: i.policy.stopTimeoutS,
        health_path: i.policy.healthPath,
        health_interval_s: i.policy.healthIntervalS,
        startup_stall_s: i.policy.startupStallS,
        on_fit_reduced: i.policy.onFitReduced,
        gpu_release_timeout_s: i.policy.gpuReleaseTimeoutS,
      },
    })),
  };
}

const quote = (word: string) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`);

function formatInstance(i: InstancePlan): string {
  const env = Object.entries(i.env).map(([k, v]) => `${k}=${quote(v)}`);
  const command = [...env, i.executable, ...i.args].map((w, n) => (n < env.length ? w : quote(w))).join(' ');
  const notes = Object.entries(i.envNotes ?? {}).map(([name, why]) => `# ${name}: ${why}\n`).join('');
  const engine = i.engine !== undefined && i.engine !== 'llama-server' ? `${i.engine}, ` : '';
  const user = i.user !== null ? `, as ${i.user}` : '';
  return `# ${i.name}${i.enabled ? '' : ' (disabled)'}: ${engine}port ${i.port}, log ${i.logFile}, restart ${i.policy.restart}${user}\n${notes}${command}\n`;
}

function formatPlan(plan: LaunchPlan): string {
  const head = plan.enabled ? '' : '# master.enable = false: nothing is launched\n';
  return head + plan.instances.map(formatInstance).join('\n');
}
