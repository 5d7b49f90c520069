/**
 * Homes (the hub's tenants) and who belongs to them: `/api/homes` and `/api/homes/{id}/members`.
 *
 * @module
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely, Transaction } from 'kysely';
import { createRouter, errors, json, jsonBody } from '../api/rest/index.js';
import { homeRole, inVisibleHomes, requireHomeRole, requireSession, roleAtLeast } from '../auth/index.js';
import { createContext, type EventBus } from '../bus/index.js';
import type { Database, Role } from '../db/index.js';
import { hubError } from '../errors/index.js';
import {
  HomeIdParam,
  HomeInput,
  HomePatch,
  HomeSchema,
  MemberInput,
  MemberParam,
  MemberSchema,
  presentHome,
} from './schemas.js';

export { TimeZone } from './schemas.js';

const tags = ['Homes'];
const routes = {
  list: createRoute({
    method: 'get',
    path: '/homes',
    tags,
    summary: 'Homes the caller can see (all of them for hub administrators)',
    responses: { 200: json(z.array(HomeSchema), 'Homes by name'), ...errors(401) },
  }),
  create: createRoute({
    method: 'post',
    path: '/homes',
    tags,
    summary: 'Create a home; the caller becomes its owner',
    request: { body: jsonBody(HomeInput) },
    responses: { 201: json(HomeSchema, 'Created'), ...errors(400, 401, 403, 415) },
  }),
  get: createRoute({
    method: 'get',
    path: '/homes/{id}',
    tags,
    summary: 'One home',
    request: { params: HomeIdParam },
    responses: { 200: json(HomeSchema, 'The home'), ...errors(400, 401, 404) },
  }),
  update: createRoute({
    method: 'patch',
    path: '/homes/{id}',
    tags,
    summary: 'Change a home (owner); null clears a field',
    request: { params: HomeIdParam, body: jsonBody(HomePatch) },
    responses: { 200: json(HomeSchema, 'Updated'), ...errors(400, 401, 403, 404, 415) },
  }),
  remove: createRoute({
    method: 'delete',
    path: '/homes/{id}',
    tags,
    summary: 'Delete a home and everything that belongs to it (owner)',
    request: { params: HomeIdParam },
    responses: { 204: { description: 'Deleted' }, ...errors(400, 401, 403, 404) },
  }),
  members: createRoute({
    method: 'get',
    path: '/homes/{id}/members',
    tags,
    summary: "The home's members",
    request: { params: HomeIdParam },
    responses: { 200: json(z.array(MemberSchema), 'Members by email'), ...errors(400, 401, 404) },
  }),
  addMember: createRoute({
    method: 'post',
    path: '/homes/{id}/members',
    tags,
    summary: "Add a user to the home, or change a member's role (owner)",
    description: 'The user must already have an account. Nobody can grant a role above their own.',
    request: { params: HomeIdParam, body: jsonBody(MemberInput) },
    responses: {
      200: json(MemberSchema, 'Role changed'),
      201: json(MemberSchema, 'Added'),
      ...errors(400, 401, 403, 404, 409, 415),
    },
  }),
  removeMember: createRoute({
    method: 'delete',
    path: '/homes/{id}/members/{user_id}',
    tags,
    summary: 'Remove a member (owner), or leave the home (yourself)',
    request: { params: MemberParam },
    responses: { 204: { description: 'Removed' }, ...errors(400, 401, 403, 404, 409) },
  }),
};

// Roles that can manage the home; one of them must always remain.
const MANAGING_ROLES: Role[] = ['owner', 'admin'];

export function homeRoutes({ db, bus }: { db: Kysely<Database>; bus: EventBus }) {
  const router = createRouter();

  router.openapi(routes.list, async (c) => {
    const principal = c.var.principal;
    const homes = await db
      .selectFrom('homes')
      .selectAll()
      .where((eb) => inVisibleHomes(eb, principal, 'homes.id'))
      .orderBy('name')
      .orderBy('id')
      .execute();
    return c.json(homes.map((h) => presentHome(h, homeRole(principal, h.id)!)), 200);
  });

  router.openapi(routes.create, async (c) => {
    const principal = c.var.principal;
    requireSession(principal);
    const input = c.req.valid('json');
    const home = await db.transaction().execute(async (trx) => {
      const created = await trx
        .insertInto('homes')
        .values(input)
        .returningAll()
        .executeTakeFirstOrThrow();
      await trx.insertInto('home_members').values({ home_id: created.id, user_id: principal.user.id, role: 'owner' }).execute();
      return created;
    });
    c.var.log.info({ homeId: home.id }, 'home created');
    bus.fire('home_created', { home_id: home.id }, { homeId: home.id, context: createContext({ user_id: principal.user.id }) });
    return c.json(presentHome(home, principal.isAdmin ? 'admin' : 'owner'), 201);
  });

  router.openapi(routes.get, async (c) => {
    const { id } = c.req.valid('param');
    const role = requireHomeRole(c.var.principal, id, 'viewer');
    return c.json(presentHome(await requireHome(db, id), role), 200);
  });

  router.openapi(routes.update, async (c) => {
    const { id } = c.req.valid('param');
    const role = requireHomeRole(c.var.principal, id, 'owner');
    const patch = c.req.valid('json');
    const home = await db
      .updateTable('homes')
      .set({
        ...patch,
        updated_at: new Date(),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
    const changed = Object.keys(patch);
    c.var.log.info({ homeId: id, changed }, 'home updated');
    bus.fire('home_updated', { home_id: id, changed }, { homeId: id, context: createContext({ user_id: c.var.principal.user.id }) });
    return c.json(presentHome(home, role), 200);
  });

  router.openapi(routes.remove, async (c) => {
    const { id } = c.req.valid('param');
    requireHomeRole(c.var.principal, id, 'owner');
    const result = await db.deleteFrom('homes').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw hubError('HUB_ERR_HOME_NOT_FOUND');
    bus.fire('home_deleted', { home_id: id }, { homeId: id, context: createContext({ user_id: c.var.principal.user.id }) });
    c.var.log.info({ homeId: id }, 'home deleted');
    return c.body(null, 204);
  });

  router.openapi(routes.members, async (c) => {
    const { id } = c.req.valid('param');
    requireHomeRole(c.var.principal, id, 'viewer');
    await requireHome(db, id);
    const members = await db
      .selectFrom('home_members')
      .innerJoin('users', 'users.id', 'home_members.user_id')
      .select(['users.id as user_id', 'users.email', 'users.name', 'home_members.role', 'home_members.created_at'])
      .where('home_members.home_id', '=', id)
      .orderBy('users.email')
      .execute();
    return c.json(members.map((m) => ({ ...m, created_at: m.created_at.toISOString() })), 200);
  });

  router.openapi(routes.addMember, async (c) => {
    const { id } = c.req.valid('param');
    const { email, role } = c.req.valid('json');
    const callerRole = requireHomeRole(c.var.principal, id, 'owner');
    if (!roleAtLeast(callerRole, role)) throw hubError('HUB_ERR_FORBIDDEN', `You cannot grant the ${role} role`);
    const { member, created } = await db.transaction().execute(async (trx) => {
      await lockHome(trx, id);
      const user = await trx.selectFrom('users').select(['id', 'email', 'name']).where('email', '=', email).executeTakeFirst();
      if (!user) throw hubError('HUB_ERR_USER_NOT_FOUND', 'No user has this email; an administrator must create the account first');
      const existing = await memberRole(trx, id, user.id);
      if (existing) {
        requireCanManage(callerRole, existing);
        if (!MANAGING_ROLES.includes(role)) await requireAnotherManager(trx, id, user.id);
      }
      const row = await trx
        .insertInto('home_members')
        .values({ home_id: id, user_id: user.id, role })
        .onConflict((oc) => oc.columns(['home_id', 'user_id']).doUpdateSet({ role }))
        .returning(['role', 'created_at'])
        .executeTakeFirstOrThrow();
      return { member: { user_id: user.id, email: user.email, name: user.name, ...row }, created: !existing };
    });
    c.var.log.info({ homeId: id, userId: member.user_id, role }, created ? 'member added' : 'member role changed');
    const body = { ...member, created_at: member.created_at.toISOString() };
    return created ? c.json(body, 201) : c.json(body, 200);
  });

  router.openapi(routes.removeMember, async (c) => {
    const { id, user_id } = c.req.valid('param');
    const principal = c.var.principal;
    const leaving = user_id === principal.user.id;
    const callerRole = requireHomeRole(principal, id, leaving ? 'viewer' : 'owner');
    await db.transaction().execute(async (trx) => {
      await lockHome(trx, id);
      const role = await memberRole(trx, id, user_id);
      if (!role) throw hubError('HUB_ERR_MEMBER_NOT_FOUND');
      if (!leaving) requireCanManage(callerRole, role);
      if (MANAGING_ROLES.includes(role)) await requireAnotherManager(trx, id, user_id);
      await trx.deleteFrom('home_members').where('home_id', '=', id).where('user_id', '=', user_id).execute();
    });
    c.var.log.info({ homeId: id, userId: user_id }, 'member removed');
    return c.body(null, 204);
  });

  return router;
}

/** The home, or HUB_ERR_HOME_NOT_FOUND. Check the caller's access first. */
export async function requireHome(db: Kysely<Database>, id: string) {
  const home = await db.selectFrom('homes').selectAll().where('id', '=', id).executeTakeFirst();
  if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
  return home;
}

/** Serialises membership changes of one home, so two requests cannot both remove "another" owner. */
async function lockHome(trx: Transaction<Database>, id: string): Promise<void> {
  const home = await trx.selectFrom('homes').select('id').where('id', '=', id).forUpdate().executeTakeFirst();
  if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
}

async function memberRole(trx: Transaction<Database>, homeId: string, userId: string): Promise<Role | undefined> {
  const row = await trx
    .selectFrom('home_members')
    .select('role')
    .where('home_id', '=', homeId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return row?.role;
}

function requireCanManage(callerRole: Role, targetRole: Role): void {
  if (!roleAtLeast(callerRole, targetRole)) throw hubError('HUB_ERR_FORBIDDEN', `You cannot change a member with the ${targetRole} role`);
}

async function requireAnotherManager(trx: Transaction<Database>, homeId: string, exceptUserId: string): Promise<void> {
  const other = await trx
    .selectFrom('home_members')
    .select('user_id')
    .where('home_id', '=', homeId)
    .where('role', 'in', MANAGING_ROLES)
    .where('user_id', '!=', exceptUserId)
    .executeTakeFirst();
  if (!other) throw hubError('HUB_ERR_LAST_OWNER');
}

