// supervisor boot [-- CMD ARGS...]: the container's ENTRYPOINT (PID 1).
import { runBoot } from '../../pid1/boot.ts';
import type { ParsedArgs } from '../args.ts';
import { VERSION } from '../version.ts';

export default async function boot(args: ParsedArgs): Promise<number> {
  const code = await runBoot({ command: args.positionals, version: VERSION });
  // PID 1 leaves now: nothing it started may keep it alive (the kernel then ends the namespace).
  process.exit(code);
}
