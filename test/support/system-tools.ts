// Tests that need a real system tool say which one is missing, by name, before
// they run (npm test installs them: scripts/system-tools.mjs).
import { findCommand, searchPath, SYSTEM_TOOLS } from '../../scripts/system-tools.mjs';

/** Throws one clear error naming every missing tool and its package; returns their full paths otherwise. */
export function requireTools(commands: readonly string[], who: string): Record<string, string> {
  const dirs = searchPath();
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const command of commands) {
    const path = findCommand(command, dirs);
    const pkg = SYSTEM_TOOLS.find((t) => t.command === command)?.package ?? command;
    if (path === null) missing.push(`${command} (${pkg})`);
    else found[command] = path;
  }
  if (missing.length > 0) throw new Error(`${who} needs ${missing.join(', ')}: run \`npm test\`, which installs them, or apt-get install them`);
  return found;
}
