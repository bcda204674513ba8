// CLI: `node dist/tiny-model.js OUT.gguf` writes the tiny test model to OUT.gguf.

import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { writeTinyModel } from './tiny-model.ts';

// Entry point for the bundled tiny-model CLI; returns the process exit code.
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const out = argv[2];
  if (!out || out === '-h' || out === '--help') {
    process.stderr.write('usage: tiny-model OUT.gguf\n');
    return out ? 0 : 2;
  }
  await writeTinyModel(out);
  return 0;
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`tiny-model: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
