// The llama-server command line of one instance, by upstream's rules, and what
// is read back from it: where the server listens, its model, the names it
// answers to and the key it demands. Each is read as llama-server reads its
// argv: `--flag V` or `--flag=V`, and the last one wins.
import type { ConfigTable, ConfigValue } from './overrides.ts';
import { formatPythonScalar } from './python-str.ts';
import { describeValue } from './zod-issues.ts';

/** The variable that raises llama-server's verbosity without touching its argv. */
export const LOG_VERBOSITY_ENV = 'LLAMA_ARG_LOG_VERBOSITY';
/** At 4, llama-server logs buffers, offload and fit lines; at its default (3) it says almost nothing about a load. */
export const LOAD_LOG_VERBOSITY = '4';

/** llama-server's own defaults, used for probing and the duplicate-port check. */
const LLAMA_SERVER_DEFAULT_HOST = '127.0.0.1';
const LLAMA_SERVER_DEFAULT_PORT = 8080;

/** Upstream's server merge: lists concatenate (global first), anything else replaces in the global key's position. */
export function mergeServer(globalServer: ConfigTable, instanceServer: ConfigTable): ConfigTable {
  const merged: ConfigTable = { ...globalServer };
  for (const [key, value] of Object.entries(instanceServer)) {
    const current = merged[key];
    merged[key] = Array.isArray(current) && Array.isArray(value) ? [...current, ...value] : value;
  }
  return merged;
}

/** Upstream's argv: `extra_args` first, then `--key-with-dashes` per key; true → bare flag, false → omitted, lists repeat. */
export function makeServerArgs(server: ConfigTable): string[] {
  const { extra_args: extra, ...rest } = server;
  const args: string[] = Array.isArray(extra) ? extra.map((item) => formatArg(item)) : [];
  for (const [key, value] of Object.entries(rest)) {
    const flag = `--${key.replaceAll('_', '-')}`;
    if (value === true) args.push(flag);
    else if (value === false) continue;
    else if (Array.isArray(value)) for (const item of value) args.push(flag, formatArg(item));
    else args.push(flag, formatArg(value));
  }
  return args;
}

/** A scalar config value as upstream put it on the command line (Python's str()). */
export function formatArg(value: ConfigValue): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return formatPythonScalar(value);
  }
  // Validation rejects tables, dates and nested lists before we get here.
  throw new TypeError(`unexpected server value ${describeValue(value)}`);
}

/** Where llama-server listens. */
export function findListenAddress(args: readonly string[]): { host: string; port: number } {
  const host = findFlagValue(args, ['--host']) ?? LLAMA_SERVER_DEFAULT_HOST;
  const port = Number(findFlagValue(args, ['--port']) ?? LLAMA_SERVER_DEFAULT_PORT);
  return { host, port };
}

/** The model file (`--model` / `-m`); null when absent. */
export function findModel(args: readonly string[]): string | null {
  return findFlagValue(args, ['--model', '-m']);
}

/** The model names the server answers to (`--alias a,b` / `-a`, else LLAMA_ARG_ALIAS in its environment), in order, without blanks. */
export function findAliases(args: readonly string[], env: Readonly<Record<string, string>>): string[] {
  const raw = findFlagValue(args, ['--alias', '-a']) ?? env.LLAMA_ARG_ALIAS ?? '';
  return raw
    .split(',')
    .map((alias) => alias.trim())
    .filter((alias) => alias !== '');
}

/** The key the server demands (`--api-key`, first of a comma list, else LLAMA_API_KEY in its environment); null when none. */
export function findApiKey(args: readonly string[], env: Readonly<Record<string, string>>): string | null {
  const raw = findFlagValue(args, ['--api-key']) ?? env.LLAMA_API_KEY ?? '';
  const first = raw.split(',')[0]?.trim() ?? '';
  return first === '' ? null : first;
}

/** The context size asked for (`--ctx-size` / `-c`); null when absent or 0 (from the model). */
export function findCtxSize(args: readonly string[], env: Readonly<Record<string, string>>): number | null {
  const value = Number(findFlagValue(args, ['--ctx-size', '-c']) ?? env.LLAMA_ARG_CTX_SIZE ?? 0);
  return Number.isInteger(value) && value > 0 ? value : null;
}

/** Whether the args choose llama-server's log verbosity themselves. */
export function setsLogVerbosity(args: readonly string[]): boolean {
  const flags = ['-v', '--verbose', '-lv', '--verbosity', '--log-verbosity'];
  return args.some((arg) => flags.includes(arg) || flags.some((f) => f.startsWith('--') && arg.startsWith(`${f}=`)));
}

export function findFlagValue(args: readonly string[], flags: readonly string[]): string | null {
  let found: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (flags.includes(arg) && i + 1 < args.length) found = args[++i];
    else {
      const flag = flags.find((f) => arg.startsWith(`${f}=`));
      if (flag) found = arg.slice(flag.length + 1);
    }
  }
  return found;
}

/** The words after the last `flag` up to the next `-`-word (argparse's nargs="+"), or after `flag=`; empty when absent. */
export function findFlagValues(args: readonly string[], flag: string): string[] {
  let found: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) {
      found = [];
      while (i + 1 < args.length && !args[i + 1].startsWith('-')) found.push(args[++i]);
    } else if (args[i].startsWith(`${flag}=`)) found = [args[i].slice(flag.length + 1)];
  }
  return found;
}
