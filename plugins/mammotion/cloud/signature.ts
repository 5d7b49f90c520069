/**
 * The request identities the Mammotion id server and IoT API expect (SPEC §2.1, §3.1):
 * the OAuth2 `Ma-Signature`, the per-client `Client-Id`, and the per-request `Request-Id`.
 *
 * @module
 */
import { createHash, createHmac, randomInt } from 'node:crypto';

/** The path the OAuth2 signature covers (it is part of the signed string). */
export const OAUTH_TOKEN_PATH = '/oauth2/token';

/**
 * `Ma-Signature` of an OAuth2 token request:
 * `hex(HMAC-SHA256(hex(md5(clientSecret)), clientId + timestampMs + path + json(params)))`.
 * `params` must list the query parameters in the order they are sent: JSON keeps insertion
 * order and the server signs what it receives (VECTORS §C2).
 *
 * @example
 * oauthSignature('DUMMY_CLIENT_ID', 'DUMMY_SECRET', 1735689600000,
 *   { client_id: 'DUMMY_CLIENT_ID', grant_type: 'refresh_token', refresh_token: 'DUMMY_REFRESH' });
 * // → 'f195c17d59426977c7c7822561377372f9752ab2d2f0f1fea235328bfdf3d20f'
 */
export function oauthSignature(
  clientId: string,
  clientSecret: string,
  timestampMs: number,
  params: Record<string, string>,
  path = OAUTH_TOKEN_PATH,
): string {
  const key = createHash('md5').update(clientSecret, 'utf8').digest('hex');
  // JSON.stringify is compact and leaves non-ASCII alone, like the reference's json.dumps(separators, ensure_ascii=False).
  const signed = `${clientId}${timestampMs}${path}${JSON.stringify(params)}`;
  return createHmac('sha256', key).update(signed, 'utf8').digest('hex');
}

/** `n` random decimal digits (crypto-strong; the leading digit may be 0). */
export function randomDigits(n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) out += String(randomInt(10));
  return out;
}

/** The `Client-Id` header value, `<unix ms>_<7 random digits>_1`; generated once per HTTP client. */
export function newClientIdHeader(nowMs: number): string {
  return `${nowMs}_${randomDigits(7)}_1`;
}

/** The `Request-Id` header of an invoke: 21 random digits. */
export function newRequestId(): string {
  return randomDigits(21);
}
