// The `supervisor` command: parse, call, print. Each command's module is
// loaded only when that command runs, so `supervisor status` loads the socket
// client and nothing else (no zod, no TOML parser, no logger).
import { EXIT, isSupervisorError, UsageError } from '../errors.ts';
import { parseArgs, type ParsedArgs } from './args.ts';

type Command = (args: ParsedArgs) => Promise<number>;

const COMMANDS: Record<string, () => Promise<{ default: Command }>> = {
  run: () => import('./commands/run.ts'),
  boot: () => import('./commands/boot.ts'),
  status: () => import('./commands/status.ts'),
  gpus: () => import('./commands/gpus.ts'),
  start: () => import('./commands/lifecycle.ts'),
  stop: () => import('./commands/lifecycle.ts'),
  restart: () => import('./commands/lifecycle.ts'),
  load: () => import('./commands/lifecycle.ts'),
  unload: () => import('./commands/lifecycle.ts'),
  reload: () => import('./commands/reload.ts'),
  serve: () => import('./commands/serve.ts'),
  'install-pkg': () => import('./commands/install-pkg.ts'),
  'install-engine': () => import('./commands/install-engine.ts'),
  logs: () => import('./commands/logs.ts'),
  health: () => import('./commands/health.ts'),
  config: () => import('./commands/config.ts'),
  'claude-env': () => import('./commands/claude-env.ts'),
  version: () => import('./commands/version.ts'),
  help: () => import('./commands/help.ts'),
};

/** Runs one CLI invocation and returns its exit code; errors are printed, never thrown. */
export async function main(argv: string[]): Promise<number> {
  // A command whose work never settles must not look like a success when Node runs out of work.
  process.exitCode = EXIT.FAILED;
  try {
    const args = parseArgs(argv);
    const load = COMMANDS[args.command];
    if (!load) throw new UsageError(`unknown command "${args.command}" (run "supervisor help")`);
    const { default: command } = await load();
    return await command(args);
  } catch (err) {
    if (isSupervisorError(err)) {
      process.stderr.write(`supervisor: ${err.message}\n`);
      return err.exitCode;
    }
    // A bug, not a user error: say so in one line; the stack only on request.
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`supervisor: internal error: ${message}\n`);
    if (process.env.SUPERVISOR_DEBUG) process.stderr.write(`${(err as Error)?.stack}\n`);
    return EXIT.FAILED;
  }
}

// Only when run as the program, not when imported by tests.
if (process.argv[1] && /(?:^|\/)(?:cli\.js|supervisor)$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
