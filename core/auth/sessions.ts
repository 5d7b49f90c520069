/**
 * Sessions as the Lucia guide describes them: the client holds a random token, the database
 * holds only its SHA-256, and the expiry slides forward while the session is in use.
 */
import type { Kysely } from 'kysely';
import type { Database, User } from '../db/index.js';
import { membershipsOf, type Membership } from './principal.js';
import { addressKey } from './rate-limit.js';
import { generateSecret, hashSecret } from './secret-token.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** A session lives this long after it was last renewed. */
export const SESSION_LIFETIME_MS = 30 * DAY_MS;
/** A session used when it has less than this left is renewed to the full lifetime. */
export const SESSION_RENEW_BELOW_MS = 15 * DAY_MS;

export interface Session {
  id: string;
  userId: string;
  expiresAt: Date;
}

/**
 * Whether the account holds a live session opened from this address bucket (see
 * {@link addressKey}): a place its owner has signed in from. Looks at the newest 100 sessions.
 */
export async function hasLiveSessionFrom(db: Kysely<Database>, email: string, address: string): Promise<boolean> {
  const rows = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select('sessions.ip')
    .where('users.email', '=', email)
    .where('sessions.expires_at', '>', new Date())
    .where('sessions.ip', 'is not', null)
    .orderBy('sessions.created_at', 'desc')
    .limit(100)
    .execute();
  return rows.some((row) => addressKey(row.ip!) === address);
}

export async function createSession(
  db: Kysely<Database>,
  userId: string,
  client: { userAgent?: string; ip?: string },
): Promise<{ token: string; session: Session }> {
  const token = generateSecret();
  const session = { id: hashSecret(token), userId, expiresAt: new Date(Date.now() + SESSION_LIFETIME_MS) };
  await db
    .insertInto('sessions')
    .values({
      id: session.id,
      user_id: userId,
      expires_at: session.expiresAt,
      user_agent: client.userAgent?.slice(0, 512) ?? null,
      ip: client.ip ?? null,
    })
    .execute();
  return { token, session };
}

/**
 * Looks a session token up, with its user and the user's memberships. Expired sessions are
 * deleted and yield `undefined`; a session in the second half of its life is renewed
 * (`renewed: true` tells the caller to reissue the cookie).
 */
export async function validateSessionToken(
  db: Kysely<Database>,
  token: string,
): Promise<{ session: Session; renewed: boolean; user: User; homes: Membership[] } | undefined> {
  const id = hashSecret(token);
  const row = await db
    .selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .selectAll('users')
    .select((eb) => ['sessions.expires_at', membershipsOf(eb)])
    .where('sessions.id', '=', id)
    .executeTakeFirst();
  if (!row) return undefined;
  const { expires_at, homes, ...user } = row;
  const now = Date.now();
  if (expires_at.getTime() <= now) {
    await db.deleteFrom('sessions').where('id', '=', id).execute();
    return undefined;
  }
  const session: Session = { id, userId: user.id, expiresAt: expires_at };
  if (expires_at.getTime() - now >= SESSION_RENEW_BELOW_MS) return { session, renewed: false, user, homes };
  session.expiresAt = new Date(now + SESSION_LIFETIME_MS);
  await db.updateTable('sessions').set({ expires_at: session.expiresAt }).where('id', '=', id).execute();
  return { session, renewed: true, user, homes };
}

export async function invalidateSession(db: Kysely<Database>, sessionId: string): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', sessionId).execute();
}

/** Ends every session of a user: after a password change, or when the account is disabled. */
export async function invalidateUserSessions(db: Kysely<Database>, userId: string): Promise<void> {
  await db.deleteFrom('sessions').where('user_id', '=', userId).execute();
}

/** Deletes sessions that expired without being used again; run now and then, not per request. */
export async function deleteExpiredSessions(db: Kysely<Database>): Promise<number> {
  const result = await db.deleteFrom('sessions').where('expires_at', '<=', new Date()).executeTakeFirst();
  return Number(result.numDeletedRows);
}
