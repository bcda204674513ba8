// supervisor version
import { EXIT } from '../../errors.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson } from '../request.ts';
import { VERSION } from '../version.ts';

export default async function version(args: ParsedArgs): Promise<number> {
  if (args.flags.json) printJson({ version: VERSION, node: process.version });
  else process.stdout.write(`supervisor ${VERSION}\n`);
  return EXIT.OK;
}
