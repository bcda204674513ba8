// max_concurrent and max_queue, per instance: at most `limit` requests go to
// an instance at once, the next ones wait their turn in order, and beyond
// `maxQueue` waiting a request is refused (429) instead of piling up. Without
// a limit (not known yet) a request passes and costs nothing.

/** Returned by acquire: call it once, when the request is done with the instance. */
export type SlotRelease = () => void;

const FREE: SlotRelease = () => {};

interface Entry {
  active: number;
  queue: Array<() => void>;
}

/** The request slots of every instance. */
export class RequestSlots {
  readonly #entries = new Map<string, Entry>();

  /**
   * A slot for a request to `name`: at once, after a wait, or 'full' when the queue is full (or 'aborted').
   * `signal` is asked for only by a request that has to wait (the fast path pays for no abort signal).
   */
  acquire(name: string, limit: number | null, maxQueue: number, signal: () => AbortSignal): SlotRelease | Promise<SlotRelease | 'full' | 'aborted'> {
    if (limit === null) return FREE;
    const entry = this.#entry(name);
    if (entry.active < limit && entry.queue.length === 0) {
      entry.active++;
      return this.#releaser(name, entry, limit);
    }
    if (entry.queue.length >= maxQueue) return Promise.resolve('full');
    const aborts = signal();
    return new Promise((resolve) => {
      const wake = () => {
        aborts.removeEventListener('abort', onAbort);
        entry.active++;
        resolve(this.#releaser(name, entry, limit));
      };
      const onAbort = () => {
        const at = entry.queue.indexOf(wake);
        if (at >= 0) entry.queue.splice(at, 1);
        resolve('aborted');
      };
      entry.queue.push(wake);
      aborts.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Requests waiting for a slot of `name`. */
  waiting(name: string): number {
    return this.#entries.get(name)?.queue.length ?? 0;
  }

  #releaser(name: string, entry: Entry, limit: number): SlotRelease {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      entry.active--;
      while (entry.active < limit && entry.queue.length > 0) entry.queue.shift()!();
      if (entry.active === 0 && entry.queue.length === 0) this.#entries.delete(name);
    };
  }

  #entry(name: string): Entry {
    let entry = this.#entries.get(name);
    if (!entry) {
      entry = { active: 0, queue: [] };
      this.#entries.set(name, entry);
    }
    return entry;
  }
}
