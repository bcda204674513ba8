// supervisor gpus [--json]: each GPU, used/total, and what each instance holds there (nvidia-smi asked now).
import { EXIT } from '../../errors.ts';
import { formatGpuLine, type GpuSummary } from '../../gpu/summary.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson, request } from '../request.ts';

export default async function gpus(args: ParsedArgs): Promise<number> {
  const answer = (await request('gpus', { fresh: true })) as { present: boolean; error: string | null; gpus: GpuSummary[] };
  if (args.flags.json) {
    printJson(answer);
    return EXIT.OK;
  }
  if (answer.gpus.length === 0) process.stdout.write(`no GPUs${answer.error ? `: ${answer.error}` : ' (no nvidia-smi, or it lists none)'}\n`);
  for (const gpu of answer.gpus) process.stdout.write(`${formatGpuLine(gpu)}\n`);
  return EXIT.OK;
}
