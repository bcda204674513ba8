// supervisor install-engine vllm|sglang [BUNDLE] [--json]
// Installs upstream's vLLM or SGLang offline bundle (src/bundle/engine-bundle.ts);
// BUNDLE defaults to AUTO_INFER_VLLM_BUNDLE_PATH / AUTO_INFER_SGLANG_BUNDLE_PATH.
// Exit 0 installed / already installed / nothing to do / bundle file missing
// (upstream's skip, with a warning), 1 a failed step or sha mismatch (nothing
// changed), 2 a bundle or project layout that cannot be used.
import { installEngineBundle } from '../../bundle/engine-bundle.ts';
import { EXIT, UsageError } from '../../errors.ts';
import type { ParsedArgs } from '../args.ts';
import { printJson } from '../request.ts';

const USAGE = 'usage: supervisor install-engine vllm|sglang [BUNDLE] [--json]';

export default async function installEngine(args: ParsedArgs): Promise<number> {
  const [kind, bundle, ...rest] = args.positionals;
  if ((kind !== 'vllm' && kind !== 'sglang') || rest.length > 0) throw new UsageError(USAGE);
  const result = await installEngineBundle({ kind, bundle, log: (line) => void process.stderr.write(`install-engine: ${line}\n`) });
  if (args.flags.json) printJson(result);
  else if (result.status === 'missing-bundle') process.stderr.write(`install-engine: warning: ${result.message}\n`);
  else process.stdout.write(`${result.message}\n`);
  return EXIT.OK;
}
