// supervisor status [NAME...] [--json]
import type { InstanceStatus } from '../../supervise/instance.ts';
import { EXIT } from '../../errors.ts';
import type { ParsedArgs } from '../args.ts';
import { formatStatusTable } from '../format-status.ts';
import { printJson, request } from '../request.ts';

export default async function status(args: ParsedArgs): Promise<number> {
  const rows = (await request('status', { names: args.positionals })) as InstanceStatus[];
  if (args.flags.json) printJson(rows);
  else process.stdout.write(formatStatusTable(rows));
  return EXIT.OK;
}
