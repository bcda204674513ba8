// The dashboard page: one stream of the daemon's state (/ui/events), one of the
// chosen instance's log (/ui/log), and the actions (POST /ui/action). No
// framework: rows are keyed by instance and rebuilt only when their data
// changed, so a hundred instances cost a hundred small updates at most.
// fetch() streams instead of EventSource: EventSource cannot send the key.

type Row = Record<string, any>;
interface Snapshot { at: string; instances: Row[]; gpus: GpusView | null; boot: BootRow[]; timeline: Entry[] }
interface Update { at: string; order?: string[]; instances?: Row[]; removed?: string[]; gpus?: GpusView; boot?: BootRow[]; timeline?: Entry[] }
interface GpusView { present: boolean; error: string | null; at?: string | null; gpus: Gpu[] }
interface Gpu { index: number; name: string; total_mib: number | null; used_mib: number | null; free_mib: number | null; utilization: number | null; instances: Array<{ name: string; mib: number; source: string }>; other_mib: number | null }
interface BootRow { name: string; state: string; started_at: string; duration_ms: number | null; message: string }
interface Entry { at: string; instance: string; from: string; to: string; reason: string; pid: number | null }

const KEY_STORE = 'infer-dev-ui-key';
const MAX_LOG_LINES = 2000;
const MAX_TIMELINE = 200;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const tbody = $('instances').querySelector('tbody')!;
const rows = new Map<string, { data: Row; tr: HTMLTableRowElement; key: string; seenAt: number }>();
let order: string[] = [];
let apiKey = sessionStorage.getItem(KEY_STORE);
let filter = '';

const esc = (v: unknown) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const dash = (v: unknown) => (v === null || v === undefined || v === '' ? '-' : esc(v));

function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '-';
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}
const since = (iso: string | null | undefined) => (iso ? duration((Date.now() - Date.parse(iso)) / 1000) : '-');
const clock = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : '-');
const mib = (n: number | null | undefined) => (n === null || n === undefined ? '?' : n >= 10240 ? `${(n / 1024).toFixed(1)} GiB` : `${n} MiB`);

// One colour per instance for its GPU bar segments, by its place in the config (neighbours always differ).
const PALETTE = ['#2d6fd6', '#1f8f4e', '#c2571a', '#8d4fc4', '#0f8a8a', '#b8336a', '#6b7d1f', '#5a5fd6', '#a3761a', '#3f7f5f'];
function colour(name: string): string {
  const at = order.indexOf(name);
  return PALETTE[(at < 0 ? 0 : at) % PALETTE.length];
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return apiKey ? { ...extra, authorization: `Bearer ${apiKey}` } : extra;
}

function setConn(state: 'connecting' | 'live' | 'lost' | 'key', text: string): void {
  const el = $('conn');
  el.dataset.conn = state;
  el.textContent = text;
}

class KeyNeeded extends Error {}

// Reads an SSE response body, calling `on` per event; resolves when the stream ends.
async function readStream(url: string, on: (event: string, data: any) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(url, { headers: headers(), signal, cache: 'no-store' });
  if (res.status === 401) throw new KeyNeeded();
  if (!res.ok || !res.body) throw new Error(`${res.status} ${await res.text().catch(() => '')}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data) on(event, JSON.parse(data));
    }
  }
}

// Keeps a stream open: reconnects after 1 s, backing off to 5 s; asks for the key on a 401.
function keepOpen(url: () => string | null, on: (event: string, data: any) => void, status?: (up: boolean, why?: string) => void): { restart(): void } {
  let controller: AbortController | null = null;
  let delay = 1000;
  const open = async () => {
    const target = url();
    if (target === null) return;
    controller = new AbortController();
    const mine = controller;
    try {
      await readStream(target, (event, data) => {
        delay = 1000;
        status?.(true);
        on(event, data);
      }, mine.signal);
      if (mine.signal.aborted) return;
      status?.(false, 'stream ended');
    } catch (err) {
      if (mine.signal.aborted) return;
      if (err instanceof KeyNeeded) {
        askKey();
        return;
      }
      status?.(false, (err as Error).message);
    }
    setTimeout(() => mine === controller && void open(), delay);
    delay = Math.min(5000, delay * 2);
  };
  return {
    restart() {
      controller?.abort();
      delay = 1000;
      void open();
    },
  };
}

// ---- instances

function stateCell(r: Row): string {
  let html = `<span class="badge s-${esc(r.state)}">${esc(r.state)}</span> <span class="sub" data-since="${esc(r.state_since)}">${since(r.state_since)}</span>`;
  if (r.load) html += `<div class="progress" title="${esc(r.load.phase)} ${r.load.percent}%"><div style="width:${Number(r.load.percent) || 0}%"></div></div><div class="sub">${esc(r.load.phase)} ${esc(r.load.percent)}%</div>`;
  // A crash's reason is the last exit's, shown in its own column.
  if (r.state_reason && r.state !== 'ready' && r.state !== 'stopped' && !(r.last_exit && r.state_reason.includes(r.last_exit.reason))) html += `<div class="sub">${esc(r.state_reason)}</div>`;
  return html;
}

function lastExit(r: Row): string {
  const e = r.last_exit;
  if (!e) return '-';
  const how = e.signal ? e.signal : e.code !== null && e.code !== undefined ? `code ${e.code}` : 'not started';
  const next = r.next_restart_at ? `<div class="sub">next try ${clock(r.next_restart_at)}</div>` : '';
  return `<span class="${e.code === 0 ? '' : 'bad'}">${esc(how)}</span>: ${esc(e.reason)}${next}`;
}

function gpusCell(r: Row): string {
  if (r.gpu_ids !== null && /^none$/i.test(String(r.gpu_ids))) return 'none (CPU)';
  const memory: Array<{ gpu: number; mib: number }> = r.gpu?.memory ?? [];
  let html = memory.length > 0 ? memory.map((m) => `${m.gpu}: ${mib(m.mib)}`).join('<br>') : esc(r.gpu?.devices?.join(', ') || r.gpu_ids || 'all');
  if (r.gpu?.release?.warning) html += `<div class="sub warn">${esc(r.gpu.release.warning)}</div>`;
  return html;
}

function contextCell(r: Row): string {
  const c = r.context;
  if (!c) return '-';
  let html = `${dash(c.configured)} / ${dash(c.trained)} / ${dash(c.actual)}`;
  if (r.fit?.reduced) html += `<div class="sub warn" data-field="fit">⚠ ${esc(r.fit.message)}</div>`;
  return html;
}

function onDemandCell(r: Row): string {
  const l = r.lifecycle;
  if (!l || !l.on_demand) return '-';
  const phase = r.state === 'idle' ? 'idle' : r.state === 'ready' ? 'loaded' : r.state === 'starting' || r.state === 'waiting' ? 'loading' : r.state;
  const need = l.need_mib === null ? 'need not known yet' : `needs ${mib(l.need_mib)} (${esc(l.need_source)})`;
  const used = l.last_used ? `last use ${clock(l.last_used)}` : 'not used yet';
  const unload = l.unload_at ? `<div class="sub">unloads at ${clock(l.unload_at)} if unused</div>` : '';
  return `${esc(phase)}<div class="sub">${used}</div><div class="sub">${need}</div>${unload}`;
}

function actionsCell(r: Row): string {
  const s = r.state;
  const running = !['stopped', 'fatal', 'idle', 'backoff'].includes(s);
  const buttons: string[] = [];
  const add = (action: string, label = action) => buttons.push(`<button data-action="${action}" data-name="${esc(r.name)}">${label}</button>`);
  if (r.lifecycle?.on_demand) {
    if (s === 'idle' || s === 'fatal' || s === 'stopped') add('load');
    if (running) add('unload');
  } else if (!running || s === 'backoff') add('start');
  if (running || s === 'backoff') add('stop');
  if (running) add('restart');
  buttons.push(`<button data-log="${esc(r.name)}" title="show its log">log</button>`);
  return buttons.join('');
}

function uptime(entry: { data: Row; seenAt: number }): string {
  const u = entry.data.uptime_s;
  return u === null || u === undefined ? '-' : duration(u + (Date.now() - entry.seenAt) / 1000);
}

function renderRow(entry: { data: Row; tr: HTMLTableRowElement; seenAt: number }): void {
  const r = entry.data;
  const requests = r.requests === null || r.requests === undefined ? '-' : `${r.inflight ?? 0} / ${r.requests}`;
  entry.tr.dataset.instance = r.name;
  entry.tr.dataset.state = r.state;
  entry.tr.innerHTML =
    `<td><span class="name">${esc(r.name)}</span>${r.engine ? `<div class="sub">${esc(r.engine)}</div>` : ''}</td>` +
    `<td class="wrap" data-field="state">${stateCell(r)}</td>` +
    `<td class="num" data-field="pid">${dash(r.pid)}</td>` +
    `<td class="num" data-field="uptime">${uptime(entry)}</td>` +
    `<td class="num" data-field="restarts">${esc(r.restarts)}</td>` +
    `<td class="num" data-field="requests">${requests}</td>` +
    `<td class="wrap" data-field="last-exit">${lastExit(r)}</td>` +
    `<td class="num">${esc(r.port)}</td>` +
    `<td>${gpusCell(r)}</td>` +
    `<td data-field="context">${contextCell(r)}</td>` +
    `<td data-field="on-demand">${onDemandCell(r)}</td>` +
    `<td class="actions">${actionsCell(r)}</td>`;
  applyFilter(entry.tr, r);
}

function applyFilter(tr: HTMLTableRowElement, r: Row): void {
  tr.classList.toggle('hidden', filter !== '' && !`${r.name} ${r.state}`.toLowerCase().includes(filter));
}

function setRows(list: Row[], newOrder: string[] | null): void {
  const now = Date.now();
  for (const data of list) {
    const key = JSON.stringify(data);
    let entry = rows.get(data.name);
    if (!entry) {
      entry = { data, tr: document.createElement('tr'), key: '', seenAt: now };
      rows.set(data.name, entry);
    }
    entry.seenAt = now;
    if (entry.key === key) continue;
    entry.data = data;
    entry.key = key;
    renderRow(entry);
  }
  if (newOrder) {
    order = newOrder;
    tbody.replaceChildren(...order.map((name) => rows.get(name)?.tr).filter((tr): tr is HTMLTableRowElement => tr !== undefined));
    $('instance-count').textContent = `(${order.length})`;
    if (order.length === 0) tbody.innerHTML = '<tr><td colspan="12" class="empty">no instances configured</td></tr>';
    refreshLogChoices();
  }
}

function removeRows(names: string[]): void {
  for (const name of names) {
    rows.get(name)?.tr.remove();
    rows.delete(name);
  }
}

// Durations move on between messages: a once-a-second touch of the time cells only.
setInterval(() => {
  for (const entry of rows.values()) {
    const sinceEl = entry.tr.querySelector<HTMLElement>('[data-since]');
    if (sinceEl) sinceEl.textContent = since(sinceEl.dataset.since);
    const up = entry.tr.querySelector<HTMLElement>('[data-field="uptime"]');
    if (up) up.textContent = uptime(entry);
  }
}, 1000);

$('filter').addEventListener('input', (e) => {
  filter = (e.target as HTMLInputElement).value.trim().toLowerCase();
  for (const entry of rows.values()) applyFilter(entry.tr, entry.data);
});

// ---- GPUs and boot

function renderGpus(view: GpusView | null): void {
  const box = $('gpus');
  $('gpu-at').textContent = view?.at ? `nvidia-smi at ${clock(view.at)}` : '';
  if (!view || view.gpus.length === 0) {
    box.innerHTML = `<div class="empty" data-field="no-gpus">${view?.error ? `no GPUs: ${esc(view.error)}` : 'No GPUs on this machine (instances run on the CPU).'}</div>`;
    return;
  }
  box.innerHTML = view.gpus
    .map((g) => {
      const total = g.total_mib ?? 0;
      const pct = (n: number) => (total > 0 ? (100 * n) / total : 0);
      // A label only where it fits; the legend and the tooltip always say it.
      const label = (share: number, text: string) => (share >= 6 ? text : '');
      const parts = g.instances.map((i) => `<span style="width:${pct(i.mib)}%;background:${colour(i.name)}" title="${esc(i.name)}: ${i.mib} MiB (${esc(i.source)})">${label(pct(i.mib), `${esc(i.name)} ${mib(i.mib)}`)}</span>`);
      if (g.other_mib) parts.push(`<span class="other" style="width:${pct(g.other_mib)}%" title="other: ${g.other_mib} MiB no instance accounts for">${label(pct(g.other_mib), 'other')}</span>`);
      const used = g.used_mib === null || g.total_mib === null ? 'memory unknown' : `${mib(g.used_mib)} / ${mib(g.total_mib)} used`;
      const util = g.utilization === null ? '' : ` · ${g.utilization}% util`;
      const legend = [...g.instances.map((i) => `<span><i style="background:${colour(i.name)}"></i>${esc(i.name)} ${i.mib} MiB</span>`), g.other_mib ? `<span><i style="background:#9aa3ad"></i>other ${g.other_mib} MiB</span>` : '', `<span><i style="background:#eef0f3;border:1px solid #ccc"></i>free ${g.free_mib ?? '?'} MiB</span>`].join('');
      return `<div class="gpu" data-gpu="${g.index}"><div class="gpu-label"><span><b>GPU ${g.index}</b> ${esc(g.name)}</span><span>${used}${util}</span></div><div class="bar">${parts.join('')}</div><div class="legend">${legend}</div></div>`;
    })
    .join('');
}

function renderBoot(steps: BootRow[]): void {
  $('boot').innerHTML =
    steps.length === 0
      ? '<div class="empty">No boot steps: this daemon was not started as the container\'s PID 1.</div>'
      : `<table><thead><tr><th>Step</th><th>Result</th><th>Duration</th><th>Message</th></tr></thead><tbody>${steps
          .map((s) => `<tr><td>${esc(s.name)}</td><td class="${s.state === 'failed' ? 'bad' : ''}">${esc(s.state)}</td><td class="num">${s.duration_ms === null ? 'running' : `${s.duration_ms} ms`}</td><td class="wrap">${esc(s.message)}</td></tr>`)
          .join('')}</tbody></table>`;
}

// ---- timeline

function addTimeline(entries: Entry[], reset = false): void {
  const list = $('timeline');
  if (reset) list.replaceChildren();
  for (const e of entries) {
    const li = document.createElement('li');
    li.innerHTML = `<time>${clock(e.at)}</time><b>${esc(e.instance)}</b> ${esc(e.from)} → <span class="badge s-${esc(e.to)}">${esc(e.to)}</span> <span class="sub">${esc(e.reason)}</span>`;
    list.prepend(li);
  }
  while (list.children.length > MAX_TIMELINE) list.lastElementChild!.remove();
}

// ---- log tail

const logPre = $<HTMLPreElement>('log-lines');
const logSelect = $<HTMLSelectElement>('log-name');
let logName: string | null = null;

function refreshLogChoices(): void {
  const current = logSelect.value || logName;
  logSelect.replaceChildren(...order.map((name) => new Option(name, name)));
  if (current && order.includes(current)) logSelect.value = current;
  if (logName === null && order.length > 0) showLog(order[0]);
}

function appendLog(lines: string[]): void {
  const follow = $<HTMLInputElement>('log-follow').checked;
  logPre.append(document.createTextNode(`${lines.join('\n')}\n`));
  // Bounded: past MAX_LOG_LINES, the oldest text nodes go (each holds one message's lines).
  let count = 0;
  for (let node = logPre.lastChild; node; node = node.previousSibling) count += (node.textContent ?? '').split('\n').length - 1;
  while (count > MAX_LOG_LINES && logPre.firstChild) {
    count -= (logPre.firstChild.textContent ?? '').split('\n').length - 1;
    logPre.firstChild.remove();
  }
  if (follow) logPre.scrollTop = logPre.scrollHeight;
}

const logStream = keepOpen(
  () => (logName === null ? null : `/ui/log?name=${encodeURIComponent(logName)}`),
  (event, data) => {
    if (event === 'file') {
      logPre.replaceChildren();
      $('log-file').textContent = data;
    } else if (event === 'lines') appendLog(data);
    else if (event === 'error') appendLog([`[log: ${data}]`]);
  },
);

function showLog(name: string): void {
  logName = name;
  logSelect.value = name;
  logPre.replaceChildren();
  logStream.restart();
}
logSelect.addEventListener('change', () => showLog(logSelect.value));

// ---- actions

function say(text: string, ok: boolean): void {
  const el = $('answer');
  el.textContent = text;
  el.title = text;
  el.className = ok ? 'ok' : 'bad';
}

async function act(action: string, name: string, button: HTMLButtonElement): Promise<void> {
  if (!confirm(`${action} ${name}?`)) return;
  button.disabled = true;
  say(`${action} ${name}…`, true);
  try {
    const res = await fetch('/ui/action', { method: 'POST', headers: headers({ 'content-type': 'application/json', 'x-supervisor-ui': '1' }), body: JSON.stringify({ action, name }) });
    if (res.status === 401) return askKey();
    const answer = await res.json();
    if (answer.ok) {
      const states = Array.isArray(answer.result) ? answer.result.map((r: Row) => `${r.name} ${r.state}`).join(', ') : 'done';
      say(`${action} ${name}: ${states}`, true);
    } else say(`${action} ${name} refused: ${answer.error}`, false);
  } catch (err) {
    say(`${action} ${name} failed: ${(err as Error).message}`, false);
  } finally {
    button.disabled = false;
  }
}

tbody.addEventListener('click', (e) => {
  const button = (e.target as HTMLElement).closest('button');
  if (!button) return;
  if (button.dataset.log) return showLog(button.dataset.log);
  if (button.dataset.action && button.dataset.name) void act(button.dataset.action, button.dataset.name, button);
});

// ---- key

function askKey(): void {
  setConn('key', 'API key needed');
  $('key-form').hidden = false;
  $('key').focus();
}
$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  apiKey = ($('key') as HTMLInputElement).value.trim() || null;
  if (apiKey) sessionStorage.setItem(KEY_STORE, apiKey);
  $('key-form').hidden = true;
  events.restart();
  if (logName !== null) logStream.restart();
});

// ---- the state stream

const events = keepOpen(
  () => '/ui/events',
  (event, data) => {
    if (event === 'snapshot') {
      const s = data as Snapshot;
      removeRows([...rows.keys()].filter((name) => !s.instances.some((r) => r.name === name)));
      setRows(s.instances, s.instances.map((r) => r.name));
      renderGpus(s.gpus);
      renderBoot(s.boot);
      addTimeline(s.timeline, true);
    } else if (event === 'update') {
      const u = data as Update;
      if (u.removed) removeRows(u.removed);
      setRows(u.instances ?? [], u.order ?? (u.removed ? order.filter((n) => rows.has(n)) : null));
      if (u.gpus) renderGpus(u.gpus);
      if (u.boot) renderBoot(u.boot);
      if (u.timeline) addTimeline(u.timeline);
    }
    // For the benchmarks: when the first state was on screen.
    if (event === 'snapshot' && performance.getEntriesByName('dashboard-rendered').length === 0) performance.mark('dashboard-rendered');
  },
  (up, why) => setConn(up ? 'live' : 'lost', up ? 'live' : `disconnected (${why ?? ''}), retrying`),
);
events.restart();
