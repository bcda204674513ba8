// supervisor status [NAME...] [--json]
import { formatBootSteps, type BootStep } from '../../boot/steps.ts';
import type { InstanceStatus } from '../../supervise/instance.ts';
import { EXIT } from '../../errors.ts';
import type { ParsedArgs } from '../args.ts';
import { formatGpuLine, type GpuSummary } from '../../gpu/summary.ts';
import { formatStatusTable } from '../format-status.ts';
import { printJson, request } from '../request.ts';

export default async function status(args: ParsedArgs): Promise<number> {
  const rows = (await request('status', { names: args.positionals })) as InstanceStatus[];
  if (args.flags.json) {
    printJson(rows);
    return EXIT.OK;
  }
  // At boot (PID 1), the boot steps come first: links, hooks, sshd, bundle, serve; the GPUs last.
  const whole = args.positionals.length === 0;
  const steps = whole ? ((await request('boot-steps')) as BootStep[]) : [];
  const gpus = whole ? ((await request('gpus')) as { gpus: GpuSummary[] }).gpus : [];
  process.stdout.write(formatBootSteps(steps) + formatStatusTable(rows) + gpus.map((g) => `${formatGpuLine(g)}\n`).join(''));
  return EXIT.OK;
}
