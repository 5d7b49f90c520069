/** Rules for who belongs to a home, shared by the member and invitation routes. */
import type { Kysely, Transaction } from 'kysely';
import { roleAtLeast } from '../auth/index.js';
import type { Database, Role } from '../db/index.js';
import { hubError } from '../errors/index.js';

/** Roles that can manage the home; one of them must always remain. */
export const MANAGING_ROLES: Role[] = ['owner', 'admin'];

/** The home, or HUB_ERR_HOME_NOT_FOUND. Check the caller's access first. */
export async function requireHome(db: Kysely<Database>, id: string) {
  const home = await db.selectFrom('homes').selectAll().where('id', '=', id).executeTakeFirst();
  if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
  return home;
}

/** Serialises membership changes of one home, so two requests cannot both remove "another" owner. */
export async function lockHome(trx: Transaction<Database>, id: string): Promise<void> {
  const home = await trx.selectFrom('homes').select('id').where('id', '=', id).forUpdate().executeTakeFirst();
  if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
}

export async function memberRole(trx: Transaction<Database>, homeId: string, userId: string): Promise<Role | undefined> {
  const row = await trx
    .selectFrom('home_members')
    .select('role')
    .where('home_id', '=', homeId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row?.role;
}

export function requireCanManage(callerRole: Role, targetRole: Role): void {
  if (!roleAtLeast(callerRole, targetRole)) throw hubError('HUB_ERR_FORBIDDEN', `You cannot change a member with the ${targetRole} role`);
}

export async function requireAnotherManager(trx: Transaction<Database>, homeId: string, exceptUserId: string): Promise<void> {
  const other = await trx
    .selectFrom('home_members')
    .select('user_id')
    .where('home_id', '=', homeId)
    .where('role', 'in', MANAGING_ROLES)
    .where('user_id', '!=', exceptUserId)
    .executeTakeFirst();
  if (!other) throw hubError('HUB_ERR_LAST_OWNER');
}
