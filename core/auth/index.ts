/**
 * Users, sessions, API tokens and the rules for who may touch which home.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import type { HubConfig } from '../config/index.js';
import type { Database } from '../db/index.js';
import { HubError } from '../errors/index.js';
import { insertUser } from './routes.js';
import { generateSecret } from './secret-token.js';

export { authenticate, authenticateToken, headersSameOrigin, SESSION_COOKIE } from './middleware.js';
export {
  homeRole,
  inVisibleHomes,
  requireAdmin,
  requireHomeRole,
  requireSession,
  resolveHome,
  roleAtLeast,
  type Principal,
  type PublicUser,
} from './principal.js';
export { authRoutes, Email, PUBLIC_AUTH_ROUTES } from './routes.js';
export { deleteExpiredSessions, SESSION_LIFETIME_MS } from './sessions.js';
export { generateSecret, hashSecret } from './secret-token.js';
export { userRoutes } from './users.js';

/** The administrator created on first run; `password` is set only when the hub generated it. */
export interface FirstRunAdmin {
  email: string;
  generatedPassword: string | undefined;
}

/**
 * On a database without users, creates the first administrator from `HUB_ADMIN_EMAIL` and
 * `HUB_ADMIN_PASSWORD`, or with a random password the caller must show once.
 *
 * @returns the new admin, or `undefined` when users already exist.
 */
export async function ensureFirstAdmin(
  db: Kysely<Database>,
  admin: HubConfig['admin'],
): Promise<FirstRunAdmin | undefined> {
  const anyUser = await db.selectFrom('users').select('id').limit(1).executeTakeFirst();
  if (anyUser) return undefined;
  const generatedPassword = admin.password ? undefined : generateSecret();
  try {
    await insertUser(db, { email: admin.email, name: 'Administrator', password: admin.password ?? generatedPassword!, isAdmin: true });
  } catch (error) {
    // Another hub instance starting on the same database created it a moment ago.
    if (error instanceof HubError && error.code === 'HUB_ERR_EMAIL_TAKEN') return undefined;
    throw error;
  }
  return { email: admin.email, generatedPassword };
}
