/**
 * Invitations: how someone joins a home. An owner invites an email with a role; whoever holds
 * an account with that email (now, or after registering) sees the invitation and accepts or
 * declines it. The owner's request answers the same whether or not the email has an account,
 * so it reveals nothing about who uses the hub.
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely, Selectable, Transaction } from 'kysely';
import { createRouter, errors, json } from '../api/rest/index.js';
import { requireHomeRole, requireSession, roleAtLeast, type Principal } from '../auth/index.js';
import type { Database, HomeInvitationsTable, Role } from '../db/index.js';
import { hubError } from '../errors/index.js';
import { lockHome, memberRole, requireCanManage, requireHome } from './membership.js';
import {
  HomeInvitationParam,
  HomeSchema,
  InvitationParam,
  InvitationSchema,
  presentHome,
  ReceivedInvitationSchema,
} from './schemas.js';

/** How long an invitation can be accepted. */
const INVITATION_LIFETIME_MS = 14 * 86_400_000;
/** Pending invitations one home may hold, so nobody can make the hub store rows without end. */
const MAX_PENDING_INVITATIONS = 50;

/** An invitation as the home's owners see it. */
export function presentInvitation(row: Selectable<HomeInvitationsTable>): z.infer<typeof InvitationSchema> {
  return { ...row, created_at: row.created_at.toISOString(), expires_at: row.expires_at.toISOString() };
}

/**
 * Invites `email` to the home with `role`, or renews the pending invitation of that email.
 * Call inside the transaction that holds {@link lockHome}, so the cap holds under concurrency.
 */
export async function invite(trx: Transaction<Database>, input: { homeId: string; email: string; role: Role; invitedBy: string }) {
  const now = new Date();
  await trx.deleteFrom('home_invitations').where('home_id', '=', input.homeId).where('expires_at', '<=', now).execute();
  const others = await trx
    .selectFrom('home_invitations')
    .select((eb) => eb.fn.countAll<string>().as('count'))
    .where('home_id', '=', input.homeId)
    .where('email', '!=', input.email)
    .executeTakeFirstOrThrow();
  if (Number(others.count) >= MAX_PENDING_INVITATIONS) {
    throw hubError('HUB_ERR_INVITATION_LIMIT', `A home holds at most ${MAX_PENDING_INVITATIONS} pending invitations`);
  }
  const renewal = { role: input.role, invited_by: input.invitedBy, created_at: now, expires_at: new Date(now.getTime() + INVITATION_LIFETIME_MS) };
  return trx
    .insertInto('home_invitations')
    .values({ home_id: input.homeId, email: input.email, ...renewal })
    .onConflict((oc) => oc.columns(['home_id', 'email']).doUpdateSet(renewal))
    .returningAll()
    .executeTakeFirstOrThrow();
}

const tags = ['Invitations'];
const routes = {
  homeInvitations: createRoute({
    method: 'get',
    path: '/homes/{id}/invitations',
    tags,
    summary: "The home's pending invitations (owner)",
    request: { params: z.object({ id: z.uuid() }) },
    responses: { 200: json(z.array(InvitationSchema), 'Pending invitations, oldest first'), ...errors(400, 401, 403, 404) },
  }),
  revoke: createRoute({
    method: 'delete',
    path: '/homes/{id}/invitations/{invitation_id}',
    tags,
    summary: 'Revoke a pending invitation (owner)',
    request: { params: HomeInvitationParam },
    responses: { 204: { description: 'Revoked' }, ...errors(400, 401, 403, 404) },
  }),
  mine: createRoute({
    method: 'get',
    path: '/invitations',
    tags,
    summary: 'Pending invitations to the signed-in user',
    responses: { 200: json(z.array(ReceivedInvitationSchema), 'Pending invitations, oldest first'), ...errors(401, 403) },
  }),
  accept: createRoute({
    method: 'post',
    path: '/invitations/{id}/accept',
    tags,
    summary: 'Accept an invitation: you become a member of the home with its role',
    request: { params: InvitationParam },
    responses: { 200: json(HomeSchema, 'The home, with your role in it'), ...errors(400, 401, 403, 404) },
  }),
  decline: createRoute({
    method: 'post',
    path: '/invitations/{id}/decline',
    tags,
    summary: 'Decline an invitation',
    request: { params: InvitationParam },
    responses: { 204: { description: 'Declined' }, ...errors(400, 401, 403, 404) },
  }),
};

/** `/api/homes/{id}/invitations` and `/api/invitations`. */
export function invitationRoutes({ db }: { db: Kysely<Database> }) {
  const router = createRouter();

  router.openapi(routes.homeInvitations, async (c) => {
    const { id } = c.req.valid('param');
    requireHomeRole(c.var.principal, id, 'owner');
    await requireHome(db, id);
    const rows = await db
      .selectFrom('home_invitations')
      .selectAll()
      .where('home_id', '=', id)
      .where('expires_at', '>', new Date())
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return c.json(rows.map(presentInvitation), 200);
  });

  router.openapi(routes.revoke, async (c) => {
    const { id, invitation_id } = c.req.valid('param');
    const callerRole = requireHomeRole(c.var.principal, id, 'owner');
    await db.transaction().execute(async (trx) => {
      const invitation = await trx
        .selectFrom('home_invitations')
        .select('role')
        .where('id', '=', invitation_id)
        .where('home_id', '=', id)
        .executeTakeFirst();
      if (!invitation) throw hubError('HUB_ERR_INVITATION_NOT_FOUND');
      requireCanManage(callerRole, invitation.role);
      await trx.deleteFrom('home_invitations').where('id', '=', invitation_id).execute();
    });
    c.var.log.info({ homeId: id, invitationId: invitation_id }, 'invitation revoked');
    return c.body(null, 204);
  });

  router.openapi(routes.mine, async (c) => {
    const principal = c.var.principal;
    requireSession(principal);
    const rows = await db
      .selectFrom('home_invitations')
      .innerJoin('homes', 'homes.id', 'home_invitations.home_id')
      .innerJoin('users as inviter', 'inviter.id', 'home_invitations.invited_by')
      .select([
        'home_invitations.id',
        'homes.id as home_id',
        'homes.name as home_name',
        'home_invitations.role',
        'inviter.name as inviter_name',
        'inviter.email as inviter_email',
        'home_invitations.created_at',
        'home_invitations.expires_at',
      ])
      .where('home_invitations.email', '=', principal.user.email)
      .where('home_invitations.expires_at', '>', new Date())
      .orderBy('home_invitations.created_at')
      .orderBy('home_invitations.id')
      .execute();
    return c.json(
      rows.map((r) => ({
        id: r.id,
        home: { id: r.home_id, name: r.home_name },
        role: r.role,
        invited_by: { name: r.inviter_name, email: r.inviter_email },
        created_at: r.created_at.toISOString(),
        expires_at: r.expires_at.toISOString(),
      })),
      200,
    );
  });

  router.openapi(routes.accept, async (c) => {
    const principal = c.var.principal;
    requireSession(principal);
    const { id } = c.req.valid('param');
    const joined = await db.transaction().execute(async (trx) => {
      const invitation = await pendingInvitationTo(trx, principal, id);
      await lockHome(trx, invitation.home_id);
      // Accepting consumes the invitation whatever happens next.
      await trx.deleteFrom('home_invitations').where('id', '=', id).execute();
      if (!(await inviterStillMayGrant(trx, invitation.home_id, invitation.invited_by, invitation.role))) return undefined;
      const role = (await memberRole(trx, invitation.home_id, principal.user.id)) ?? invitation.role;
      await trx
        .insertInto('home_members')
        .values({ home_id: invitation.home_id, user_id: principal.user.id, role })
        .onConflict((oc) => oc.columns(['home_id', 'user_id']).doNothing())
        .execute();
      return { homeId: invitation.home_id, role };
    });
    // An invitation whose inviter has since lost the right to grant its role is void.
    if (!joined) throw hubError('HUB_ERR_INVITATION_NOT_FOUND', 'The invitation is no longer valid; ask for a new one');
    c.var.log.info({ homeId: joined.homeId, userId: principal.user.id, role: joined.role }, 'invitation accepted');
    const home = await requireHome(db, joined.homeId);
    return c.json(presentHome(home, principal.isAdmin ? 'admin' : joined.role), 200);
  });

  router.openapi(routes.decline, async (c) => {
    const principal = c.var.principal;
    requireSession(principal);
    const { id } = c.req.valid('param');
    const result = await db
      .deleteFrom('home_invitations')
      .where('id', '=', id)
      .where('email', '=', principal.user.email)
      .executeTakeFirst();
    if (result.numDeletedRows === 0n) throw hubError('HUB_ERR_INVITATION_NOT_FOUND');
    c.var.log.info({ invitationId: id, userId: principal.user.id }, 'invitation declined');
    return c.body(null, 204);
  });

  return router;
}

/** The caller's pending invitation; anyone else's, or an expired one, is not found. */
async function pendingInvitationTo(trx: Transaction<Database>, principal: Principal, id: string) {
  const invitation = await trx
    .selectFrom('home_invitations')
    .selectAll()
    .where('id', '=', id)
    .where('email', '=', principal.user.email)
    .where('expires_at', '>', new Date())
    .executeTakeFirst();
  if (!invitation) throw hubError('HUB_ERR_INVITATION_NOT_FOUND');
  return invitation;
}

/** The inviter's authority must still hold when the invitee accepts: an active hub admin, or a member with at least the role. */
async function inviterStillMayGrant(trx: Transaction<Database>, homeId: string, inviterId: string, role: Role): Promise<boolean> {
  const inviter = await trx.selectFrom('users').select(['is_admin', 'disabled']).where('id', '=', inviterId).executeTakeFirst();
  if (!inviter || inviter.disabled) return false;
  if (inviter.is_admin) return true;
  const inviterRole = await memberRole(trx, homeId, inviterId);
  return inviterRole !== undefined && roleAtLeast(inviterRole, role);
}
