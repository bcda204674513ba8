// The dashboard's live state: what the control socket's status, gpus and
// boot-steps commands answer (one source of truth), rebuilt when an instance
// changes state and sent to every open page as a diff (only the rows that
// changed). Load progress and request counters have no event of their own:
// they are re-read on a timer, and only while a page is open.
import type { ControlHandler } from '../control/server.ts';
import type { Instance, TransitionEvent } from '../supervise/instance.ts';

/** A transition as the timeline shows it. */
export interface TimelineEntry {
  at: string;
  instance: string;
  from: string;
  to: string;
  reason: string;
  pid: number | null;
}

/** Everything a page starts from. */
export interface DashboardSnapshot {
  at: string;
  instances: Array<Record<string, unknown>>;
  gpus: unknown;
  boot: unknown[];
  timeline: TimelineEntry[];
}

/** What changed since the last message: rows replaced (in order, with their index), rows gone, the rest whole when changed. */
export interface DashboardUpdate {
  at: string;
  order?: string[];
  instances?: Array<Record<string, unknown>>;
  removed?: string[];
  gpus?: unknown;
  boot?: unknown[];
  timeline?: TimelineEntry[];
}

/** An open page. */
export interface DashboardClient {
  send(event: 'snapshot' | 'update', data: DashboardSnapshot | DashboardUpdate): void;
}

/** Transitions kept for the timeline. */
const TIMELINE_LENGTH = 200;
/** Changes that come together (a reload touching many instances) are sent as one message after this long. */
const COALESCE_MS = 10;
/** While an instance loads, its progress is re-read this often. */
const LOADING_REFRESH_MS = 250;
/** Request counters and GPU memory (no event of their own) are re-read this often while a page is open. */
const IDLE_REFRESH_MS = 2000;

// What a row is compared by: uptime grows every second, the page counts it on by itself.
const rowKey = (row: Record<string, unknown>) => JSON.stringify({ ...row, uptime_s: null });

export class Dashboard {
  readonly #control: ControlHandler;
  readonly #clients = new Set<DashboardClient>();
  readonly #joining = new Set<DashboardClient>();
  readonly #timeline: TimelineEntry[] = [];
  #pendingTimeline: TimelineEntry[] = [];
  #rows = new Map<string, { key: string; row: Record<string, unknown> }>();
  #order: string[] = [];
  #gpusKey = '';
  #gpus: unknown = null;
  #bootKey = '';
  #boot: unknown[] = [];
  #loading = false;
  #timer: NodeJS.Timeout | null = null;
  #refreshing: Promise<void> | null = null;
  #again = false;

  constructor({ control, watchTransitions }: { control: ControlHandler; watchTransitions(watcher: (instance: Instance, event: TransitionEvent) => void): void }) {
    this.#control = control;
    watchTransitions((_instance, event) => this.#noteTransition(event));
  }

  /** The transitions seen so far, oldest first. */
  get timeline(): readonly TimelineEntry[] {
    return this.#timeline;
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Adds a page: it gets the whole state at the next rebuild (now), then diffs. Returns its unsubscribe. */
  subscribe(client: DashboardClient): () => void {
    // A page joins at the end of a rebuild, after that rebuild's diff went to the others: it misses nothing, sees nothing twice.
    this.#joining.add(client);
    void this.#refresh().then(() => this.#schedule(this.#loading ? LOADING_REFRESH_MS : IDLE_REFRESH_MS));
    return () => {
      this.#joining.delete(client);
      this.#clients.delete(client);
      if (this.#clients.size === 0 && this.#joining.size === 0 && this.#timer) {
        clearTimeout(this.#timer);
        this.#timer = null;
      }
    };
  }

  #snapshot(): DashboardSnapshot {
    return { at: new Date().toISOString(), instances: this.#order.map((name) => this.#rows.get(name)!.row), gpus: this.#gpus, boot: this.#boot, timeline: [...this.#timeline] };
  }

  #noteTransition(event: TransitionEvent): void {
    const entry: TimelineEntry = { at: new Date().toISOString(), instance: event.instance, from: event.from, to: event.to, reason: event.reason, pid: event.pid };
    this.#timeline.push(entry);
    if (this.#timeline.length > TIMELINE_LENGTH) this.#timeline.shift();
    if (this.#clients.size === 0) return;
    this.#pendingTimeline.push(entry);
    this.#schedule(COALESCE_MS, true);
  }

  // One timer: a sooner reason replaces a later one.
  #scheduledAt = Infinity;
  #schedule(ms: number, sooner = false): void {
    // A page still joining counts: if its first rebuild failed, this one retries it.
    if (this.#clients.size === 0 && this.#joining.size === 0) return;
    const at = Date.now() + ms;
    if (this.#timer && (!sooner || at >= this.#scheduledAt)) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#scheduledAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#scheduledAt = Infinity;
      void this.#refresh().then(() => this.#schedule(this.#loading ? LOADING_REFRESH_MS : IDLE_REFRESH_MS));
    }, ms);
    this.#timer.unref();
  }

  // Rebuilds the state from the control commands and sends what changed; one at a time, a change meanwhile runs it again.
  #refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true;
      return this.#refreshing;
    }
    this.#refreshing = (async () => {
      do {
        this.#again = false;
        await this.#rebuild().catch(() => undefined);
      } while (this.#again);
      this.#refreshing = null;
    })();
    return this.#refreshing;
  }

  async #rebuild(): Promise<void> {
    const signal = new AbortController().signal;
    const [rows, gpus, boot] = (await Promise.all([
      this.#control('status', {}, { signal }),
      this.#control('gpus', {}, { signal }),
      this.#control('boot-steps', {}, { signal }),
    ])) as [Array<Record<string, unknown>>, unknown, unknown[]];
    const update: DashboardUpdate = { at: new Date().toISOString() };
    const order = rows.map((r) => String(r.name));
    const changed: Array<Record<string, unknown>> = [];
    const next = new Map<string, { key: string; row: Record<string, unknown> }>();
    for (const row of rows) {
      const key = rowKey(row);
      const name = String(row.name);
      if (this.#rows.get(name)?.key !== key) changed.push(row);
      next.set(name, { key, row });
    }
    const removed = this.#order.filter((name) => !next.has(name));
    if (order.join('\0') !== this.#order.join('\0')) update.order = order;
    if (changed.length > 0) update.instances = changed;
    if (removed.length > 0) update.removed = removed;
    // Percent and used memory move all the time; compare without the sample time.
    const gpusKey = JSON.stringify({ ...(gpus as object), at: null });
    if (gpusKey !== this.#gpusKey) update.gpus = gpus;
    const bootKey = JSON.stringify(boot);
    if (bootKey !== this.#bootKey) update.boot = boot;
    if (this.#pendingTimeline.length > 0) {
      update.timeline = this.#pendingTimeline;
      this.#pendingTimeline = [];
    }
    this.#rows = next;
    this.#order = order;
    this.#gpus = gpus;
    this.#gpusKey = gpusKey;
    this.#boot = boot;
    this.#bootKey = bootKey;
    this.#loading = rows.some((r) => r.state === 'starting' || r.state === 'waiting' || r.state === 'unloading');
    if (Object.keys(update).length > 1) for (const client of this.#clients) client.send('update', update);
    if (this.#joining.size === 0) return;
    const snapshot = this.#snapshot();
    for (const client of this.#joining) {
      client.send('snapshot', snapshot);
      this.#clients.add(client);
    }
    this.#joining.clear();
  }
}
