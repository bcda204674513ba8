// supervisor boot [-- CMD ARGS...]: the container's ENTRYPOINT (PID 1).
import { EXIT } from '../../errors.ts';
import { runBoot } from '../../pid1/boot.ts';
import type { ParsedArgs } from '../args.ts';
import { VERSION } from '../version.ts';

export default async function boot(args: ParsedArgs): Promise<number> {
  let code: number = EXIT.FAILED;
  try {
    code = await runBoot({ command: args.positionals, version: VERSION });
  } catch (err) {
    // Whatever went wrong, PID 1 must not linger with the container half alive.
    process.stderr.write(`supervisor boot: internal error: ${(err as Error).message}\n`);
  } finally {
    // PID 1 leaves now: nothing it started may keep it alive (the kernel then ends the namespace).
    process.exit(code);
  }
}
