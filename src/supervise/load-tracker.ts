// One run's load, read from its output as it arrives: the lines go through
// gpu/load-report.ts until the server listens, then reading stops, so the log
// path of a serving instance pays nothing for it.
import { emptyLoadReport, readLoadLine, type LoadReport } from '../gpu/load-report.ts';
import { LineSplitter } from '../process/line-splitter.ts';

/** llama-server's load lines are short; a longer one is cut, which loses nothing we read. */
const MAX_LINE_CHARS = 4096;
/** A load that has not said "listening" after this many lines is read no further (a flood is not a load). */
const MAX_LINES = 20_000;

/** Reads one run's output into its LoadReport. */
export class LoadTracker {
  #report: LoadReport = emptyLoadReport();
  #lines = 0;
  #reading = true;
  /** One per stream: a line of stdout and one of stderr may arrive in pieces, interleaved. */
  readonly #splitters: Record<'stdout' | 'stderr', LineSplitter>;
  readonly #onChange: (report: LoadReport) => void;

  constructor(onChange: (report: LoadReport) => void) {
    this.#onChange = onChange;
    const split = () => new LineSplitter((line) => this.#onLine(line), MAX_LINE_CHARS);
    this.#splitters = { stdout: split(), stderr: split() };
  }

  get report(): LoadReport {
    return this.#report;
  }

  /** A chunk of the run's stdout or stderr. */
  push(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    if (this.#reading) this.#splitters[stream].push(chunk);
  }

  #onLine(line: string): void {
    if (!this.#reading) return;
    if (++this.#lines > MAX_LINES) {
      this.#reading = false;
      return;
    }
    const next = readLoadLine(this.#report, line);
    if (next === this.#report) return;
    this.#report = next;
    if (next.phase === 'listening') this.#reading = false;
    this.#onChange(next);
  }
}
