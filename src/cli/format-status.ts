// `supervisor status` as a table for people.
import type { InstanceStatus } from '../supervise/instance.ts';

const HEADERS = ['NAME', 'STATE', 'PID', 'UPTIME', 'RESTARTS', 'REQS', 'LAST EXIT', 'PORT', 'GPUS', 'LOG'];

/** A status row as the daemon sends it: the instance, plus the gateway's request counters. */
export type StatusRow = InstanceStatus & { inflight?: number | null; requests?: number | null };

// In-flight/total requests through the gateway; `-` while it has never run.
function formatRequests(row: StatusRow): string {
  if (row.requests === undefined || row.requests === null) return '-';
  return `${row.inflight ?? 0}/${row.requests}`;
}

/** 3725 → `1h2m`. */
function formatDuration(seconds: number | null): string {
  if (seconds === null) return '-';
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d${Math.floor((seconds % 86400) / 3600)}h`;
}

function formatLastExit(status: InstanceStatus): string {
  const exit = status.last_exit;
  if (!exit) return '-';
  const how = exit.signal ? exit.signal : exit.code !== null ? `code ${exit.code}` : 'not started';
  let text = `${how}: ${exit.reason}`;
  if (status.next_restart_at) text += ` (next try ${status.next_restart_at.slice(11, 19)})`;
  return text.length > 90 ? `${text.slice(0, 87)}...` : text;
}

/** Aligned columns, one row per instance. */
export function formatStatusTable(rows: readonly StatusRow[]): string {
  if (rows.length === 0) return 'no instances configured\n';
  const cells = rows.map((s) => [
    s.name,
    s.state,
    s.pid === null ? '-' : String(s.pid),
    formatDuration(s.uptime_s),
    String(s.restarts),
    formatRequests(s),
    formatLastExit(s),
    String(s.port),
    s.gpu_ids ?? 'all',
    s.log_file,
  ]);
  const widths = HEADERS.map((h, col) => Math.max(h.length, ...cells.map((row) => row[col].length)));
  const line = (row: string[]) => row.map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col]))).join('  ');
  const notes = rows.filter((s) => IN_PASSING.includes(s.state) && s.state_reason).map((s) => `${s.name} ${s.state}: ${s.state_reason}`);
  return `${[line(HEADERS), ...cells.map(line), ...notes].join('\n')}\n`;
}

/** States whose reason is not in the table (what it waits for, why it is being stopped): said below it. */
const IN_PASSING: readonly string[] = ['waiting', 'stopping', 'restarting', 'failing'];
