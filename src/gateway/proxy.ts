// Forwards one read request body to an instance and pipes the answer back as it
// arrives: no re-chunking, no parsing, so SSE events and `:` keep-alive pings
// reach the client at once. A client that goes away aborts the upstream
// request (llama-server then frees the slot); an instance that goes away
// mid-answer ends the client's stream with an error event (SSE) or a cut
// connection, never a silently truncated success.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { makeStreamErrorEvent, type ErrorFlavor } from './error-shapes.ts';
import { isEventStream, makeClientHeaders, makeUpstreamHeaders } from './headers.ts';
import type { HeldBody } from './read-body.ts';

/** Where a request goes. */
export interface ForwardTarget {
  name: string;
  host: string;
  port: number;
  /** The instance's own `--api-key`; null: none. */
  apiKey: string | null;
}

/** How a forward ended. */
export type ForwardOutcome =
  /** The instance's whole response reached the client (any status). */
  | { kind: 'completed'; status: number }
  /** The client went away first; the upstream request was aborted. */
  | { kind: 'client-closed'; status: number | null }
  /** No connection to the instance (nothing was sent to the client: the caller may wait and retry). */
  | { kind: 'refused'; error: NodeJS.ErrnoException }
  /** The connection failed before response headers (nothing was sent to the client). */
  | { kind: 'failed'; error: NodeJS.ErrnoException }
  /** The instance's response broke off after it had started; the client got an error event or a cut connection. */
  | { kind: 'broken'; status: number; error: string };

/** Connection errors that mean nothing reached the instance, so a retry cannot run the request twice. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/** A keep-alive agent for the instances: connections are reused across requests, never capped. */
export function makeUpstreamAgent(): http.Agent {
  return new http.Agent({ keepAlive: true, maxFreeSockets: 256, scheduling: 'lifo', noDelay: true } as http.AgentOptions);
}

/** llama-server listening on a wildcard address is reached on loopback. */
function getConnectHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '::1';
  return host.replace(/^\[|\]$/g, '');
}

/** Sends `body` to the target with the client's method, path and end-to-end headers, and relays the answer. */
export function forwardRequest({
  req,
  res,
  body,
  target,
  agent,
  flavor,
  oneShot = false,
}: {
  req: IncomingMessage;
  res: ServerResponse;
  /** Released as soon as the instance answers: a long stream does not hold its request body. */
  body: HeldBody;
  target: ForwardTarget;
  agent: http.Agent;
  flavor: ErrorFlavor;
  /**
   * Use a connection of its own, closed afterwards. For streamed requests: llama-server
   * closes the connection after a chunked response without saying so, and a pooled
   * socket would fail the next request on it.
   */
  oneShot?: boolean;
}): Promise<ForwardOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let upstream: http.ClientRequest | null = null;
    let response: IncomingMessage | null = null;
    const settle = (outcome: ForwardOutcome) => {
      if (settled) return;
      settled = true;
      res.off('close', onClientClose);
      resolve(outcome);
    };
    // The client's connection closed before its response was complete: stop the instance's work.
    const onClientClose = () => {
      if (res.writableFinished) return;
      upstream?.destroy();
      settle({ kind: 'client-closed', status: response?.statusCode ?? null });
    };
    res.on('close', onClientClose);

    const send = (retryStale: boolean) => {
      const headers = makeUpstreamHeaders({ headers: req.headers, contentLength: body.length, apiKey: target.apiKey });
      if (oneShot) headers.connection = 'close';
      const request = http.request({
        agent: oneShot ? false : agent,
        host: getConnectHost(target.host),
        port: target.port,
        method: req.method,
        path: req.url,
        headers,
        noDelay: true,
      } as http.RequestOptions);
      upstream = request;
      request.on('response', (upRes) => {
        // Answered: the body was taken, and no retry can need it.
        body.release();
        relayResponse(upRes);
      });
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (settled || response !== null) return;
        // A kept-alive connection the instance had just closed: the request never arrived, send it again once.
        if (retryStale && request.reusedSocket && error.code === 'ECONNRESET') return send(false);
        settle(NOT_CONNECTED.has(error.code ?? '') ? { kind: 'refused', error } : { kind: 'failed', error });
      });
      const { chunks } = body;
      for (let i = 0; i < chunks.length - 1; i++) request.write(chunks[i]);
      request.end(chunks.at(-1));
    };

    const relayResponse = (upRes: IncomingMessage) => {
      response = upRes;
      const status = upRes.statusCode ?? 502;
      if (res.destroyed) {
        upRes.destroy();
        return;
      }
      const sse = isEventStream(upRes.headers['content-type']);
      if (res.headersSent) {
        // A stream held for a load already sent its SSE headers: an error answer becomes an error event.
        if (status >= 400) return relayErrorAsEvent(upRes, status);
      } else {
        res.writeHead(status, makeClientHeaders(upRes.headers));
        // Streams (SSE, or chunked without a length) show their headers before the first event.
        if (sse || upRes.headers['content-length'] === undefined) res.flushHeaders();
      }
      upRes.pipe(res);
      upRes.on('error', () => {
        // Reported through 'close' below with complete === false.
      });
      upRes.on('close', () => {
        if (upRes.complete || settled) return;
        upRes.unpipe(res);
        const error = `instance "${target.name}" closed the connection in the middle of the response`;
        if (sse && !res.destroyed) res.end(makeStreamErrorEvent({ flavor, message: error }));
        else res.destroy();
        settle({ kind: 'broken', status, error });
      });
      res.once('finish', () => {
        if (upRes.complete) settle({ kind: 'completed', status });
      });
    };

    // Reads (a bounded start of) an error answer and ends the client's stream with it as an error event.
    const relayErrorAsEvent = (upRes: IncomingMessage, status: number) => {
      let text = '';
      upRes.setEncoding('utf8');
      upRes.on('data', (chunk: string) => {
        if (text.length < MAX_ERROR_TEXT) text += chunk.slice(0, MAX_ERROR_TEXT - text.length);
      });
      upRes.on('end', () => {
        if (!res.destroyed) res.end(makeStreamErrorEvent({ flavor, message: `instance "${target.name}" answered ${status}: ${text}` }));
        settle({ kind: 'completed', status });
      });
      upRes.on('error', () => settle({ kind: 'broken', status, error: `instance "${target.name}" broke off its error answer` }));
    };

    send(true);
  });
}

/** Of an error answer relayed as an event, this much text is kept. */
const MAX_ERROR_TEXT = 2000;
