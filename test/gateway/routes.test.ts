import { describe, expect, it } from 'vitest';
import { getPathname, matchRoute } from '../../src/gateway/routes.ts';

describe('matchRoute', () => {
  it('local routes, their methods and which need the key', () => {
    expect(matchRoute('HEAD', '/')).toEqual({ kind: 'local', route: 'root', auth: false });
    expect(matchRoute('GET', '/api/hello')).toEqual({ kind: 'local', route: 'hello', auth: false });
    expect(matchRoute('HEAD', '/api/hello')).toEqual({ kind: 'local', route: 'hello', auth: false });
    expect(matchRoute('POST', '/api/event_logging/batch')).toEqual({ kind: 'local', route: 'telemetry', auth: false });
    expect(matchRoute('POST', '/api/event_logging/v2/batch')).toEqual({ kind: 'local', route: 'telemetry', auth: false });
    expect(matchRoute('GET', '/health')).toEqual({ kind: 'local', route: 'health', auth: false });
    expect(matchRoute('GET', '/v1/models')).toEqual({ kind: 'local', route: 'models', auth: true });
    expect(matchRoute('GET', '/metrics')).toEqual({ kind: 'local', route: 'metrics', auth: true });
  });

  it('the dashboard: the page is open to anyone (it asks for the key), its data and actions need the key', () => {
    expect(matchRoute('GET', '/ui')).toEqual({ kind: 'ui', route: 'ui-page', auth: false });
    expect(matchRoute('HEAD', '/ui/')).toEqual({ kind: 'ui', route: 'ui-page', auth: false });
    expect(matchRoute('GET', '/ui/events')).toEqual({ kind: 'ui', route: 'ui-events', auth: true });
    expect(matchRoute('GET', '/ui/log')).toEqual({ kind: 'ui', route: 'ui-log', auth: true });
    expect(matchRoute('POST', '/ui/action')).toEqual({ kind: 'ui', route: 'ui-action', auth: true });
    expect(matchRoute('GET', '/ui/action')).toEqual({ kind: 'method-not-allowed', allow: 'POST' });
    expect(matchRoute('GET', '/models/sse')).toEqual({ kind: 'ui', route: 'models-sse', auth: true });
  });

  it('proxied POST routes need the key', () => {
    for (const path of ['/v1/messages', '/v1/messages/count_tokens', '/v1/chat/completions', '/v1/completions', '/v1/embeddings']) {
      expect(matchRoute('POST', path)).toEqual({ kind: 'proxy', auth: true });
    }
  });

  it('wrong method: 405 with Allow; unknown path: 404', () => {
    expect(matchRoute('GET', '/v1/messages')).toEqual({ kind: 'method-not-allowed', allow: 'POST' });
    expect(matchRoute('POST', '/v1/models')).toEqual({ kind: 'method-not-allowed', allow: 'GET' });
    expect(matchRoute('POST', '/slots')).toEqual({ kind: 'not-found' });
    expect(matchRoute('GET', '/v1/messages/')).toEqual({ kind: 'not-found' });
  });

  it('the query string is not part of the match', () => {
    expect(getPathname('/v1/messages?beta=true')).toBe('/v1/messages');
    expect(getPathname('/v1/models?limit=1000')).toBe('/v1/models');
    expect(getPathname(undefined)).toBe('/');
  });
});
