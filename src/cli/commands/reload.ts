// supervisor reload: re-read the config, restart only what changed.
import { EXIT } from '../../errors.ts';
import type { ReloadSummary } from '../../supervise/supervisor.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson, request } from '../request.ts';

export default async function reload(args: ParsedArgs): Promise<number> {
  const summary = (await request('reload', {}, 120_000)) as ReloadSummary;
  if (args.flags.json) printJson(summary);
  else {
    const part = (label: string, names: string[]) => `${label}: ${names.length > 0 ? names.join(', ') : '-'}`;
    process.stdout.write(
      `${[part('started', summary.started), part('restarted', summary.restarted), part('stopped', summary.stopped), part('unchanged', summary.unchanged)].join('\n')}\n`,
    );
  }
  return EXIT.OK;
}
