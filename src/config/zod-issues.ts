// Checks one config table against its zod schema and turns zod's issues into
// our messages: what was expected and what was found, worded for someone
// editing a TOML file. The words are ours, not zod's: zod/mini loads no
// locale, so a stock `issue.message` is a bare "Invalid input"; only a custom
// `{ error }` message of the schema is used as is.
import type * as z from 'zod/mini';
import { isTable, type ConfigTable, type ConfigValue } from './overrides.ts';

/** One problem in a table, with its path relative to the table. */
export interface TableIssue {
  path: string[];
  message: string;
}

/**
 * The typed content of `table`, or every problem in it. zod validates a plain
 * view (TOML integers arrive as bigint, zod checks numbers); messages describe
 * the values as written, so `1` stays `1` and `1.0` stays `1.0`.
 */
export function checkTable<Schema extends z.ZodMiniObject>(
  schema: Schema,
  table: ConfigTable,
): { ok: true; data: z.infer<Schema> } | { ok: false; issues: TableIssue[] } {
  const result = schema.safeParse(toPlain(table));
  if (result.success) return { ok: true, data: result.data };
  return { ok: false, issues: issuesFromZod(result.error.issues, table, Object.keys(schema.shape)) };
}

function toPlain(value: ConfigValue): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value)) return value.map(toPlain);
  if (isTable(value)) {
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, v] of Object.entries(value)) out[k] = toPlain(v);
    return out;
  }
  return value;
}

/** A short description of a config value for messages: `"abc"`, `1.5`, `a table`. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
  if (typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (typeof value === 'number') return Number.isInteger(value) ? value.toFixed(1) : String(value);
  if (value instanceof Date) return 'a date';
  if (Array.isArray(value)) return 'a list';
  if (isTable(value)) return 'a table';
  return String(value);
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a table',
  array: 'a list',
  record: 'a table',
};

// One message per problem, with the path relative to the validated table.
function issuesFromZod(issues: readonly z.core.$ZodIssue[], root: ConfigTable, knownKeys: readonly string[]): TableIssue[] {
  const out: TableIssue[] = [];
  for (const issue of issues) {
    const path = issue.path.map(String);
    const got = describeValue(valueAt(root, path));
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) out.push({ path: [...path, key], message: describeUnknownKey(key, path.length === 0 ? knownKeys : []) });
        break;
      case 'invalid_type':
        out.push({ path, message: `expected ${TYPE_WORDS[issue.expected] ?? issue.expected}, got ${got}` });
        break;
      case 'too_small':
        out.push({ path, message: `expected ${issue.inclusive ? 'at least' : 'more than'} ${issue.minimum}, got ${got}` });
        break;
      case 'too_big':
        out.push({ path, message: `expected at most ${issue.maximum}, got ${got}` });
        break;
      case 'invalid_value':
        out.push({ path, message: `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}; got ${got}` });
        break;
      case 'invalid_union':
        out.push({ path, message: describeUnion(issue, got) });
        break;
      // The wording of classic zod's English locale, which mini does not load.
      case 'invalid_key':
        out.push({ path, message: `Invalid key in ${issue.origin}, got ${got}` });
        break;
      case 'invalid_element':
        out.push({ path, message: `Invalid value in ${issue.origin}, got ${got}` });
        break;
      default:
        out.push({ path, message: `${issue.message}, got ${got}` });
    }
  }
  return out;
}

// A union fails as a whole; name the alternatives, or the one that came closest.
function describeUnion(issue: z.core.$ZodIssueInvalidUnion, got: string): string {
  const custom = issue.errors.flat().find((e) => e.code === 'invalid_format' || e.code === 'too_small');
  if (custom && custom.code === 'invalid_format') return `${custom.message}, got ${got}`;
  const expected = issue.errors
    .flat()
    .filter((e) => e.code === 'invalid_type')
    .map((e) => TYPE_WORDS[(e as z.core.$ZodIssueInvalidType).expected] ?? (e as z.core.$ZodIssueInvalidType).expected);
  if (expected.length > 0) return `expected ${[...new Set(expected)].join(' or ')}, got ${got}`;
  return `${issue.errors.flat()[0]?.message ?? 'invalid value'}, got ${got}`;
}

function valueAt(root: ConfigTable, path: string[]): ConfigValue | undefined {
  let current: ConfigValue | undefined = root;
  for (const key of path) {
    if (Array.isArray(current)) current = current[Number(key)];
    else if (isTable(current)) current = current[key];
    else return undefined;
  }
  return current;
}

// `unknown key (did you mean "enable"? expected one of: enable, llama_cpp_path)`.
function describeUnknownKey(key: string, known: readonly string[]): string {
  if (known.length === 0) return 'unknown key';
  const close = known.find((k) => k.replaceAll('_', '') === key.replaceAll(/[_-]/g, '') || editDistance(k, key) <= 2);
  return `unknown key (${close ? `did you mean "${close}"? ` : ''}expected one of: ${known.join(', ')})`;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}
