// The gateway's API key check: `x-api-key: KEY` (Anthropic SDK, ANTHROPIC_API_KEY)
// or `Authorization: Bearer KEY` (OpenAI SDK, ANTHROPIC_AUTH_TOKEN). Compared in
// constant time over digests, so neither the key nor its length leaks.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const digest = (text: string) => createHash('sha256').update(text).digest();

/** A check for `apiKey`; with no key configured, every request passes. */
export function makeKeyCheck(apiKey: string | null): (headers: IncomingHttpHeaders) => boolean {
  if (apiKey === null) return () => true;
  const expected = digest(apiKey);
  const matches = (candidate: string | undefined) => candidate !== undefined && timingSafeEqual(digest(candidate), expected);
  return (headers) => {
    const xApiKey = headers['x-api-key'];
    if (matches(Array.isArray(xApiKey) ? xApiKey[0] : xApiKey)) return true;
    const bearer = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '');
    return matches(bearer?.[1]?.trim());
  };
}
