// The effectful edge of config loading: read the file, ask the filesystem and
// PATH for the executable fallback, and check that model files exist.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ConfigError, SupervisorError, EXIT, type ConfigIssue } from '../errors.ts';
import type { LaunchPlan } from './instance-plan.ts';
import { makeLaunchPlan, type PlanResult } from './launch-plan.ts';

export const CONFIG_ENV = 'AUTO_INFER_LLAMA_CPP_CONFIG';

/** The config file to use: `--config`, else AUTO_INFER_LLAMA_CPP_CONFIG; null when neither is given. */
export function getConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string | null {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env[CONFIG_ENV];
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : null;
}

/** Reads and plans a config file; the result carries every issue, errors and warnings. */
export function readLaunchPlan(file: string, env: NodeJS.ProcessEnv = process.env): PlanResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : String(code ?? err);
    return { plan: null, issues: [{ severity: 'error', file, path: '', message: `cannot read config: ${why}` }] };
  }
  const result = makeLaunchPlan(text, { env, file, isFile, which: (name) => which(name, env.PATH) });
  if (result.plan) result.issues.push(...checkModelFiles(result.plan, file));
  return result;
}

/** Like readLaunchPlan, but a config with errors throws a ConfigError (exit 2). */
export function loadLaunchPlan(file: string, env: NodeJS.ProcessEnv = process.env): { plan: LaunchPlan; warnings: ConfigIssue[] } {
  const { plan, issues } = readLaunchPlan(file, env);
  if (!plan) throw new ConfigError(issues);
  return { plan, warnings: issues.filter((i) => i.severity === 'warning') };
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
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES' || code === 'ELOOP') return false;
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
      if (code !== 'ENOENT' && code !== 'EACCES' && code !== 'ENOTDIR') throw err;
    }
  }
  return null;
}

/** No config given at all: a usage error naming both ways to give one. */
export function missingConfigError(): SupervisorError {
  return new SupervisorError(`no config file: pass --config FILE or set ${CONFIG_ENV}`, { exitCode: EXIT.USAGE });
}
