// The memory all request bodies may hold at once, together. A body is read
// only once its size is reserved (its content-length, or max_body_bytes when
// it has none, cut to its real size at the end), so every body being read can
// be read to the end and no two can wait on each other. A body that does not
// fit waits its turn, first come first served, until the deadline its caller
// gives, while the kernel holds its bytes (the request is not read meanwhile).

/** A part of the budget, held until release() (idempotent). */
export interface Reservation {
  readonly bytes: number;
  /** Gives back what is above `bytes` (a body without content-length turned out smaller). */
  shrink(bytes: number): void;
  release(): void;
}

interface Waiter {
  bytes: number;
  grant(reservation: Reservation): void;
}

/** Bytes reserved against a capacity, with a FIFO of waiters. */
export class BodyBudget {
  #capacity: number;
  #used = 0;
  readonly #waiters: Waiter[] = [];

  /** Called each time the last reservation is released, with the bytes released since the previous call. */
  readonly #onIdle: (releasedBytes: number) => void;
  #released = 0;

  constructor(capacity: number, { onIdle = () => undefined }: { onIdle?: (releasedBytes: number) => void } = {}) {
    this.#capacity = capacity;
    this.#onIdle = onIdle;
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.#used;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** Bodies waiting for room now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** A reloaded plan's capacity; waiters that fit now go ahead. */
  setCapacity(capacity: number): void {
    this.#capacity = capacity;
    this.#wake();
  }

  /** A reservation at once, or null when it does not fit now (or others wait before it). */
  tryReserve(bytes: number): Reservation | null {
    if (this.#waiters.length > 0 || !this.#fits(bytes)) return null;
    return this.#grant(bytes);
  }

  /** A reservation once `bytes` fit, or null when `timeoutMs` passes or `signal` aborts first. */
  reserve(bytes: number, timeoutMs: number, signal?: AbortSignal): Promise<Reservation | null> {
    const now = this.tryReserve(bytes);
    if (now !== null || timeoutMs <= 0 || signal?.aborted) return Promise.resolve(now);
    return new Promise((resolve) => {
      const leave = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abandon);
        const at = this.#waiters.indexOf(waiter);
        if (at >= 0) this.#waiters.splice(at, 1);
      };
      const abandon = () => {
        leave();
        resolve(null);
        // Those behind it may fit now.
        this.#wake();
      };
      const waiter: Waiter = {
        bytes,
        grant: (reservation) => {
          leave();
          resolve(reservation);
        },
      };
      const timer = setTimeout(abandon, timeoutMs);
      signal?.addEventListener('abort', abandon, { once: true });
      this.#waiters.push(waiter);
    });
  }

  // A body larger than the whole budget still goes alone, so it cannot wait forever.
  #fits(bytes: number): boolean {
    return this.#used + bytes <= this.#capacity || this.#used === 0;
  }

  #grant(bytes: number): Reservation {
    this.#used += bytes;
    let held = bytes;
    const reservation: Reservation = {
      get bytes() {
        return held;
      },
      shrink: (to) => {
        if (to >= held) return;
        this.#used -= held - to;
        held = to;
        this.#wake();
        if (this.#used === 0) {
          const released = this.#released;
          this.#released = 0;
          this.#onIdle(released);
        }
      },
      release: () => {
        this.#released += held;
        reservation.shrink(0);
      },
    };
    return reservation;
  }

  #wake(): void {
    while (this.#waiters.length > 0 && this.#fits(this.#waiters[0].bytes)) {
      const waiter = this.#waiters[0];
      waiter.grant(this.#grant(waiter.bytes));
    }
  }
}
