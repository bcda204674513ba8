// Which headers cross the gateway. End-to-end headers (anthropic-version,
// anthropic-beta, x-claude-code-*, content-type, accept, anything custom) go
// through untouched; hop-by-hop headers (RFC 9110 §7.6.1, plus any the
// Connection header names) stop here, and so do the client's credentials,
// which are the gateway's, not the instance's.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Headers that describe one connection, never forwarded. */
const HOP_BY_HOP = Object.freeze(
  new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']),
);

/** Request headers the gateway sets itself or must not pass on. */
const REQUEST_DROPPED = new Set([
  'host',
  // The body is forwarded as buffered bytes with our own content-length.
  'content-length',
  // Answered by the gateway's server already.
  'expect',
  // Responses pass through as the instance sends them: no compression negotiated for the client.
  'accept-encoding',
  // The gateway's credentials; the instance gets its own key, if it has one.
  'authorization',
  'x-api-key',
]);

const NO_TOKENS: ReadonlySet<string> = new Set();

// Header names listed in Connection (`Connection: close, x-foo`) are hop-by-hop too.
function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  // The usual values name no other header: no allocation on every request.
  if (value === undefined || value === 'keep-alive' || value === 'close') return NO_TOKENS;
  const tokens = new Set<string>();
  for (const part of [value ?? ''].flat().join(',').split(',')) {
    const token = part.trim().toLowerCase();
    if (token !== '') tokens.add(token);
  }
  return tokens;
}

/** The headers to send upstream for a client request whose body is `contentLength` bytes. */
export function makeUpstreamHeaders({
  headers,
  contentLength,
  apiKey,
}: {
  headers: IncomingHttpHeaders;
  contentLength: number;
  /** The instance's own `--api-key`, sent as a Bearer token; null: none. */
  apiKey: string | null;
}): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || REQUEST_DROPPED.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  out['content-length'] = String(contentLength);
  if (apiKey !== null) out.authorization = `Bearer ${apiKey}`;
  return out;
}

/** The instance's response headers as the client gets them: without hop-by-hop ones. */
export function makeClientHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  if (isEventStream(headers['content-type'])) {
    // Proxies between us and the client must not buffer SSE either.
    out['cache-control'] ??= 'no-cache';
    out['x-accel-buffering'] = 'no';
  }
  return out;
}

/** Is this content type Server-Sent Events? */
export function isEventStream(contentType: string | string[] | undefined): boolean {
  const value = Array.isArray(contentType) ? contentType[0] : contentType;
  return value !== undefined && value.toLowerCase().startsWith('text/event-stream');
}
