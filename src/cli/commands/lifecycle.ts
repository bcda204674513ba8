// supervisor start|stop|restart|unload NAME... | --all, supervisor load NAME...
import type { InstanceStatus } from '../../supervise/instance.ts';
import { EXIT, UsageError } from '../../errors.ts';
import type { ParsedArgs } from '../args.ts';
import { formatStatusTable } from '../format-status.ts';
import { printJson, request } from '../request.ts';

/** Long enough for a stop (8 s grace) and a start; model loading is not waited for. */
const LIFECYCLE_TIMEOUT_MS = 120_000;

export default async function lifecycle(args: ParsedArgs): Promise<number> {
  const all = args.flags.all === true;
  if (args.command === 'load' && all) throw new UsageError('usage: supervisor load NAME... (one by one: loading all at once is what memory planning is for)');
  if (!all && args.positionals.length === 0) throw new UsageError(`usage: supervisor ${args.command} NAME...${args.command === 'load' ? '' : ' | --all'}`);
  const rows = (await request(args.command, { names: args.positionals, all }, LIFECYCLE_TIMEOUT_MS)) as InstanceStatus[];
  if (args.flags.json) printJson(rows);
  else process.stdout.write(formatStatusTable(rows));
  const failed = rows.some((r) => r.state === 'fatal');
  return failed ? EXIT.FAILED : EXIT.OK;
}
