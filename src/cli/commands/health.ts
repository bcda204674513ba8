// supervisor health: Docker's HEALTHCHECK answer, 0 healthy or 1 unhealthy (Docker
// reserves 2), even when no daemon answers. --strict keeps the three-valued
// answer for scripts: 0 all ready, 1 any failed or stopped, 2 still starting,
// 3 no daemon.
import { isSupervisorError } from '../../errors.ts';
import type { HealthSummary } from '../../supervise/supervisor.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson, request } from '../request.ts';

/** The daemon's answer must come within this; HEALTHCHECK's --timeout is longer. */
const HEALTH_TIMEOUT_MS = 5000;

export default async function health(args: ParsedArgs): Promise<number> {
  const strict = args.flags.strict === true;
  let summary: HealthSummary;
  try {
    summary = (await request('health', {}, HEALTH_TIMEOUT_MS)) as HealthSummary;
  } catch (err) {
    // No daemon (3) or no answer in time: for Docker that is simply unhealthy.
    if (strict || !isSupervisorError(err)) throw err;
    process.stdout.write(`unhealthy: ${err.message}\n`);
    return 1;
  }
  const verdict = strict ? summary.strict : summary;
  if (args.flags.json) printJson(summary);
  else process.stdout.write(`${verdict.line}\n`);
  return verdict.code;
}
