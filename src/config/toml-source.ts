// Reads a TOML document with smol-toml, keeping integers (bigint) apart from
// floats (number), and remembers where each key is written so that config
// errors can name line and column, which smol-toml only gives for syntax errors.
import { parse, TomlError } from 'smol-toml';
import type { ConfigTable } from './overrides.ts';

export interface SourcePosition {
  line: number;
  column: number;
}

/** A parsed document plus the source position of every key and table header. */
export interface TomlSource {
  document: ConfigTable;
  /** Position of a key path, or of its nearest written ancestor; undefined when nothing matches. */
  locate(path: readonly string[]): SourcePosition | undefined;
}

/** A TOML syntax error with its position. */
export class TomlSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number | undefined,
    readonly column: number | undefined,
  ) {
    super(message);
  }
}

/** Parses TOML text; throws TomlSyntaxError with line and column on bad syntax. */
export function readToml(text: string): TomlSource {
  let document: ConfigTable;
  try {
    document = parse(text, { integersAsBigInt: true }) as unknown as ConfigTable;
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    // smol-toml's message repeats the source excerpt after the first line; keep the first line.
    const first = err.message.split('\n')[0].replace(/^Invalid TOML document: /, '');
    throw new TomlSyntaxError(first, err.line, err.column);
  }
  const positions = indexKeyPositions(text);
  return {
    document,
    locate(path) {
      for (let n = path.length; n > 0; n--) {
        const hit = positions.get(pathKey(path.slice(0, n)));
        if (hit) return hit;
      }
      return undefined;
    },
  };
}

function pathKey(path: readonly string[]): string {
  return path.join('\u0000');
}

// One pass over the lines: table headers set the current table, `key =` lines
// add a key under it. Multi-line strings and arrays are skipped over; the
// document has already parsed, so this only needs to be right on valid TOML.
function indexKeyPositions(text: string): Map<string, SourcePosition> {
  const positions = new Map<string, SourcePosition>();
  const lines = text.split(/\r?\n/);
  let table: string[] = [];
  let pending: { quote: string } | { depth: number } | null = null;
  const remember = (path: string[], line: number, column: number) => {
    const key = pathKey(path);
    if (!positions.has(key)) positions.set(key, { line, column });
  };
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i];
    if (pending && 'quote' in pending) {
      const end = line.indexOf(pending.quote);
      if (end < 0) continue;
      line = ' '.repeat(end + 3) + line.slice(end + 3);
      pending = null;
    }
    if (pending && 'depth' in pending) {
      pending = trackValue(line, 0, pending.depth);
      continue;
    }
    const indent = line.length - line.trimStart().length;
    const body = line.trimStart();
    if (body === '' || body.startsWith('#')) continue;
    if (body.startsWith('[')) {
      const inner = body.startsWith('[[') ? body.slice(2) : body.slice(1);
      const parsed = splitKey(inner, ']');
      if (parsed) {
        table = parsed.parts;
        for (let n = 1; n <= table.length; n++) remember(table.slice(0, n), i + 1, indent + 1);
      }
      continue;
    }
    const parsed = splitKey(body, '=');
    if (!parsed) continue;
    const full = [...table, ...parsed.parts];
    for (let n = table.length + 1; n <= full.length; n++) remember(full.slice(0, n), i + 1, indent + 1);
    pending = trackValue(body, parsed.end + 1, 0);
  }
  return positions;
}

// Follows a value from `start` to see whether it continues on the next lines
// (an open array or inline table, or a multi-line string).
function trackValue(line: string, start: number, depth: number): { quote: string } | { depth: number } | null {
  for (let j = start; j < line.length; j++) {
    const ch = line[j];
    if (ch === '#') break;
    if (line.startsWith('"""', j) || line.startsWith("'''", j)) {
      const quote = line.slice(j, j + 3);
      const end = line.indexOf(quote, j + 3);
      if (end < 0) return { quote };
      j = end + 2;
      continue;
    }
    if (ch === '"' || ch === "'") {
      j++;
      while (j < line.length && line[j] !== ch) j += ch === '"' && line[j] === '\\' ? 2 : 1;
      continue;
    }
    if (ch === '[' || ch === '{') depth++;
    if (ch === ']' || ch === '}') depth--;
  }
  return depth > 0 ? { depth } : null;
}

// Splits `a."b.c".d` up to the terminator; null when the line is no key.
function splitKey(text: string, terminator: string): { parts: string[]; end: number } | null {
  const parts: string[] = [];
  let j = 0;
  for (;;) {
    while (text[j] === ' ' || text[j] === '\t') j++;
    const ch = text[j];
    let part: string;
    if (ch === '"' || ch === "'") {
      const end = text.indexOf(ch, j + 1);
      if (end < 0) return null;
      const raw = text.slice(j, end + 1);
      part = ch === '"' ? safeJsonString(raw) : raw.slice(1, -1);
      j = end + 1;
    } else {
      const m = /^[A-Za-z0-9_-]+/.exec(text.slice(j));
      if (!m) return null;
      part = m[0];
      j += part.length;
    }
    parts.push(part);
    while (text[j] === ' ' || text[j] === '\t') j++;
    if (text[j] === '.') {
      j++;
      continue;
    }
    if (text[j] === terminator) return { parts, end: j };
    return null;
  }
}

function safeJsonString(raw: string): string {
  try {
    return JSON.parse(raw) as string;
  } catch (err) {
    if (err instanceof SyntaxError) return raw.slice(1, -1);
    throw err;
  }
}
