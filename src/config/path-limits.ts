// Paths the kernel would refuse with ENAMETOOLONG: a name (one component)
// longer than NAME_MAX or a whole path of PATH_MAX bytes or more. Caught here
// from the plan, with the key, instead of at stat or spawn time.
import type { LaunchPlan } from './instance-plan.ts';
import type { Report } from './issue-location.ts';
import { describeValue } from './zod-issues.ts';

/** Linux's limits (bytes): one name, and a whole path including its final NUL. */
export const NAME_MAX = 255;
export const PATH_MAX = 4096;

/** Why the kernel would refuse `path` as too long; null when it would not. */
function describePathTooLong(path: string): string | null {
  const bytes = Buffer.byteLength(path);
  if (bytes >= PATH_MAX) return `this path is ${bytes} bytes long (at most ${PATH_MAX - 1})`;
  const longest = Math.max(...path.split('/').map((name) => Buffer.byteLength(name)));
  return longest > NAME_MAX ? `a name in this path is ${longest} bytes long (at most ${NAME_MAX})` : null;
}

/** Reports the executable, model and log paths of `plan` that no filesystem can take. */
export function checkPathLimits(plan: LaunchPlan, report: Report): void {
  const check = (path: string | null, at: string[], what: string) => {
    const why = path === null ? null : describePathTooLong(path);
    if (why) report('error', at, `${what} ${describeValue(path)}: ${why}`);
  };
  const executable = plan.instances[0]?.executable;
  if (executable?.includes('/')) check(executable, ['master', 'llama_cpp_path'], 'executable');
  for (const i of plan.instances) {
    check(i.model, ['instance', i.name, 'server', 'model'], 'model file');
    check(i.logFile, ['instance', i.name, 'control', 'log_file'], 'log file');
  }
}
