/**
 * Authentication of every non-public request, and the cookie and CSRF rules that go with it.
 */
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { Kysely } from 'kysely';
import { cameOverTls, type HubEnv } from '../api/rest/index.js';
import type { Database } from '../db/index.js';
import { hubError } from '../errors/index.js';
import { API_TOKEN_PREFIX, validateApiToken } from './api-tokens.js';
import { toPublicUser, weakerRole, type Principal } from './principal.js';
import { validateSessionToken, type Session } from './sessions.js';

export const SESSION_COOKIE = 'hub_session';

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The client's address: the connection's peer, or with `trustProxy` the address the proxy saw;
 * undefined for an in-process request (`app.request`), which has no socket.
 */
export function clientAddress(c: Context, trustProxy: boolean): string | undefined {
  if (trustProxy) {
    // The right-most entry is the one our own proxy appended; entries left of it are the client's say-so.
    const forwarded = c.req.header('x-forwarded-for')?.split(',').at(-1)?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}

export function setSessionCookie(c: Context, token: string, session: Session, trustProxy: boolean): void {
  setCookie(c, SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: 'Lax',
    path: '/',
    secure: cameOverTls((name) => c.req.header(name), c.req.url, trustProxy),
    expires: session.expiresAt,
  });
}

export function clearSessionCookie(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: '/' });
}

/**
 * Whether a browser sent this request from the hub's own pages. `Sec-Fetch-Site` when the
 * browser sends it, else `Origin` against the host the request was made to; neither means no.
 */
export function isSameOrigin(c: Context, trustProxy: boolean): boolean {
  return headersSameOrigin((name) => c.req.header(name), trustProxy, new URL(c.req.url).host);
}

/** {@link isSameOrigin} over raw request headers (requests that do not pass through Hono). */
export function headersSameOrigin(header: (name: string) => string | undefined, trustProxy: boolean, requestHost = ''): boolean {
  const site = header('sec-fetch-site');
  if (site) return site === 'same-origin' || site === 'none';
  const origin = header('origin');
  if (!origin) return false;
  const host = (trustProxy && header('x-forwarded-host')) || header('host') || requestHost;
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** A request another site's page made (it said so): refused even where no cookie is involved. */
export function isCrossSite(c: Context, trustProxy: boolean): boolean {
  const declared = c.req.header('sec-fetch-site') !== undefined || c.req.header('origin') !== undefined;
  return declared && !isSameOrigin(c, trustProxy);
}

function bearerToken(c: Context): string | undefined {
  const header = c.req.header('authorization');
  if (header === undefined) return undefined;
  const match = /^Bearer ([\w.~+/-]+=*)$/i.exec(header.trim());
  if (!match) throw hubError('HUB_ERR_UNAUTHENTICATED', 'The Authorization header must be "Bearer <token>"');
  return match[1];
}

async function principalFromApiToken(db: Kysely<Database>, token: string): Promise<Principal | undefined> {
  const valid = await validateApiToken(db, token);
  if (!valid || valid.user.disabled) return undefined;
  const { token: record, user } = valid;
  // The token never grants more than its owner holds in the home today.
  const ownRole = user.is_admin ? 'admin' : valid.homes.find((m) => m.home_id === record.home_id)?.role;
  if (!ownRole) return undefined;
  return {
    user: toPublicUser(user),
    via: { kind: 'token', tokenId: record.id },
    isAdmin: false,
    homes: new Map([[record.home_id, weakerRole(record.role, ownRole)]]),
  };
}

async function principalFromSession(
  db: Kysely<Database>,
  token: string,
): Promise<{ principal: Principal; session: Session; renewed: boolean } | undefined> {
  const valid = await validateSessionToken(db, token);
  if (!valid || valid.user.disabled) return undefined;
  const principal: Principal = {
    user: toPublicUser(valid.user),
    via: { kind: 'session', sessionId: valid.session.id },
    isAdmin: valid.user.is_admin,
    homes: new Map(valid.homes.map((m) => [m.home_id, m.role])),
  };
  return { principal, session: valid.session, renewed: valid.renewed };
}

/** The caller a bearer credential (session token or API token) stands for, if it is valid. */
export async function authenticateToken(db: Kysely<Database>, token: string): Promise<Principal | undefined> {
  if (token.startsWith(API_TOKEN_PREFIX)) return principalFromApiToken(db, token);
  return (await principalFromSession(db, token))?.principal;
}

/**
 * Sets `c.var.principal` from a bearer token (session or API token) or the session cookie,
 * or answers 401. Cookie-authenticated unsafe requests must come from the hub's own origin.
 */
export function authenticate(db: Kysely<Database>, trustProxy: boolean): MiddlewareHandler<HubEnv> {
  return async (c, next) => {
    const bearer = bearerToken(c);
    const token = bearer ?? getCookie(c, SESSION_COOKIE);
    if (!token) throw hubError('HUB_ERR_UNAUTHENTICATED');

    if (token.startsWith(API_TOKEN_PREFIX)) {
      const principal = await principalFromApiToken(db, token);
      if (!principal) throw hubError('HUB_ERR_UNAUTHENTICATED', 'The API token is invalid, expired or revoked');
      c.set('principal', principal);
      return next();
    }

    const found = await principalFromSession(db, token);
    if (!found) {
      if (!bearer) clearSessionCookie(c);
      throw hubError('HUB_ERR_UNAUTHENTICATED', 'The session is invalid or has expired; sign in again');
    }
    if (!bearer) {
      if (UNSAFE_METHODS.has(c.req.method) && !isSameOrigin(c, trustProxy)) throw hubError('HUB_ERR_CSRF');
      if (found.renewed) setSessionCookie(c, token, found.session, trustProxy);
    }
    c.set('principal', found.principal);
    return next();
  };
}
