/**
 * Security headers on every HTTP answer, and CORS (off unless origins are configured).
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono';
import { hubError } from '../../errors/index.js';
import type { HubEnv } from './router.js';

/** Data answers (JSON, CSV, metrics) load nothing and may not be framed. */
const DATA_CSP = "default-src 'none'; frame-ancestors 'none'";

/**
 * The hub's own pages (`/api/docs`): scripts and styles only from the hub's files, no inline
 * script, nothing framed, nothing sent elsewhere.
 */
const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/**
 * Node-RED's editor runs inline scripts and `eval`-built code, so `/red` cannot get a strict
 * policy; it still may not be framed (clickjacking) and gets the other headers.
 */
const NODERED_CSP = "frame-ancestors 'none'";

/** HSTS for a year, announced only on answers that went out over TLS. */
const HSTS = 'max-age=31536000; includeSubDomains';

/** Which policy an answer gets. */
export type HeaderProfile = 'data' | 'page' | 'nodered';

/**
 * The security headers of one answer.
 *
 * @param https whether the request came over TLS (directly, or per a trusted proxy)
 */
export function securityHeaders(profile: HeaderProfile, https: boolean): Record<string, string> {
  const headers: Record<string, string> = {
    'X-Content-Type-Options': 'nosniff',
    'Content-Security-Policy': profile === 'page' ? PAGE_CSP : profile === 'nodered' ? NODERED_CSP : DATA_CSP,
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
  };
  if (https) headers['Strict-Transport-Security'] = HSTS;
  return headers;
}

/**
 * Whether a request came over TLS: its own URL, or with `trustProxy` the proxy's
 * `X-Forwarded-Proto` (the hub itself serves plain HTTP behind a TLS-terminating proxy).
 */
export function cameOverTls(header: (name: string) => string | undefined, url: string, trustProxy: boolean): boolean {
  const forwarded = trustProxy ? header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase() : undefined;
  if (forwarded) return forwarded === 'https';
  return url.startsWith('https:');
}

/** Sets {@link securityHeaders} on every answer of the app, errors and misses included. */
export function securityHeadersMiddleware(trustProxy: boolean): MiddlewareHandler<HubEnv> {
  return async (c, next) => {
    await next();
    const html = /^text\/html\b/i.test(c.res.headers.get('content-type') ?? '');
    const https = cameOverTls((name) => c.req.header(name), c.req.url, trustProxy);
    for (const [name, value] of Object.entries(securityHeaders(html ? 'page' : 'data', https))) c.res.headers.set(name, value);
  };
}

const CORS_METHODS = 'GET, POST, PUT, PATCH, DELETE';
const CORS_HEADERS = 'Authorization, Content-Type, X-Request-Id';
const CORS_EXPOSED = 'X-Request-Id, Retry-After';

/**
 * CORS for the origins in `HUB_CORS_ORIGINS`; none by default, so browsers keep other sites'
 * pages from reading any answer. Allowed origins call with `Authorization: Bearer` only: no
 * `Access-Control-Allow-Credentials`, so the session cookie is never sent cross-origin and the
 * CSRF rule for cookie writes stands. A preflight from any other origin is refused (403).
 */
export function cors(allowedOrigins: readonly string[]): MiddlewareHandler<HubEnv> {
  const allowed = new Set(allowedOrigins);
  return async (c, next) => {
    const origin = c.req.header('origin');
    const preflight = c.req.method === 'OPTIONS' && origin !== undefined && c.req.header('access-control-request-method') !== undefined;
    if (preflight) {
      if (!allowed.has(origin)) throw hubError('HUB_ERR_CORS_ORIGIN', `${origin} may not call this hub's API from a browser`);
      return c.body(null, 204, {
        'Access-Control-Allow-Origin': origin,
        'Access-Control-Allow-Methods': CORS_METHODS,
        'Access-Control-Allow-Headers': CORS_HEADERS,
        'Access-Control-Max-Age': '600',
        Vary: 'Origin',
      });
    }
    await next();
    if (origin !== undefined && allowed.has(origin)) {
      c.res.headers.set('Access-Control-Allow-Origin', origin);
      c.res.headers.set('Access-Control-Expose-Headers', CORS_EXPOSED);
    }
    // Caches must not hand one origin's answer to another.
    if (allowed.size > 0) c.res.headers.append('Vary', 'Origin');
  };
}
