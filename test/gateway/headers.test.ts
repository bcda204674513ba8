import { describe, expect, it } from 'vitest';
import { isEventStream, makeClientHeaders, makeUpstreamHeaders } from '../../src/gateway/headers.ts';

describe('request headers to the instance', () => {
  const incoming = {
    host: 'gw:11899',
    connection: 'keep-alive, x-hop',
    'keep-alive': 'timeout=5',
    'x-hop': 'dropped because Connection names it',
    'proxy-authorization': 'Basic x',
    te: 'trailers',
    'transfer-encoding': 'chunked',
    upgrade: 'h2c',
    'content-length': '999',
    expect: '100-continue',
    'accept-encoding': 'gzip',
    authorization: 'Bearer client-key',
    'x-api-key': 'client-key',
    'content-type': 'application/json',
    accept: 'text/event-stream',
    'anthropic-version': '2023-06-01',
    'anthropic-beta': 'a,b',
    'x-claude-code-session-id': 's1',
    'x-custom': 'kept',
  };

  it('keeps end-to-end headers, drops hop-by-hop ones and client credentials, sets the length', () => {
    expect(makeUpstreamHeaders({ headers: incoming, contentLength: 12, apiKey: null })).toEqual({
      'content-type': 'application/json',
      accept: 'text/event-stream',
      'anthropic-version': '2023-06-01',
      'anthropic-beta': 'a,b',
      'x-claude-code-session-id': 's1',
      'x-custom': 'kept',
      'content-length': '12',
    });
  });

  it("sends the instance's own key as a Bearer token", () => {
    const out = makeUpstreamHeaders({ headers: incoming, contentLength: 0, apiKey: 'instance-key' });
    expect(out.authorization).toBe('Bearer instance-key');
    expect(out['x-api-key']).toBeUndefined();
  });
});

describe('response headers to the client', () => {
  it('drops hop-by-hop headers, keeps the rest', () => {
    expect(
      makeClientHeaders({
        'content-type': 'application/json; charset=utf-8',
        'content-length': '10',
        'keep-alive': 'timeout=5, max=100',
        connection: 'keep-alive',
        'transfer-encoding': 'chunked',
        server: 'llama.cpp',
        'access-control-allow-origin': '',
      }),
    ).toEqual({ 'content-type': 'application/json; charset=utf-8', 'content-length': '10', server: 'llama.cpp', 'access-control-allow-origin': '' });
  });

  it('SSE: no-cache and no proxy buffering', () => {
    expect(makeClientHeaders({ 'content-type': 'text/event-stream' })).toEqual({
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
    expect(isEventStream('Text/Event-Stream; charset=utf-8')).toBe(true);
    expect(isEventStream('application/json')).toBe(false);
    expect(isEventStream(undefined)).toBe(false);
  });
});
