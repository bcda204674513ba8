// Where a config problem is: a key path becomes file, line and column through
// the TOML source positions, or the overrides variable when an override set
// that key (or a table above it).
import type { ConfigIssue } from '../errors.ts';
import { isTable, OVERRIDES_ENV, type ConfigTable } from './overrides.ts';
import type { TomlSource } from './toml-source.ts';

/** Records one problem at a key path (as a list: `['instance', 'glm', 'server', 'port']`). */
export type Report = (severity: ConfigIssue['severity'], path: readonly string[], message: string) => void;

/** A Report that pushes located issues onto `into`. */
export function makeReport({
  into,
  source,
  overrides,
  file,
  overridesFile = OVERRIDES_ENV,
}: {
  into: ConfigIssue[];
  source: TomlSource;
  /** The overrides merged over the document; null: none. */
  overrides: ConfigTable | null;
  file: string | null;
  /** The variable the overrides came from (the config kind's). */
  overridesFile?: string;
}): Report {
  const overridden = new Set<string>();
  if (overrides) collectLeafPaths(overrides, [], overridden);
  return (severity, path, message) => {
    const dotted = path.join('.');
    for (let n = path.length; n > 0; n--) {
      if (overridden.has(path.slice(0, n).join('.'))) {
        into.push({ severity, file: overridesFile, path: dotted, message });
        return;
      }
    }
    const position = source.locate(path);
    into.push({ severity, file, line: position?.line, column: position?.column, path: dotted, message });
  };
}

function collectLeafPaths(table: ConfigTable, prefix: string[], into: Set<string>): void {
  for (const [key, value] of Object.entries(table)) {
    const path = [...prefix, key];
    if (isTable(value)) collectLeafPaths(value, path, into);
    else into.add(path.join('.'));
  }
}
