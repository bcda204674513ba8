// `supervisor status` as a table for people.
import type { LifecycleStatus } from '../lifecycle/controller.ts';
import type { InstanceStatus } from '../supervise/instance.ts';

const HEADERS = ['NAME', 'STATE', 'PID', 'UPTIME', 'RESTARTS', 'REQS', 'LAST EXIT', 'PORT', 'GPUS', 'LOG'];

/** A status row as the daemon sends it: the instance, plus the gateway's request counters. */
export type StatusRow = InstanceStatus & { inflight?: number | null; requests?: number | null; lifecycle?: LifecycleStatus | null };

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
  // Other engines than llama-server (and sshd) say so beside the name; an older daemon sends no engine.
  const cells = rows.map((s) => [
    s.engine === undefined || s.engine === 'llama-server' || s.engine === 'service' ? s.name : `${s.name} (${s.engine})`,
    s.state,
    s.pid === null ? '-' : String(s.pid),
    formatDuration(s.uptime_s),
    String(s.restarts),
    formatRequests(s),
    formatLastExit(s),
    String(s.port),
    formatGpus(s),
    s.log_file,
  ]);
  const widths = HEADERS.map((h, col) => Math.max(h.length, ...cells.map((row) => row[col].length)));
  const line = (row: string[]) => row.map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col]))).join('  ');
  const notes = rows.flatMap(formatNotes);
  return `${[line(HEADERS), ...cells.map(line), ...notes].join('\n')}\n`;
}

/** States whose reason is not in the table (what it waits for, why it is being stopped): said below it. */
const IN_PASSING: readonly string[] = ['waiting', 'stopping', 'restarting', 'failing'];

// The GPUs column: what it holds on each (`0:87982MiB`), `none (CPU)`, or the gpu_ids asked for.
function formatGpus(s: StatusRow): string {
  if (s.gpu_ids !== null && /^none$/i.test(s.gpu_ids)) return 'none (CPU)';
  const memory = s.gpu?.memory ?? [];
  if (memory.length > 0) return memory.map((m) => `${m.gpu}:${m.mib}MiB`).join(',');
  return s.gpu?.devices.join(',') || (s.gpu_ids ?? 'all');
}

// Lines below the table: why it waits or stops, how far a load is, what fit cut, a GPU that was slow to come back.
function formatNotes(s: StatusRow): string[] {
  const notes: string[] = [];
  if (IN_PASSING.includes(s.state) && s.state_reason) notes.push(`${s.name} ${s.state}: ${s.state_reason}`);
  if (s.load) notes.push(`${s.name} loading: ${s.load.percent}% (${s.load.phase})`);
  if (s.fit?.reduced) notes.push(`${s.name} fit: ${s.fit.message}`);
  if (s.gpu?.release?.warning) notes.push(`${s.name} GPU release: ${s.gpu.release.warning}`);
  const life = s.lifecycle;
  if (life && (life.on_demand || s.state === 'idle')) {
    const need = life.need_mib === null ? 'memory not known yet' : `needs ${life.need_mib} MiB (${life.need_source})`;
    const used = life.last_used ? `last used ${life.last_used.slice(11, 19)}` : 'not used yet';
    const unload = life.unload_at ? `, unloads at ${life.unload_at.slice(11, 19)} if unused` : '';
    notes.push(`${s.name} on demand: ${used}, ${need}${unload}`);
  }
  return notes;
}
