// What the gateway reads from an instance's llama-server command line: the
// model names it answers to (`--alias`) and the key it demands (`--api-key`).
// Pure, so the route table and claude-env agree on the same names.

/** The last value of any of `flags` in argv (`--flag V` or `--flag=V`), as llama-server reads it; null when absent. */
function findLastFlagValue(args: readonly string[], flags: readonly string[]): string | null {
  let found: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (flags.includes(arg) && i + 1 < args.length) {
      found = args[++i];
      continue;
    }
    const flag = flags.find((f) => arg.startsWith(`${f}=`));
    if (flag) found = arg.slice(flag.length + 1);
  }
  return found;
}

/** The instance's aliases (`--alias a,b` / `-a`, else LLAMA_ARG_ALIAS), in order, without blanks. */
export function getInstanceAliases({ args, env }: { args: readonly string[]; env?: Readonly<Record<string, string>> }): string[] {
  const raw = findLastFlagValue(args, ['--alias', '-a']) ?? env?.LLAMA_ARG_ALIAS ?? '';
  return raw
    .split(',')
    .map((alias) => alias.trim())
    .filter((alias) => alias !== '');
}

/** The key llama-server demands (`--api-key`, first of a comma list, else LLAMA_API_KEY); null when it demands none. */
export function getInstanceApiKey({ args, env }: { args: readonly string[]; env?: Readonly<Record<string, string>> }): string | null {
  const raw = findLastFlagValue(args, ['--api-key']) ?? env?.LLAMA_API_KEY ?? '';
  const first = raw.split(',')[0]?.trim() ?? '';
  return first === '' ? null : first;
}
