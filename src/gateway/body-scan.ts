// Finds a request body's top-level `model` and `stream` and checks that the
// body is one JSON object, chunk by chunk as it arrives, without building it:
// a 32 MB body costs a pass over its bytes spread over its 'data' events
// instead of a JSON.parse that holds the event loop and three copies of the
// body. What it accepts is what JSON.parse accepts (RFC 8259; bytes inside
// strings are not checked as UTF-8, as Buffer#toString did not either), and
// like JSON.parse the last of duplicate keys wins. Nesting is limited, so a
// body of `[[[[…` fails at once instead of reaching the instance's parser.

/** Deeper bodies are refused: no real request nests like this, and parsers that recurse would overflow. */
export const MAX_BODY_DEPTH = 512;
/** A longer `model` is refused (model names are short; a long one is not worth routing). */
export const MAX_MODEL_BYTES = 1024;

/** What the body says about routing. */
export interface BodyFields {
  /** The last top-level `model`, when it is a string; undefined otherwise (absent or not a string). */
  model: string | undefined;
  /** The last top-level `stream` is `true`. */
  stream: boolean;
}

// Scanner states: what the next byte may be.
const START = 0; // before the top-level value
const VALUE = 1; // a value (after ':' or ',' in a list)
const OBJECT_FIRST = 2; // a key or '}' (after '{')
const OBJECT_KEY = 3; // a key (after ',' in an object)
const COLON = 4;
const AFTER_VALUE = 5; // ',' or the closer of the enclosing container
const LIST_FIRST = 6; // a value or ']' (after '[')
const STRING = 7;
const ESCAPE = 8; // after '\'
const UNICODE = 9; // hex digits of '\uXXXX'
const NUMBER_MINUS = 10; // after '-': a digit
const NUMBER_ZERO = 11; // after a leading 0: '.', 'e' or the end
const NUMBER_INT = 12;
const NUMBER_DOT = 13; // after '.': a digit
const NUMBER_FRACTION = 14;
const NUMBER_E = 15; // after 'e': a sign or a digit
const NUMBER_E_SIGN = 16; // after the sign: a digit
const NUMBER_EXPONENT = 17;
const LITERAL = 18; // inside true / false / null
const END = 19; // after the top-level object: whitespace only

const IN_OBJECT = 1;
const IN_LIST = 2;

// What the string being read is, for capturing.
const PLAIN = 0;
const TOP_KEY = 1;
const MODEL_VALUE = 2;

// Which top-level key was just read.
const NO_FIELD = 0;
const MODEL_FIELD = 1;
const STREAM_FIELD = 2;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

// Longest raw key that can still decode to "stream" (every character as \uXXXX).
const MAX_KEY_BYTES = 6 * 6;

const LITERALS = { t: Buffer.from('true'), f: Buffer.from('false'), n: Buffer.from('null') } as const;

const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isHex = (c: number) => isDigit(c) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);

function describeByte(c: number): string {
  return c >= 0x20 && c < 0x7f ? JSON.stringify(String.fromCharCode(c)) : `byte 0x${c.toString(16).padStart(2, '0')}`;
}

/** Feed it the body's chunks in order with push(), then call end(); both return an error message or null. */
export class BodyScanner {
  #state = START;
  #depth = 0;
  readonly #stack = new Uint8Array(MAX_BODY_DEPTH + 1);
  /** Bytes scanned in earlier chunks, for positions in messages. */
  #offset = 0;
  #stringKind = PLAIN;
  /** The string being read is a key (then a ':' follows it). */
  #inKey = false;
  #unicodeLeft = 0;
  #literal: Buffer = LITERALS.t;
  #literalAt = 0;
  /** The top-level key whose value comes next. */
  #field = NO_FIELD;
  /** This literal is the value of a top-level `stream`. */
  #literalIsStream = false;
  /** Raw bytes of the string being captured (a top-level key or `model`). */
  readonly #capture = Buffer.allocUnsafe(MAX_MODEL_BYTES);
  #captured = 0;
  #captureOverflow = false;
  #model: string | undefined = undefined;
  #stream = false;
  #error: string | null = null;

  /** The routing fields; complete once end() returned null. */
  get fields(): BodyFields {
    return { model: this.#model, stream: this.#stream };
  }

  /** Scans the next chunk; an error message once the body cannot be a JSON object (then stop feeding it). */
  push(chunk: Uint8Array): string | null {
    if (this.#error !== null) return this.#error;
    const n = chunk.length;
    let i = 0;
    // A string being captured continues from the start of this chunk.
    let captureFrom = 0;
    while (i < n) {
      const c = chunk[i];
      switch (this.#state) {
        case STRING: {
          // The bulk of a body: run to the next quote, backslash or control byte.
          let j = i;
          while (j < n) {
            const d = chunk[j];
            if (d === QUOTE || d === BACKSLASH || d < 0x20) break;
            j++;
          }
          if (j === n) {
            i = n;
            break;
          }
          const d = chunk[j];
          if (d < 0x20) return this.#fail(`request body is not valid JSON: unescaped control character (${describeByte(d)}) in a string at byte ${this.#offset + j + 1}`);
          if (d === BACKSLASH) {
            this.#state = ESCAPE;
            i = j + 1;
            break;
          }
          if (this.#stringKind !== PLAIN) {
            this.#keep(chunk, captureFrom, j);
            const error = this.#endCapture();
            if (error) return this.#fail(error);
          }
          this.#state = this.#inKey ? COLON : AFTER_VALUE;
          i = j + 1;
          break;
        }
        case ESCAPE:
          if (c === 0x75) {
            this.#state = UNICODE;
            this.#unicodeLeft = 4;
          } else if (c === QUOTE || c === BACKSLASH || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74) {
            this.#state = STRING;
          } else return this.#unexpected(c, i, 'an escape (one of \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)');
          i++;
          break;
        case UNICODE:
          if (!isHex(c)) return this.#unexpected(c, i, 'a hex digit of \\uXXXX');
          if (--this.#unicodeLeft === 0) this.#state = STRING;
          i++;
          break;
        case START:
          if (isSpace(c)) {
            i++;
            break;
          }
          if (c !== 0x7b) return this.#fail('request body must be a JSON object');
          this.#open(IN_OBJECT);
          i++;
          break;
        case OBJECT_FIRST:
        case OBJECT_KEY:
          if (isSpace(c)) {
            i++;
            break;
          }
          if (c === QUOTE) {
            this.#beginString(this.#depth === 1 ? TOP_KEY : PLAIN, true);
            captureFrom = i + 1;
          } else if (c === 0x7d && this.#state === OBJECT_FIRST) {
            this.#close();
          } else return this.#unexpected(c, i, this.#state === OBJECT_FIRST ? 'a quoted key or "}"' : 'a quoted key');
          i++;
          break;
        case COLON:
          if (isSpace(c)) {
            i++;
            break;
          }
          if (c !== 0x3a) return this.#unexpected(c, i, '":"');
          this.#state = VALUE;
          i++;
          break;
        case VALUE:
        case LIST_FIRST: {
          if (isSpace(c)) {
            i++;
            break;
          }
          if (c === 0x5d && this.#state === LIST_FIRST) {
            this.#close();
            i++;
            break;
          }
          const field = this.#depth === 1 ? this.#field : NO_FIELD;
          this.#field = NO_FIELD;
          if (c === QUOTE) {
            this.#beginString(field === MODEL_FIELD ? MODEL_VALUE : PLAIN, false);
            captureFrom = i + 1;
            i++;
          } else if (c === 0x7b || c === 0x5b) {
            if (this.#depth === MAX_BODY_DEPTH) return this.#fail(`request body is nested deeper than ${MAX_BODY_DEPTH} levels`);
            this.#open(c === 0x7b ? IN_OBJECT : IN_LIST);
            i++;
          } else if (c === 0x2d) {
            this.#state = NUMBER_MINUS;
            i++;
          } else if (c === 0x30) {
            this.#state = NUMBER_ZERO;
            i++;
          } else if (isDigit(c)) {
            this.#state = NUMBER_INT;
            i++;
          } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
            this.#literal = c === 0x74 ? LITERALS.t : c === 0x66 ? LITERALS.f : LITERALS.n;
            this.#literalAt = 1;
            this.#literalIsStream = field === STREAM_FIELD && c === 0x74;
            this.#state = LITERAL;
            i++;
          } else return this.#unexpected(c, i, this.#state === LIST_FIRST ? 'a value or "]"' : 'a value');
          break;
        }
        case AFTER_VALUE:
          if (isSpace(c)) {
            i++;
            break;
          }
          if (c === 0x2c) {
            this.#state = this.#stack[this.#depth] === IN_OBJECT ? OBJECT_KEY : VALUE;
          } else if (c === (this.#stack[this.#depth] === IN_OBJECT ? 0x7d : 0x5d)) {
            this.#close();
          } else return this.#unexpected(c, i, this.#stack[this.#depth] === IN_OBJECT ? '"," or "}"' : '"," or "]"');
          i++;
          break;
        case LITERAL:
          if (c !== this.#literal[this.#literalAt]) return this.#unexpected(c, i, JSON.stringify(this.#literal.toString()));
          if (++this.#literalAt === this.#literal.length) {
            if (this.#literalIsStream) this.#stream = true;
            this.#state = AFTER_VALUE;
          }
          i++;
          break;
        case NUMBER_MINUS:
          if (c === 0x30) this.#state = NUMBER_ZERO;
          else if (isDigit(c)) this.#state = NUMBER_INT;
          else return this.#unexpected(c, i, 'a digit');
          i++;
          break;
        case NUMBER_INT:
        case NUMBER_ZERO:
          // Digits continue an integer part, never a leading zero.
          if (this.#state === NUMBER_INT && isDigit(c)) {
            i++;
            break;
          }
          if (c === 0x2e) this.#state = NUMBER_DOT;
          else if (c === 0x65 || c === 0x45) this.#state = NUMBER_E;
          else {
            // The number ended; this byte belongs to what follows it.
            this.#state = AFTER_VALUE;
            break;
          }
          i++;
          break;
        case NUMBER_DOT:
        case NUMBER_E_SIGN:
          // A digit must follow '.' and an exponent's sign.
          if (!isDigit(c)) return this.#unexpected(c, i, 'a digit');
          this.#state = this.#state === NUMBER_DOT ? NUMBER_FRACTION : NUMBER_EXPONENT;
          i++;
          break;
        case NUMBER_FRACTION:
          if (isDigit(c)) i++;
          else if (c === 0x65 || c === 0x45) {
            this.#state = NUMBER_E;
            i++;
          } else this.#state = AFTER_VALUE;
          break;
        case NUMBER_E:
          if (c === 0x2b || c === 0x2d) this.#state = NUMBER_E_SIGN;
          else if (isDigit(c)) this.#state = NUMBER_EXPONENT;
          else return this.#unexpected(c, i, 'a digit or a sign');
          i++;
          break;
        case NUMBER_EXPONENT:
          if (isDigit(c)) i++;
          else this.#state = AFTER_VALUE;
          break;
        case END:
          if (!isSpace(c)) return this.#unexpected(c, i, 'nothing after the JSON object');
          i++;
          break;
      }
    }
    if (this.#stringKind !== PLAIN && (this.#state === STRING || this.#state === ESCAPE || this.#state === UNICODE)) this.#keep(chunk, captureFrom, n);
    this.#offset += n;
    return null;
  }

  /** The body is complete: an error message if it is not one whole JSON object. */
  end(): string | null {
    if (this.#error !== null) return this.#error;
    if (this.#state === END) return null;
    if (this.#state === START) return this.#fail(this.#offset === 0 ? 'request body is empty (expected a JSON object)' : 'request body must be a JSON object');
    return this.#fail(`request body is not valid JSON: it ends at byte ${this.#offset} before the object is complete`);
  }

  #beginString(kind: number, isKey: boolean): void {
    this.#state = STRING;
    this.#stringKind = kind;
    this.#inKey = isKey;
    this.#captured = 0;
    this.#captureOverflow = false;
  }

  #keep(chunk: Uint8Array, from: number, to: number): void {
    const room = (this.#stringKind === TOP_KEY ? MAX_KEY_BYTES : MAX_MODEL_BYTES) - this.#captured;
    const length = to - from;
    if (length > room) this.#captureOverflow = true;
    const take = Math.min(length, Math.max(room, 0));
    if (take > 0) this.#capture.set(chunk.subarray(from, from + take), this.#captured);
    this.#captured += take;
  }

  // A top-level key or `model` string ended: decide what it was.
  #endCapture(): string | null {
    const kind = this.#stringKind;
    this.#stringKind = PLAIN;
    if (kind === TOP_KEY) {
      // A key too long to be "model" or "stream", even written with escapes.
      if (this.#captureOverflow) {
        this.#field = NO_FIELD;
        return null;
      }
      const key = this.#decodeCaptured();
      this.#field = key === 'model' ? MODEL_FIELD : key === 'stream' ? STREAM_FIELD : NO_FIELD;
      if (this.#field === STREAM_FIELD) this.#stream = false;
      if (this.#field === MODEL_FIELD) this.#model = undefined;
      return null;
    }
    if (this.#captureOverflow) return `request body's "model" is longer than ${MAX_MODEL_BYTES} bytes`;
    this.#model = this.#decodeCaptured();
    return null;
  }

  // Escapes were checked while scanning, so this raw string is valid JSON.
  #decodeCaptured(): string {
    const raw = this.#capture.toString('utf8', 0, this.#captured);
    return raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
  }

  #open(kind: number): void {
    this.#stack[++this.#depth] = kind;
    this.#state = kind === IN_OBJECT ? OBJECT_FIRST : LIST_FIRST;
  }

  #close(): void {
    this.#depth--;
    this.#state = this.#depth === 0 ? END : AFTER_VALUE;
  }

  #unexpected(c: number, i: number, expected: string): string {
    return this.#fail(`request body is not valid JSON: unexpected ${describeByte(c)} at byte ${this.#offset + i + 1} (expected ${expected})`);
  }

  #fail(message: string): string {
    this.#error = message;
    return message;
  }
}
