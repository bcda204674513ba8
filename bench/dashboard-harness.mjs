// Shared by the dashboard benchmarks (not a benchmark itself): Debian's Chromium
// through playwright-core, and "pages" as the daemon sees them: HTTP clients
// holding /ui/events (and, optionally, one instance's /ui/log) open and reading
// every byte, as an open tab does. Real tabs would add the browser's own CPU to
// a 2-core machine without changing what the daemon does.
import http from 'node:http';
import { findCommand, searchPath } from '../scripts/system-tools.mjs';

/** Chromium's path, or throws naming the package. */
export function findChromium() {
  const path = findCommand('chromium', searchPath());
  if (path === null) throw new Error('the dashboard benchmarks need chromium (apt-get install chromium; npm test installs it)');
  return path;
}

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: findChromium(), args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** One SSE stream on `path`, read to the end; calls onEvent(event, data) per message. Returns { close, bytes() }. */
export function openStream(port, path, { headers = {}, onEvent } = {}) {
  let bytes = 0;
  let buffer = '';
  const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      bytes += chunk.length;
      if (!onEvent) return;
      buffer += chunk;
      for (let cut = buffer.indexOf('\n\n'); cut >= 0; cut = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) onEvent(event, JSON.parse(data));
      }
    });
    res.on('error', () => undefined);
  });
  req.on('error', () => undefined);
  return { close: () => req.destroy(), bytes: () => bytes };
}

/** `n` pages: each holds /ui/events, and /ui/log of `logOf` when given. */
export function openPages(port, n, { logOf = null, headers = {} } = {}) {
  const streams = [];
  for (let i = 0; i < n; i++) {
    streams.push(openStream(port, '/ui/events', { headers }));
    if (logOf) streams.push(openStream(port, `/ui/log?name=${encodeURIComponent(logOf)}`, { headers }));
  }
  return { close: () => streams.forEach((s) => s.close()), bytes: () => streams.reduce((sum, s) => sum + s.bytes(), 0) };
}
