/**
 * Homes (the hub's tenants) and who belongs to them: `/api/homes`, `/api/homes/{id}/members`
 * and the invitations that add members (`/api/homes/{id}/invitations`, `/api/invitations`).
 *
 * @module
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely, Transaction } from 'kysely';
import { createRouter, errors, json, jsonBody } from '../api/rest/index.js';
import { homeRole, inVisibleHomes, requireHomeRole, requireSession, roleAtLeast } from '../auth/index.js';
import { createContext, type EventBus } from '../bus/index.js';
import type { Database } from '../db/index.js';
import { hubError } from '../errors/index.js';
import { invitationRoutes, invite, presentInvitation } from './invitations.js';
import { lockHome, MANAGING_ROLES, memberRole, requireAnotherManager, requireCanManage, requireHome } from './membership.js';
import {
  HomeIdParam,
  HomeInput,
  HomePatch,
  HomeSchema,
  InvitationSchema,
  MemberInput,
  MemberParam,
  MemberSchema,
  presentHome,
} from './schemas.js';

export { requireHome } from './membership.js';
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
    summary: "Invite someone to the home, or change a member's role (owner)",
    description:
      'For an email that is not a member, creates (or renews) an invitation the person accepts at ' +
      '`/api/invitations`; the answer is the same whether or not the email has an account. For a ' +
      "member's email, changes their role. Nobody can grant a role above their own.",
    request: { params: HomeIdParam, body: jsonBody(MemberInput) },
    responses: {
      200: json(MemberSchema, 'Role changed'),
      202: json(InvitationSchema, 'Invited'),
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

export function homeRoutes({ db, bus }: { db: Kysely<Database>; bus: EventBus }) {
  const router = createRouter();
  router.route('/', invitationRoutes({ db }));

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
    const principal = c.var.principal;
    const callerRole = requireHomeRole(principal, id, 'owner');
    if (!roleAtLeast(callerRole, role)) throw hubError('HUB_ERR_FORBIDDEN', `You cannot grant the ${role} role`);
    const outcome = await db.transaction().execute(async (trx) => {
      await lockHome(trx, id);
      // Only members are looked up by email: whether anyone else has an account must not show.
      const member = await memberByEmail(trx, id, email);
      if (!member) return { invitation: await invite(trx, { homeId: id, email, role, invitedBy: principal.user.id }) };
      requireCanManage(callerRole, member.role);
      if (!MANAGING_ROLES.includes(role)) await requireAnotherManager(trx, id, member.user_id);
      await trx.updateTable('home_members').set({ role }).where('home_id', '=', id).where('user_id', '=', member.user_id).execute();
      return { member: { ...member, role } };
    });
    if (outcome.invitation) {
      c.var.log.info({ homeId: id, invitationId: outcome.invitation.id, role }, 'member invited');
      return c.json(presentInvitation(outcome.invitation), 202);
    }
    const { member } = outcome;
    c.var.log.info({ homeId: id, userId: member.user_id, role }, 'member role changed');
    return c.json({ ...member, created_at: member.created_at.toISOString() }, 200);
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

async function memberByEmail(trx: Transaction<Database>, homeId: string, email: string) {
  return trx
    .selectFrom('home_members')
    .innerJoin('users', 'users.id', 'home_members.user_id')
    .select(['users.id as user_id', 'users.email', 'users.name', 'home_members.role', 'home_members.created_at'])
    .where('home_members.home_id', '=', homeId)
    .where('users.email', '=', email)
    .executeTakeFirst();
}
