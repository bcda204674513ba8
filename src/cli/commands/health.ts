// supervisor health: Docker's HEALTHCHECK answer, 0 healthy or 1 unhealthy (Docker
// reserves 2), even when no daemon answers. --strict keeps the three-valued
// answer for scripts: 0 all ready, 1 any failed or stopped, 2 still starting,
// 3 no daemon. --live and --ready are Kubernetes' two probes: --live asks only
// that the daemon answers (a model that loads or reloads for an hour must never
// get the pod killed), --ready that the gateway has an instance to serve.
import { UsageError, isSupervisorError } from '../../errors.ts';
import type { HealthSummary, ReadyVerdict } from '../../supervise/supervisor.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson, request } from '../request.ts';

/** The daemon's answer must come within this; HEALTHCHECK's --timeout and the probes' timeoutSeconds are longer. */
const HEALTH_TIMEOUT_MS = 5000;

type Mode = 'docker' | 'strict' | 'live' | 'ready';

function modeOf(args: ParsedArgs): Mode {
  const chosen = (['strict', 'live', 'ready'] as const).filter((flag) => args.flags[flag] === true);
  if (chosen.length > 1) throw new UsageError(`health: --${chosen.join(' and --')} cannot be combined (pick one)`);
  return chosen[0] ?? 'docker';
}

export default async function health(args: ParsedArgs): Promise<number> {
  const mode = modeOf(args);
  let summary: HealthSummary & { ready: ReadyVerdict };
  try {
    summary = (await request('health', {}, HEALTH_TIMEOUT_MS)) as HealthSummary & { ready: ReadyVerdict };
  } catch (err) {
    // No daemon (3) or no answer in time: for Docker and Kubernetes that is simply unhealthy.
    if (mode === 'strict' || !isSupervisorError(err)) throw err;
    process.stdout.write(`${mode === 'ready' ? 'not ready' : 'unhealthy'}: ${err.message}\n`);
    return 1;
  }
  // Alive is only "the daemon answered": instance states are the supervisor's to act on, not the kubelet's.
  const verdict =
    mode === 'strict' ? summary.strict : mode === 'ready' ? summary.ready : mode === 'live' ? { code: 0, line: `alive: ${summary.line}` } : summary;
  if (args.flags.json) printJson(summary);
  else process.stdout.write(`${verdict.line}\n`);
  return verdict.code;
}
