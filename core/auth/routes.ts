/** `/api/auth/*` (sign-in, sign-out, who am I, registration) and `/api/tokens`. */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { createRouter, errors, json, jsonBody, presentUser, UserSchema } from '../api/rest/index.js';
import type { HubConfig } from '../config/index.js';
import { isUniqueViolation, ROLES, type Database } from '../db/index.js';
import { hubError } from '../errors/index.js';
import { createApiToken, listApiTokens, revokeApiToken, type ApiTokenView } from './api-tokens.js';
import { clearSessionCookie, clientAddress, isCrossSite, setSessionCookie } from './middleware.js';
import { hashPassword, verifyPassword } from './password.js';
import { homeRole, inVisibleHomes, requireHomeRole, requireSession, toPublicUser, type Principal } from './principal.js';
import { createLoginLimiter } from './rate-limit.js';
import { createSession, hasLiveSessionFrom, invalidateSession } from './sessions.js';

export interface AuthRoutesOptions {
  db: Kysely<Database>;
  config: Pick<HubConfig, 'trustProxy' | 'openRegistration'>;
}

/** An email address, lower-cased. HTML5's rule, which (unlike zod's default) admits `admin@localhost`. */
export const Email = z.string().trim().toLowerCase().pipe(z.email({ pattern: z.regexes.html5Email }));
/** Long enough to resist guessing; capped so one request cannot make the KDF chew megabytes. */
export const NewPassword = z.string().min(8, 'must be at least 8 characters').max(1024);

const Credentials = z.object({ email: Email, password: z.string().min(1).max(1024) }).openapi('Credentials');
const Registration = z
  .object({ email: Email, password: NewPassword, name: z.string().trim().max(200).optional() })
  .openapi('Registration');
const SignedIn = z
  .object({ token: z.string(), expires_at: z.iso.datetime(), user: UserSchema })
  .openapi('SignedIn');
const Me = z
  .object({
    user: UserSchema,
    via: z.enum(['session', 'token']),
    homes: z.array(z.object({ id: z.uuid(), name: z.string(), role: z.enum(ROLES) })),
  })
  .openapi('Me');

const TokenInput = z
  .object({
    name: z.string().trim().min(1).max(100),
    home_id: z.uuid(),
    role: z.enum(ROLES),
    expires_in_days: z.number().int().min(1).max(3650).optional(),
  })
  .openapi('NewApiToken');
const TokenSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    home_id: z.uuid(),
    role: z.enum(ROLES),
    hint: z.string().describe('The last four characters of the token'),
    created_at: z.iso.datetime(),
    last_used_at: z.iso.datetime().nullable(),
    expires_at: z.iso.datetime().nullable(),
  })
  .openapi('ApiToken');
const CreatedToken = TokenSchema.extend({ token: z.string().describe('Shown once; store it now') }).openapi('CreatedApiToken');

function presentToken(t: ApiTokenView): z.infer<typeof TokenSchema> {
  return {
    id: t.id,
    name: t.name,
    home_id: t.home_id,
    role: t.role,
    hint: t.hint,
    created_at: t.created_at.toISOString(),
    last_used_at: t.last_used_at?.toISOString() ?? null,
    expires_at: t.expires_at?.toISOString() ?? null,
  };
}

const tag = { auth: ['Auth'], tokens: ['API tokens'] };

const routes = {
  login: createRoute({
    method: 'post',
    path: '/auth/login',
    tags: tag.auth,
    summary: 'Sign in with email and password',
    description: 'Returns a session token (also set as an HttpOnly cookie). Rate-limited per address and per account.',
    request: { body: jsonBody(Credentials) },
    responses: { 200: json(SignedIn, 'Signed in'), ...errors(400, 401, 403, 415, 429) },
  }),
  register: createRoute({
    method: 'post',
    path: '/auth/register',
    tags: tag.auth,
    summary: 'Create an account (only when HUB_OPEN_REGISTRATION=true)',
    request: { body: jsonBody(Registration) },
    responses: { 201: json(SignedIn, 'Account created and signed in'), ...errors(400, 403, 409, 415) },
  }),
  logout: createRoute({
    method: 'post',
    path: '/auth/logout',
    tags: tag.auth,
    summary: 'End the current session',
    responses: { 204: { description: 'Signed out' }, ...errors(401, 403) },
  }),
  me: createRoute({
    method: 'get',
    path: '/auth/me',
    tags: tag.auth,
    summary: 'The signed-in user and their homes',
    responses: { 200: json(Me, 'The caller'), ...errors(401) },
  }),
  listTokens: createRoute({
    method: 'get',
    path: '/tokens',
    tags: tag.tokens,
    summary: "The caller's API tokens",
    responses: { 200: json(z.array(TokenSchema), 'Tokens, oldest first'), ...errors(401, 403) },
  }),
  createToken: createRoute({
    method: 'post',
    path: '/tokens',
    tags: tag.tokens,
    summary: 'Create an API token scoped to one home and role',
    request: { body: jsonBody(TokenInput) },
    responses: { 201: json(CreatedToken, 'The token, shown once'), ...errors(400, 401, 403, 404, 415) },
  }),
  revokeToken: createRoute({
    method: 'delete',
    path: '/tokens/{id}',
    tags: tag.tokens,
    summary: 'Revoke one of your API tokens',
    request: { params: z.object({ id: z.uuid() }) },
    responses: { 204: { description: 'Revoked' }, ...errors(400, 401, 403, 404) },
  }),
};

/** Routes that answer without a signed-in caller. */
export const PUBLIC_AUTH_ROUTES = ['POST /api/auth/login', 'POST /api/auth/register'];

export function authRoutes({ db, config }: AuthRoutesOptions) {
  const limiter = createLoginLimiter({ isKnownAddress: (email, address) => hasLiveSessionFrom(db, email, address) });
  const router = createRouter();

  async function signIn(c: Parameters<Parameters<typeof router.openapi>[1]>[0], userId: string) {
    const client = { userAgent: c.req.header('user-agent'), ip: clientAddress(c, config.trustProxy) };
    const { token, session } = await createSession(db, userId, client);
    setSessionCookie(c, token, session, config.trustProxy);
    return { token, expires_at: session.expiresAt.toISOString() };
  }

  router.openapi(routes.login, async (c) => {
    if (isCrossSite(c, config.trustProxy)) throw hubError('HUB_ERR_CSRF');
    const { email, password } = c.req.valid('json');
    const ip = clientAddress(c, config.trustProxy);
    const wait = await limiter.admit(ip, email);
    if (wait > 0) throw hubError('HUB_ERR_RATE_LIMITED', undefined, { headers: { 'Retry-After': String(wait) } });

    const user = await db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
    if (!(await verifyPassword(password, user?.password_hash)) || !user) {
      c.var.log.info({ email, ip }, 'login failed');
      throw hubError('HUB_ERR_INVALID_CREDENTIALS');
    }
    if (user.disabled) throw hubError('HUB_ERR_ACCOUNT_DISABLED');
    limiter.succeeded(ip, email);
    c.var.log.info({ userId: user.id }, 'login');
    return c.json({ ...(await signIn(c, user.id)), user: presentUser(toPublicUser(user)) }, 200);
  });

  router.openapi(routes.register, async (c) => {
    if (!config.openRegistration) throw hubError('HUB_ERR_REGISTRATION_CLOSED');
    if (isCrossSite(c, config.trustProxy)) throw hubError('HUB_ERR_CSRF');
    const input = c.req.valid('json');
    const user = await insertUser(db, { email: input.email, name: input.name ?? '', password: input.password });
    c.var.log.info({ userId: user.id }, 'user registered');
    return c.json({ ...(await signIn(c, user.id)), user: presentUser(toPublicUser(user)) }, 201);
  });

  router.openapi(routes.logout, async (c) => {
    const { via } = c.var.principal;
    if (via.kind === 'session') await invalidateSession(db, via.sessionId);
    clearSessionCookie(c);
    return c.body(null, 204);
  });

  router.openapi(routes.me, async (c) => {
    const principal = c.var.principal;
    return c.json(
      {
        user: presentUser(principal.user),
        via: principal.via.kind,
        homes: await visibleHomesWithRoles(db, principal),
      },
      200,
    );
  });

  router.openapi(routes.listTokens, async (c) => {
    requireSession(c.var.principal);
    const tokens = await listApiTokens(db, c.var.principal.user.id);
    return c.json(tokens.map(presentToken), 200);
  });

  router.openapi(routes.createToken, async (c) => {
    const principal = c.var.principal;
    requireSession(principal);
    const input = c.req.valid('json');
    requireHomeRole(principal, input.home_id, input.role);
    await requireHomeExists(db, input.home_id);
    const expiresAt = input.expires_in_days ? new Date(Date.now() + input.expires_in_days * 86_400_000) : null;
    const { token, record } = await createApiToken(db, {
      userId: principal.user.id,
      homeId: input.home_id,
      role: input.role,
      name: input.name,
      expiresAt,
    });
    c.var.log.info({ tokenId: record.id, homeId: record.home_id, role: record.role }, 'api token created');
    return c.json({ ...presentToken(record), token }, 201);
  });

  router.openapi(routes.revokeToken, async (c) => {
    requireSession(c.var.principal);
    const { id } = c.req.valid('param');
    if (!(await revokeApiToken(db, c.var.principal.user.id, id))) throw hubError('HUB_ERR_TOKEN_NOT_FOUND');
    c.var.log.info({ tokenId: id }, 'api token revoked');
    return c.body(null, 204);
  });

  return router;
}

/** Creates a user; HUB_ERR_EMAIL_TAKEN when the email is in use. */
export async function insertUser(
  db: Kysely<Database>,
  input: { email: string; name: string; password: string; isAdmin?: boolean; canAutomate?: boolean },
) {
  const password_hash = await hashPassword(input.password);
  try {
    return await db
      .insertInto('users')
      .values({ email: input.email, name: input.name, password_hash, is_admin: input.isAdmin ?? false, can_automate: input.canAutomate ?? false })
      .returningAll()
      .executeTakeFirstOrThrow();
  } catch (error) {
    if (isUniqueViolation(error)) throw hubError('HUB_ERR_EMAIL_TAKEN');
    throw error;
  }
}

async function requireHomeExists(db: Kysely<Database>, homeId: string): Promise<void> {
  const home = await db.selectFrom('homes').select('id').where('id', '=', homeId).executeTakeFirst();
  if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
}

async function visibleHomesWithRoles(db: Kysely<Database>, principal: Principal) {
  const homes = await db
    .selectFrom('homes')
    .select(['id', 'name'])
    .where((eb) => inVisibleHomes(eb, principal, 'homes.id'))
    .orderBy('name')
    .execute();
  return homes.map((h) => ({ ...h, role: homeRole(principal, h.id)! }));
}
