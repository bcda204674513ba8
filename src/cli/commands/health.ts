// supervisor health: 0 all ready, 1 any fatal or in backoff, 2 still starting (for HEALTHCHECK).
import type { HealthSummary } from '../../supervise/supervisor.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson, request } from '../request.ts';

export default async function health(args: ParsedArgs): Promise<number> {
  const summary = (await request('health', {}, 5000)) as HealthSummary;
  if (args.flags.json) printJson(summary);
  else process.stdout.write(`${summary.line}\n`);
  return summary.code;
}
