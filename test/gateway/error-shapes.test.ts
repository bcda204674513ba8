import { describe, expect, it } from 'vitest';
import { getErrorFlavor, makeErrorBody, makeStreamErrorEvent } from '../../src/gateway/error-shapes.ts';

describe('error shapes', () => {
  it('Anthropic on /v1/messages and below, OpenAI elsewhere', () => {
    expect(getErrorFlavor('/v1/messages')).toBe('anthropic');
    expect(getErrorFlavor('/v1/messages/count_tokens')).toBe('anthropic');
    expect(getErrorFlavor('/v1/messagesX')).toBe('openai');
    expect(getErrorFlavor('/v1/chat/completions')).toBe('openai');
    expect(getErrorFlavor('/v1/models')).toBe('openai');
  });

  it('Anthropic envelope with the type for each status and the src marker', () => {
    expect(makeErrorBody({ flavor: 'anthropic', status: 404, message: 'm' })).toEqual({
      type: 'error',
      error: { type: 'not_found_error', message: 'm', src: 'gateway' },
    });
    expect(makeErrorBody({ flavor: 'anthropic', status: 413, message: 'm' })).toMatchObject({ error: { type: 'request_too_large' } });
    expect(makeErrorBody({ flavor: 'anthropic', status: 503, message: 'm' })).toMatchObject({ error: { type: 'api_error' } });
    expect(makeErrorBody({ flavor: 'anthropic', status: 401, message: 'm' })).toMatchObject({ error: { type: 'authentication_error' } });
  });

  it('OpenAI envelope: message, type, code', () => {
    expect(makeErrorBody({ flavor: 'openai', status: 400, message: 'bad' })).toEqual({
      error: { message: 'bad', type: 'invalid_request_error', code: 400, src: 'gateway' },
    });
    expect(makeErrorBody({ flavor: 'openai', status: 503, message: 'm' })).toMatchObject({ error: { type: 'unavailable_error', code: 503 } });
  });

  it('never overloaded_error', () => {
    for (const status of [400, 401, 404, 405, 413, 500, 502, 503] as const) {
      for (const flavor of ['anthropic', 'openai'] as const) {
        expect(JSON.stringify(makeErrorBody({ flavor, status, message: 'x' }))).not.toMatch(/overloaded|529/);
      }
    }
  });

  it('stream errors: an Anthropic `event: error`, an OpenAI data line with `error`', () => {
    const anthropic = makeStreamErrorEvent({ flavor: 'anthropic', message: 'gone' });
    expect(anthropic).toMatch(/^event: error\ndata: \{.*\}\n\n$/);
    expect(JSON.parse(anthropic.split('data: ')[1])).toEqual({ type: 'error', error: { type: 'api_error', message: 'gone', src: 'gateway' } });
    const openai = makeStreamErrorEvent({ flavor: 'openai', message: 'gone' });
    expect(JSON.parse(openai.slice('data: '.length))).toMatchObject({ error: { message: 'gone' } });
  });
});
