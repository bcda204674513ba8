// Per-instance request accounting and the drain gate. A request enters only
// through an open gate and is counted until its response ends; drain closes
// the gate (new requests wait at it) and resolves once the counted ones are
// done or the deadline passes. The caller restarts the instance, then
// releases the gate.

/** `supervisor status` columns of one instance. */
export interface InstanceRequestStats {
  /** Requests being answered by the instance right now. */
  inflight: number;
  /** Requests forwarded to the instance since the daemon started. */
  requests: number;
  /** Requests held at its drain gate right now. */
  held: number;
  /** Requests waiting for a slot (max_concurrent) right now. */
  queued?: number;
}

/** What drain reports; `release()` opens the gate again (idempotent). */
export interface DrainHandle {
  /** true: nothing was in flight any more; false: the deadline passed first. */
  drained: boolean;
  /** Requests still in flight when drain resolved. */
  inflight: number;
  waitedMs: number;
  release(): void;
}

interface Entry {
  inflight: number;
  requests: number;
  /** Open drains; the gate is closed while this is above 0. */
  closedBy: number;
  /** Requests waiting for the gate to open. */
  gateWaiters: Set<() => void>;
  /** Drains waiting for inflight to reach 0. */
  idleWaiters: Set<() => void>;
}

/** Request counters and drain gates, one entry per instance name. */
export class InFlightTracker {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor({ now = () => performance.now() }: { now?: () => number } = {}) {
    this.#now = now;
  }

  #entry(name: string): Entry {
    let entry = this.#entries.get(name);
    if (!entry) {
      entry = { inflight: 0, requests: 0, closedBy: 0, gateWaiters: new Set(), idleWaiters: new Set() };
      this.#entries.set(name, entry);
    }
    return entry;
  }

  /** Is the gate of `name` open (no drain in progress)? */
  isOpen(name: string): boolean {
    return (this.#entries.get(name)?.closedBy ?? 0) === 0;
  }

  /** Resolves when the gate of `name` is open: at once, or when the drain is released; false if `signal` aborts first. */
  whenOpen(name: string, signal?: AbortSignal): Promise<boolean> {
    const entry = this.#entry(name);
    if (entry.closedBy === 0) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const open = () => {
        signal?.removeEventListener('abort', abort);
        resolve(true);
      };
      const abort = () => {
        entry.gateWaiters.delete(open);
        resolve(false);
      };
      entry.gateWaiters.add(open);
      signal?.addEventListener('abort', abort, { once: true });
    });
  }

  /** Counts one request as in flight; call the returned function once when its response has ended. Only with the gate open. */
  begin(name: string): () => void {
    const entry = this.#entry(name);
    entry.inflight++;
    entry.requests++;
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      entry.inflight--;
      if (entry.inflight === 0) for (const idle of [...entry.idleWaiters]) idle();
    };
  }

  /** Closes the gate of `name` and waits up to `timeoutMs` for its in-flight requests to finish. */
  async drain(name: string, timeoutMs: number): Promise<DrainHandle> {
    const entry = this.#entry(name);
    entry.closedBy++;
    const started = this.#now();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      entry.closedBy--;
      if (entry.closedBy === 0) for (const open of [...entry.gateWaiters]) open();
      entry.gateWaiters.clear();
    };
    const drained = entry.inflight === 0 || (await this.#waitIdle(entry, timeoutMs));
    return { drained, inflight: entry.inflight, waitedMs: Math.round(this.#now() - started), release };
  }

  #waitIdle(entry: Entry, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const idle = () => {
        clearTimeout(timer);
        entry.idleWaiters.delete(idle);
        resolve(true);
      };
      const timer = setTimeout(() => {
        entry.idleWaiters.delete(idle);
        resolve(false);
      }, timeoutMs);
      entry.idleWaiters.add(idle);
    });
  }

  /** The counters of `name` (zeros for an instance never seen). */
  stats(name: string): InstanceRequestStats {
    const entry = this.#entries.get(name);
    return { inflight: entry?.inflight ?? 0, requests: entry?.requests ?? 0, held: entry?.gateWaiters.size ?? 0 };
  }
}
