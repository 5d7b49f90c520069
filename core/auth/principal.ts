/**
 * Who is calling and what they may touch. Every handler asks these functions, never the
 * tables, so the rules for admins, members and scoped API tokens live in one place.
 */
import type { Expression, ExpressionBuilder, ReferenceExpression, SqlBool } from 'kysely';
import { jsonArrayFrom } from 'kysely/helpers/postgres';
import { ROLES, type Database, type Role, type User } from '../db/index.js';
import { hubError } from '../errors/index.js';

/** The user fields that leave the hub. */
export interface PublicUser {
  id: string;
  email: string;
  name: string;
  is_admin: boolean;
  can_automate: boolean;
  disabled: boolean;
  created_at: Date;
}

/** An authenticated caller. */
export interface Principal {
  user: PublicUser;
  /** How the caller authenticated; a token cannot manage tokens, users or create homes. */
  via: { kind: 'session'; sessionId: string } | { kind: 'token'; tokenId: string };
  /** Operator access to every home. Only sessions of admin users have it, never API tokens. */
  isAdmin: boolean;
  /** The caller's role in each home they can reach. */
  homes: ReadonlyMap<string, Role>;
}

export function toPublicUser(user: User): PublicUser {
  const { id, email, name, is_admin, can_automate, disabled, created_at } = user;
  return { id, email, name, is_admin, can_automate, disabled, created_at };
}

export function roleAtLeast(role: Role, minimum: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(minimum);
}

/** The weaker of two roles. */
export function weakerRole(a: Role, b: Role): Role {
  return roleAtLeast(a, b) ? b : a;
}

/** The caller's role in a home, `admin` for operators, `undefined` when they cannot see it. */
export function homeRole(principal: Principal, homeId: string): Role | undefined {
  return principal.isAdmin ? 'admin' : principal.homes.get(homeId);
}

/**
 * Checks the caller holds at least `minimum` in the home. A home the caller cannot see is
 * reported as not found (404), so ids of other people's homes reveal nothing.
 *
 * @returns the caller's role in the home.
 */
export function requireHomeRole(principal: Principal, homeId: string, minimum: Role): Role {
  const role = homeRole(principal, homeId);
  if (!role) throw hubError('HUB_ERR_HOME_NOT_FOUND');
  if (!roleAtLeast(role, minimum)) throw hubError('HUB_ERR_FORBIDDEN', `This needs the ${minimum} role in the home`);
  return role;
}

/** Operator-only routes. */
export function requireAdmin(principal: Principal): void {
  if (!principal.isAdmin) throw hubError('HUB_ERR_FORBIDDEN', 'Only hub administrators can do this');
}

/** Routes that act for the person, not for a tool: managing tokens, creating homes. */
export function requireSession(principal: Principal): void {
  if (principal.via.kind !== 'session') {
    throw hubError('HUB_ERR_FORBIDDEN', 'API tokens cannot do this; sign in as the user');
  }
}

/**
 * The user's memberships as a JSON array column, for queries that join `users`: the caller,
 * their account and their homes come back in one round trip on every request.
 */
export function membershipsOf(eb: ExpressionBuilder<Database & { users: Database['users'] }, 'users'>) {
  return jsonArrayFrom(eb.selectFrom('home_members').select(['home_id', 'role']).whereRef('home_members.user_id', '=', 'users.id')).as('homes');
}

export type Membership = { home_id: string; role: Role };

/**
 * A `where` condition keeping rows of the homes the caller can see: every query over
 * home-owned data goes through it.
 *
 * @example
 * db.selectFrom('homes').selectAll().where((eb) => inVisibleHomes(eb, principal, 'homes.id'))
 */
export function inVisibleHomes<DB, TB extends keyof DB>(
  eb: ExpressionBuilder<DB, TB>,
  principal: Principal,
  column: ReferenceExpression<DB, TB>,
): Expression<SqlBool> {
  if (principal.isAdmin) return eb.lit(true);
  const ids = [...principal.homes.keys()];
  return ids.length > 0 ? eb(column, 'in', ids) : eb.lit(false);
}

/**
 * The home a request acts on: the one it names, or the caller's only home. Callers in several
 * homes (and administrators) must name it.
 */
export function resolveHome(principal: Principal, homeId: string | undefined): string {
  if (homeId) return homeId;
  const own = [...principal.homes.keys()];
  if (own.length === 1 && !principal.isAdmin) return own[0]!;
  throw hubError('HUB_ERR_VALIDATION', 'Say which home: give home_id', {
    details: [{ path: ['home_id'], message: 'required when the caller belongs to several homes', code: 'invalid_type' }],
  });
}
