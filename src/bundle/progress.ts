// Progress of the long steps (hashing, copying, extracting): a bar redrawn in
// place on a TTY (bytes done / total, rate, time left); otherwise (boot logs,
// docker logs) one plain line every few seconds, and nothing for steps that
// finish sooner.
import { formatBytes } from './space-budget.ts';

/** One step being measured. */
export interface ProgressTask {
  update(done: number): void;
  finish(): void;
}

/** Starts measured steps. */
export interface Progress {
  start(label: string, total: number): ProgressTask;
}

export interface ProgressOptions {
  write: (text: string) => void;
  tty: boolean;
  now?: () => number;
  /** Plain lines: at most one per this many ms. */
  lineIntervalMs?: number;
  /** TTY bar: redrawn at most this often. */
  barIntervalMs?: number;
  barWidth?: number;
}

/** A Progress that prints nothing (tests, library callers). */
export const silentProgress: Progress = { start: () => ({ update() {}, finish() {} }) };

const LINE_INTERVAL_MS = 5000;
const BAR_INTERVAL_MS = 100;

/** Seconds as "m:ss". */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-:--';
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** The TTY bar: `extracting [#####.....] 120.0 MiB / 500.0 MiB  40.0 MiB/s  0:09 left`. */
export function formatBar({ label, done, total, elapsedMs, width = 24 }: { label: string; done: number; total: number; elapsedMs: number; width?: number }): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * width);
  const rate = elapsedMs > 0 ? (done / elapsedMs) * 1000 : 0;
  const left = rate > 0 ? (total - done) / rate : NaN;
  return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${formatBytes(done)} / ${formatBytes(total)}  ${formatBytes(rate)}/s  ${formatEta(left)} left`;
}

/** The plain line: `extracting: 120.0 MiB of 500.0 MiB (24%), 40.0 MiB/s, about 9 s left`. */
export function formatLine({ label, done, total, elapsedMs }: { label: string; done: number; total: number; elapsedMs: number }): string {
  const percent = total > 0 ? Math.floor((Math.min(done, total) / total) * 100) : 100;
  const rate = elapsedMs > 0 ? (done / elapsedMs) * 1000 : 0;
  const left = rate > 0 ? Math.ceil((total - done) / rate) : NaN;
  const eta = Number.isFinite(left) ? `, about ${left} s left` : '';
  return `${label}: ${formatBytes(done)} of ${formatBytes(total)} (${percent}%), ${formatBytes(rate)}/s${eta}`;
}

/** Progress on a stream: a bar on a TTY, else periodic lines. */
export function makeProgress({ write, tty, now = Date.now, lineIntervalMs = LINE_INTERVAL_MS, barIntervalMs = BAR_INTERVAL_MS, barWidth }: ProgressOptions): Progress {
  return {
    start(label, total) {
      const startedAt = now();
      let lastShown = startedAt;
      let done = 0;
      let drawn = false;
      const show = (): void => {
        const elapsedMs = now() - startedAt;
        if (tty) write(`\r${formatBar({ label, done, total, elapsedMs, width: barWidth })}\x1b[K`);
        else write(`install-pkg: ${formatLine({ label, done, total, elapsedMs })}\n`);
        drawn = true;
      };
      return {
        update(value) {
          done = value;
          const t = now();
          if (t - lastShown < (tty ? barIntervalMs : lineIntervalMs)) return;
          lastShown = t;
          show();
        },
        finish() {
          if (!tty || !drawn) return;
          done = total;
          show();
          write('\n');
        },
      };
    },
  };
}
