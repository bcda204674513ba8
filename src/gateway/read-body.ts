// Reads a request body for forwarding: only once the body budget holds its
// size (body-budget.ts), scanned for `model` and `stream` as it arrives
// (body-scan.ts), and kept as the chunks it came in, which are forwarded as
// they are (never joined into one more copy). A declared or actual size over
// max_body_bytes stops it at once; once the bytes cannot be a JSON object,
// nothing more is kept or scanned.
import type { IncomingMessage } from 'node:http';
import type { BodyBudget, Reservation } from './body-budget.ts';
import { BodyScanner, type BodyFields } from './body-scan.ts';

/** A body in memory, counted against the budget until release(). */
export class HeldBody {
  #chunks: Buffer[];
  readonly length: number;
  readonly #reservation: Reservation;

  constructor(chunks: Buffer[], length: number, reservation: Reservation) {
    this.#chunks = chunks;
    this.length = length;
    this.#reservation = reservation;
  }

  /** The bytes, in order; empty once released. */
  get chunks(): readonly Buffer[] {
    return this.#chunks;
  }

  /** Drops the bytes and gives their share of the budget back (idempotent). */
  release(): void {
    this.#chunks = [];
    this.#reservation.release();
  }
}

export type BodyResult =
  | { ok: true; body: HeldBody; fields: BodyFields }
  | { ok: false; reason: 'too-large' | 'aborted' | 'busy' }
  | { ok: false; reason: 'invalid'; message: string };

/** The body of `req` with its routing fields, or why not. */
export async function readBody(
  req: IncomingMessage,
  {
    maxBytes,
    budget,
    waitMs,
    signal,
  }: {
    maxBytes: number;
    budget: BodyBudget;
    /** How long the body may wait for room in the budget; then 'busy'. */
    waitMs: number;
    /** Made on demand: aborts when the client goes away while the body waits. */
    signal: () => AbortSignal;
  },
): Promise<BodyResult> {
  const declared = Number(req.headers['content-length']);
  const known = req.headers['content-length'] !== undefined && Number.isFinite(declared);
  if (known && declared > maxBytes) return { ok: false, reason: 'too-large' };
  // Without a length, the most it may grow to is held until it has arrived.
  const need = known ? declared : maxBytes;
  const reservation = budget.tryReserve(need) ?? (await budget.reserve(need, waitMs, signal()));
  if (reservation === null) return signal().aborted ? { ok: false, reason: 'aborted' } : dropBody(req, maxBytes);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const scanner = new BodyScanner();
    let size = 0;
    const finish = (result: BodyResult) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onClose);
      if (!result.ok) reservation.release();
      resolve(result);
    };
    // The first reason the bytes cannot be a JSON object; the rest is then read and dropped.
    let invalid: string | null = null;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.pause();
        finish({ ok: false, reason: 'too-large' });
        return;
      }
      if (invalid !== null) return;
      invalid = scanner.push(chunk);
      if (invalid === null) chunks.push(chunk);
      else {
        // Answered once the body has arrived (an answer before that would make Node close the
        // connection, and the client could see a reset instead of it); nothing more is kept.
        chunks.length = 0;
        reservation.release();
      }
    };
    const onEnd = () => {
      invalid ??= scanner.end();
      if (invalid !== null) return finish({ ok: false, reason: 'invalid', message: invalid });
      reservation.shrink(size);
      finish({ ok: true, body: new HeldBody(chunks, size, reservation), fields: scanner.fields });
    };
    const onAbort = () => finish({ ok: false, reason: 'aborted' });
    const onClose = () => {
      if (!req.complete) onAbort();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('close', onClose);
  });
}

// No room: the body is read and dropped, and 'busy' answered once it has arrived
// (answered earlier, Node would close the connection under the client's upload).
function dropBody(req: IncomingMessage, maxBytes: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        req.pause();
        resolve({ ok: false, reason: 'too-large' });
      }
    });
    req.once('end', () => resolve({ ok: false, reason: 'busy' }));
    req.once('close', () => resolve({ ok: false, reason: 'aborted' }));
    req.resume();
  });
}
