// Every error the gateway itself answers, in the shape the client's SDK
// parses: Anthropic's envelope on /v1/messages*, OpenAI's everywhere else.
// Each carries `src: "gateway"` so nobody mistakes it for llama-server's.
// Never 529 / overloaded_error: Claude Code treats those as a reason to give up.
import type { ServerResponse } from 'node:http';

/** Which SDK reads the error. */
export type ErrorFlavor = 'anthropic' | 'openai';

/** The statuses the gateway produces, with the Anthropic and OpenAI type names for each. */
const ERROR_TYPES = {
  400: { anthropic: 'invalid_request_error', openai: 'invalid_request_error' },
  401: { anthropic: 'authentication_error', openai: 'authentication_error' },
  404: { anthropic: 'not_found_error', openai: 'not_found_error' },
  405: { anthropic: 'invalid_request_error', openai: 'invalid_request_error' },
  413: { anthropic: 'request_too_large', openai: 'invalid_request_error' },
  429: { anthropic: 'rate_limit_error', openai: 'rate_limit_error' },
  500: { anthropic: 'api_error', openai: 'server_error' },
  502: { anthropic: 'api_error', openai: 'server_error' },
  503: { anthropic: 'api_error', openai: 'unavailable_error' },
} as const;

export type GatewayErrorStatus = keyof typeof ERROR_TYPES;

/** The marker in every gateway-made error body. */
const ERROR_SOURCE = 'gateway';

/** Anthropic errors on the Messages API, OpenAI errors on every other path. */
export function getErrorFlavor(pathname: string): ErrorFlavor {
  return pathname === '/v1/messages' || pathname.startsWith('/v1/messages/') ? 'anthropic' : 'openai';
}

/** The JSON body of a gateway error. */
export function makeErrorBody({ flavor, status, message }: { flavor: ErrorFlavor; status: GatewayErrorStatus; message: string }): object {
  const type = ERROR_TYPES[status][flavor];
  if (flavor === 'anthropic') return { type: 'error', error: { type, message, src: ERROR_SOURCE } };
  return { error: { message, type, code: status, src: ERROR_SOURCE } };
}

/** The SSE event that ends a stream the instance broke off after it had started. */
export function makeStreamErrorEvent({ flavor, message }: { flavor: ErrorFlavor; message: string }): string {
  const body = JSON.stringify(makeErrorBody({ flavor, status: 502, message }));
  // The Anthropic SDK throws on `event: error`; the OpenAI SDK on a data line with an `error` member.
  return flavor === 'anthropic' ? `event: error\ndata: ${body}\n\n` : `data: ${body}\n\n`;
}

/** Answers with a gateway error (no-op when the response has started or the client is gone). */
export function sendError({
  res,
  flavor,
  status,
  message,
  headers = {},
  head = false,
}: {
  res: ServerResponse;
  flavor: ErrorFlavor;
  status: GatewayErrorStatus;
  message: string;
  headers?: Record<string, string>;
  /** A HEAD request: headers only. */
  head?: boolean;
}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(makeErrorBody({ flavor, status, message }));
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(head ? undefined : text);
}
