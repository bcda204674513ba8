// AUTO_INFER_LLAMA_CPP_OVERRIDES: JSON deep-merged over the TOML document
// before anything else (tables recurse, everything else replaces).
// JSON.parse would turn `1.0` into 1 and lose the float, which changes the
// argv (`--temp 1.0` vs `--temp 1`), so this reads JSON itself: integers
// become bigint and floats number, exactly like the TOML reader.

/** The environment variable that holds the overrides. */
export const OVERRIDES_ENV = 'AUTO_INFER_LLAMA_CPP_OVERRIDES';

export type ConfigValue = string | number | bigint | boolean | ConfigValue[] | ConfigTable | Date;
export interface ConfigTable {
  [key: string]: ConfigValue;
}

/** A JSON text that could not be used as overrides; `offset` is the character where reading stopped. */
export class OverridesSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/** Parses the overrides JSON, keeping integers apart from floats. */
export function parseOverrides(text: string): ConfigTable {
  const reader = new JsonReader(text);
  reader.skipSpace();
  const value = reader.readValue();
  reader.skipSpace();
  if (reader.pos < text.length) throw reader.fail('unexpected text after the JSON value');
  if (!isTable(value)) {
    throw new OverridesSyntaxError(`expected a JSON object, got ${describeJsonValue(value)}`, 0);
  }
  return value;
}

/** Deep-merges `overrides` into `base` in place: tables recurse, any other value replaces (lists too). */
export function mergeOverrides(base: ConfigTable, overrides: ConfigTable): ConfigTable {
  for (const [key, value] of Object.entries(overrides)) {
    const current = base[key];
    if (isTable(current) && isTable(value)) mergeOverrides(current, value);
    else base[key] = value;
  }
  return base;
}

/** A TOML/JSON table (not a list, not a date). */
export function isTable(value: unknown): value is ConfigTable {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function describeJsonValue(value: ConfigValue): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return `a ${typeof value === 'bigint' ? 'number' : typeof value}`;
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const MAX_DEPTH = 64;

class JsonReader {
  pos = 0;
  private depth = 0;
  constructor(private readonly text: string) {}

  fail(message: string): OverridesSyntaxError {
    return new OverridesSyntaxError(`${message} at character ${this.pos + 1}`, this.pos);
  }

  skipSpace(): void {
    while (this.pos < this.text.length && ' \t\n\r'.includes(this.text[this.pos])) this.pos++;
  }

  readValue(): ConfigValue {
    const ch = this.text[this.pos];
    if (ch === '{') return this.nested(() => this.readObject());
    if (ch === '[') return this.nested(() => this.readArray());
    if (ch === '"') return this.readString();
    if (this.text.startsWith('true', this.pos)) return (this.pos += 4), true;
    if (this.text.startsWith('false', this.pos)) return (this.pos += 5), false;
    if (this.text.startsWith('null', this.pos)) {
      throw this.fail('null is not a config value (TOML has no null)');
    }
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (m) {
      this.pos += m[0].length;
      return m[1] === undefined && m[2] === undefined ? BigInt(m[0]) : Number(m[0]);
    }
    throw this.fail(ch === undefined ? 'unexpected end of JSON' : `unexpected ${JSON.stringify(ch)}`);
  }

  private nested<T>(read: () => T): T {
    if (++this.depth > MAX_DEPTH) throw this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    const value = read();
    this.depth--;
    return value;
  }

  private readObject(): ConfigTable {
    const table: ConfigTable = Object.create(null);
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === '}') return this.pos++, table;
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] !== '"') throw this.fail('expected a quoted key');
      const key = this.readString();
      this.skipSpace();
      if (this.text[this.pos] !== ':') throw this.fail("expected ':'");
      this.pos++;
      this.skipSpace();
      table[key] = this.readValue();
      this.skipSpace();
      const sep = this.text[this.pos++];
      if (sep === '}') return table;
      if (sep !== ',') throw (this.pos--, this.fail("expected ',' or '}'"));
    }
  }

  private readArray(): ConfigValue[] {
    const list: ConfigValue[] = [];
    this.pos++;
    this.skipSpace();
    if (this.text[this.pos] === ']') return this.pos++, list;
    for (;;) {
      this.skipSpace();
      list.push(this.readValue());
      this.skipSpace();
      const sep = this.text[this.pos++];
      if (sep === ']') return list;
      if (sep !== ',') throw (this.pos--, this.fail("expected ',' or ']'"));
    }
  }

  private readString(): string {
    const start = this.pos;
    this.pos++;
    for (;;) {
      const ch = this.text[this.pos];
      if (ch === undefined) throw this.fail('unterminated string');
      if (ch === '"') break;
      if (ch === '\\') this.pos++;
      else if (ch < ' ') throw this.fail('control character in string');
      this.pos++;
    }
    this.pos++;
    try {
      return JSON.parse(this.text.slice(start, this.pos)) as string;
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      this.pos = start;
      throw this.fail('invalid escape in string');
    }
  }
}
