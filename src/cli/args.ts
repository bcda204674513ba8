// A small argv parser for the CLI: a command, positional words, and flags
// (`--json`, `-n 20`, `--config=FILE`). Unknown flags are usage errors.
import { parseConfigKind, type ConfigKind } from '../config/config-kind.ts';
import { UsageError } from '../errors.ts';

export interface ParsedArgs {
  command: string;
  positionals: string[];
  flags: Record<string, string | true>;
}

/** Flags that take a value; every other flag is a switch. */
const VALUE_FLAGS: Record<string, string> = { '--config': 'config', '-n': 'lines', '--lines': 'lines', '--model': 'model', '--engine': 'engine' };
const SWITCHES: Record<string, string> = {
  '--json': 'json',
  '--all': 'all',
  '-f': 'follow',
  '--follow': 'follow',
  '-h': 'help',
  '--help': 'help',
  '--version': 'version',
  '--force': 'force',
  '--no-verify': 'noVerify',
  '--restart': 'restart',
  '--rollback': 'rollback',
  '--strict': 'strict',
  '--live': 'live',
  '--ready': 'ready',
};

/** `--engine vllm|sglang|llama-cpp`: which runner's TOML a config file is (default llama-cpp). */
export function readKindFlag(args: ParsedArgs): ConfigKind {
  const word = args.flags.engine;
  if (word === undefined) return 'llama-cpp';
  const kind = typeof word === 'string' ? parseConfigKind(word) : null;
  if (kind === null) throw new UsageError(`--engine ${String(word)}: expected llama-cpp, vllm or sglang (which runner's TOML the file is)`);
  return kind;
}

/** Splits argv into command, positionals and flags. */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const positionals: string[] = [];
  const flags: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const [name, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    if (VALUE_FLAGS[name]) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`${name} needs a value`);
      flags[VALUE_FLAGS[name]] = value;
    } else if (SWITCHES[name] && inline === undefined) {
      flags[SWITCHES[name]] = true;
    } else {
      throw new UsageError(`unknown option ${name}`);
    }
  }
  let command = positionals.shift() ?? 'help';
  if (flags.help) command = 'help';
  if (flags.version && command === 'help') command = 'version';
  return { command, positionals, flags };
}
