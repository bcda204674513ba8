// The gateway's URL space, as data: which paths it answers itself, which it
// forwards to an instance, and which need the API key. Matching uses the path
// only; the query string (`/v1/messages?beta=true`) goes upstream unchanged.

import type { UiRoute } from '../ui/http.ts';

/** Routes the gateway answers without an instance. */
export type LocalRoute = 'root' | 'hello' | 'telemetry' | 'health' | 'models' | 'metrics' | 'router-models' | 'router-load' | 'router-unload' | 'running';

export type RouteMatch =
  | { kind: 'local'; route: LocalRoute; auth: boolean }
  | { kind: 'proxy'; auth: true }
  | { kind: 'ui'; route: UiRoute; auth: boolean }
  | { kind: 'method-not-allowed'; allow: string }
  | { kind: 'not-found' };

/** POST paths forwarded to the instance chosen by the body's `model`. */
const PROXIED_PATHS: ReadonlySet<string> = new Set([
  '/v1/messages',
  '/v1/messages/count_tokens',
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/embeddings',
  '/v1/responses',
]);

/** Local routes by exact path: allowed methods, and whether the API key is needed. */
const LOCAL: Record<string, { route: LocalRoute; methods: readonly string[]; auth: boolean }> = {
  // Claude Code's startup probes carry no data and no key: answered to anyone.
  '/': { route: 'root', methods: ['GET', 'HEAD'], auth: false },
  '/api/hello': { route: 'hello', methods: ['GET', 'HEAD'], auth: false },
  // Docker's and the operator's health check.
  '/health': { route: 'health', methods: ['GET', 'HEAD'], auth: false },
  '/v1/models': { route: 'models', methods: ['GET'], auth: true },
  '/metrics': { route: 'metrics', methods: ['GET'], auth: true },
  // llama.cpp router mode's model API, and llama-swap's list of what runs.
  '/models': { route: 'router-models', methods: ['GET'], auth: true },
  '/models/load': { route: 'router-load', methods: ['POST'], auth: true },
  '/models/unload': { route: 'router-unload', methods: ['POST'], auth: true },
  '/running': { route: 'running', methods: ['GET'], auth: true },
};

/** The dashboard (src/ui/): the page asks for the key itself, so it is served to anyone; its data and actions need the key. */
const UI: Record<string, { route: UiRoute; methods: readonly string[]; auth: boolean }> = {
  '/ui': { route: 'ui-page', methods: ['GET', 'HEAD'], auth: false },
  '/ui/': { route: 'ui-page', methods: ['GET', 'HEAD'], auth: false },
  '/ui/events': { route: 'ui-events', methods: ['GET'], auth: true },
  '/ui/log': { route: 'ui-log', methods: ['GET'], auth: true },
  '/ui/action': { route: 'ui-action', methods: ['POST'], auth: true },
  // llama.cpp router mode's status stream, fed by the dashboard's state.
  '/models/sse': { route: 'models-sse', methods: ['GET'], auth: true },
};

/** Telemetry from older Claude Code versions (`/api/event_logging/batch`, `/v2/batch`): swallowed, never forwarded. */
const TELEMETRY_PREFIX = '/api/event_logging/';

/** Which route a method and path are. */
export function matchRoute(method: string, pathname: string): RouteMatch {
  const local = LOCAL[pathname];
  if (local) {
    if (local.methods.includes(method)) return { kind: 'local', route: local.route, auth: local.auth };
    return { kind: 'method-not-allowed', allow: local.methods.join(', ') };
  }
  const ui = UI[pathname];
  if (ui) {
    if (ui.methods.includes(method)) return { kind: 'ui', route: ui.route, auth: ui.auth };
    return { kind: 'method-not-allowed', allow: ui.methods.join(', ') };
  }
  if (pathname.startsWith(TELEMETRY_PREFIX)) {
    // No key needed: a sink that answers {} must never make an old CLI hang or retry.
    if (method === 'POST') return { kind: 'local', route: 'telemetry', auth: false };
    return { kind: 'method-not-allowed', allow: 'POST' };
  }
  if (PROXIED_PATHS.has(pathname)) {
    if (method === 'POST') return { kind: 'proxy', auth: true };
    return { kind: 'method-not-allowed', allow: 'POST' };
  }
  return { kind: 'not-found' };
}

/** The path of a request target, without its query string. */
export function getPathname(url: string | undefined): string {
  const raw = url ?? '/';
  const cut = raw.indexOf('?');
  return cut < 0 ? raw : raw.slice(0, cut);
}
