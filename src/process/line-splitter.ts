// Cuts a byte stream into text lines, for output read as it arrives (hook
// logs, llama-server's load lines): a character split across chunks is kept
// whole, and a line longer than the bound comes out in pieces.
import { StringDecoder } from 'node:string_decoder';

/** Calls onLine for each line of the chunks pushed (without its newline or a trailing \r). */
export class LineSplitter {
  readonly #decoder = new StringDecoder('utf8');
  readonly #onLine: (line: string) => void;
  readonly #maxChars: number;
  #pending = '';

  constructor(onLine: (line: string) => void, maxChars: number) {
    this.#onLine = onLine;
    this.#maxChars = maxChars;
  }

  push(chunk: Buffer): void {
    this.#flush(this.#decoder.write(chunk));
  }

  /** The end of the stream: a last line without its newline is a line too. */
  end(): void {
    this.#flush(this.#decoder.end());
    if (this.#pending) this.#onLine(this.#pending);
    this.#pending = '';
  }

  #flush(text: string): void {
    this.#pending += text;
    let newline: number;
    while ((newline = this.#pending.indexOf('\n')) >= 0) {
      this.#onLine(this.#pending.slice(0, newline).replace(/\r$/, ''));
      this.#pending = this.#pending.slice(newline + 1);
    }
    while (this.#pending.length > this.#maxChars) {
      this.#onLine(this.#pending.slice(0, this.#maxChars));
      this.#pending = this.#pending.slice(this.#maxChars);
    }
  }
}
