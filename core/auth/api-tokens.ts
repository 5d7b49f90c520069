/**
 * Long-lived API tokens for tools and automations. Each is scoped to one home and a role no
 * stronger than its owner's there; only the SHA-256 is stored, the token is shown once.
 */
import type { Kysely } from 'kysely';
import type { ApiToken, Database, Role, User } from '../db/index.js';
import { membershipsOf, type Membership } from './principal.js';
import { generateSecret, hashSecret } from './secret-token.js';

/** Every API token starts with this, so a bearer credential is routed without a lookup. */
export const API_TOKEN_PREFIX = 'mhub_';

// Writing last_used_at on every request would turn each read into a write.
const LAST_USED_PRECISION_MS = 60_000;

export type ApiTokenView = Omit<ApiToken, 'token_hash'>;

const VIEW_COLUMNS = ['id', 'user_id', 'home_id', 'role', 'name', 'hint', 'created_at', 'last_used_at', 'expires_at'] as const;

export async function createApiToken(
  db: Kysely<Database>,
  input: { userId: string; homeId: string; role: Role; name: string; expiresAt: Date | null },
): Promise<{ token: string; record: ApiTokenView }> {
  const token = API_TOKEN_PREFIX + generateSecret();
  const record = await db
    .insertInto('api_tokens')
    .values({
      user_id: input.userId,
      home_id: input.homeId,
      role: input.role,
      name: input.name,
      token_hash: hashSecret(token),
      hint: token.slice(-4),
      expires_at: input.expiresAt,
    })
    .returning(VIEW_COLUMNS)
    .executeTakeFirstOrThrow();
  return { token, record };
}

/**
 * The token, its owner and the owner's memberships, if the token exists and has not expired;
 * notes when it was last used.
 */
export async function validateApiToken(
  db: Kysely<Database>,
  token: string,
): Promise<{ token: Pick<ApiToken, 'id' | 'home_id' | 'role'>; user: User; homes: Membership[] } | undefined> {
  const row = await db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.id', 'api_tokens.user_id')
    .selectAll('users')
    .select((eb) => [
      'api_tokens.id as token_id',
      'api_tokens.home_id as token_home_id',
      'api_tokens.role as token_role',
      'api_tokens.expires_at as token_expires_at',
      'api_tokens.last_used_at as token_last_used_at',
      membershipsOf(eb),
    ])
    .where('api_tokens.token_hash', '=', hashSecret(token))
    .executeTakeFirst();
  if (!row) return undefined;
  const { token_id, token_home_id, token_role, token_expires_at, token_last_used_at, homes, ...user } = row;
  const now = Date.now();
  if (token_expires_at && token_expires_at.getTime() <= now) return undefined;
  if (!token_last_used_at || now - token_last_used_at.getTime() > LAST_USED_PRECISION_MS) {
    await db.updateTable('api_tokens').set({ last_used_at: new Date(now) }).where('id', '=', token_id).execute();
  }
  return { token: { id: token_id, home_id: token_home_id, role: token_role }, user, homes };
}

export function listApiTokens(db: Kysely<Database>, userId: string): Promise<ApiTokenView[]> {
  return db
    .selectFrom('api_tokens')
    .select(VIEW_COLUMNS)
    .where('user_id', '=', userId)
    .orderBy('created_at')
    .execute();
}

/** Revokes a token of this user; false when the user has no such token. */
export async function revokeApiToken(db: Kysely<Database>, userId: string, tokenId: string): Promise<boolean> {
  const result = await db.deleteFrom('api_tokens').where('id', '=', tokenId).where('user_id', '=', userId).executeTakeFirst();
  return result.numDeletedRows > 0n;
}
