// supervisor logs NAME [-n N] [-f]
import { streamRequest } from '../../control/client.ts';
import { getSocketPath } from '../../control/socket-path.ts';
import { EXIT, UsageError } from '../../errors.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson, request } from '../request.ts';

export default async function logs(args: ParsedArgs): Promise<number> {
  const [name, ...rest] = args.positionals;
  if (!name || rest.length > 0) throw new UsageError('usage: supervisor logs NAME [-n N] [-f]');
  const lines = args.flags.lines === undefined ? 50 : Number(args.flags.lines);
  if (!Number.isInteger(lines) || lines < 0) throw new UsageError(`-n expects a whole number of lines, got "${args.flags.lines}"`);
  if (args.flags.follow) {
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    for await (const chunk of streamRequest({ path: getSocketPath(), cmd: 'logs', args: { name, lines, follow: true } })) {
      if (stop.signal.aborted) break;
      process.stdout.write(chunk);
    }
    return EXIT.OK;
  }
  const result = (await request('logs', { name, lines })) as { file: string; lines: string[] };
  if (args.flags.json) printJson(result);
  else if (result.lines.length > 0) process.stdout.write(`${result.lines.join('\n')}\n`);
  return EXIT.OK;
}
