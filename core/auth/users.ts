/** `/api/users`: hub administrators manage accounts. */
import { createRoute, z } from '@hono/zod-openapi';
import { sql, type Kysely } from 'kysely';
import { createRouter, errors, json, jsonBody, presentUser, UserSchema } from '../api/rest/index.js';
import type { Database, User } from '../db/index.js';
import { hubError } from '../errors/index.js';
import { hashPassword } from './password.js';
import { requireAdmin, toPublicUser } from './principal.js';
import { Email, insertUser, NewPassword } from './routes.js';
import { invalidateUserSessions } from './sessions.js';

const NewUser = z
  .object({
    email: Email,
    password: NewPassword,
    name: z.string().trim().max(200).default(''),
    is_admin: z.boolean().default(false),
    can_automate: z.boolean().default(false),
  })
  .openapi('NewUser');
const UserPatch = z
  .object({
    name: z.string().trim().max(200).optional(),
    password: NewPassword.optional(),
    is_admin: z.boolean().optional(),
    can_automate: z.boolean().optional(),
    disabled: z.boolean().optional(),
  })
  .strict()
  .openapi('UserPatch');

const tags = ['Users'];
const routes = {
  list: createRoute({
    method: 'get',
    path: '/users',
    tags,
    summary: 'All users (admin)',
    responses: { 200: json(z.array(UserSchema), 'Users by email'), ...errors(401, 403) },
  }),
  create: createRoute({
    method: 'post',
    path: '/users',
    tags,
    summary: 'Create a user (admin)',
    request: { body: jsonBody(NewUser) },
    responses: { 201: json(UserSchema, 'Created'), ...errors(400, 401, 403, 409, 415) },
  }),
  update: createRoute({
    method: 'patch',
    path: '/users/{id}',
    tags,
    summary: 'Rename, promote, disable or reset the password of a user (admin)',
    description: 'Disabling a user or changing their password ends all their sessions.',
    request: { params: z.object({ id: z.uuid() }), body: jsonBody(UserPatch) },
    responses: { 200: json(UserSchema, 'Updated'), ...errors(400, 401, 403, 404, 409, 415) },
  }),
};

export function userRoutes({ db }: { db: Kysely<Database> }) {
  const router = createRouter();

  router.openapi(routes.list, async (c) => {
    requireAdmin(c.var.principal);
    const users = await db.selectFrom('users').selectAll().orderBy('email').execute();
    return c.json(users.map((u) => presentUser(toPublicUser(u))), 200);
  });

  router.openapi(routes.create, async (c) => {
    requireAdmin(c.var.principal);
    const input = c.req.valid('json');
    const user = await insertUser(db, { ...input, isAdmin: input.is_admin, canAutomate: input.can_automate });
    c.var.log.info({ userId: user.id, isAdmin: user.is_admin }, 'user created');
    return c.json(presentUser(toPublicUser(user)), 201);
  });

  router.openapi(routes.update, async (c) => {
    requireAdmin(c.var.principal);
    const { id } = c.req.valid('param');
    const patch = c.req.valid('json');
    const passwordHash = patch.password === undefined ? undefined : await hashPassword(patch.password);
    const user = await db.transaction().execute(async (trx) => {
      // One admin change at a time, so two admins cannot demote each other at once.
      await sql`select pg_advisory_xact_lock(hashtext('hub_admins'))`.execute(trx);
      const current = await trx.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
      if (!current) throw hubError('HUB_ERR_USER_NOT_FOUND');
      const losesAdmin = current.is_admin && !current.disabled && (patch.is_admin === false || patch.disabled === true);
      if (losesAdmin) await requireAnotherActiveAdmin(trx, id);
      return trx
        .updateTable('users')
        .set({
          name: patch.name,
          is_admin: patch.is_admin,
          can_automate: patch.can_automate,
          disabled: patch.disabled,
          password_hash: passwordHash,
          updated_at: new Date(),
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
    });
    if (patch.password !== undefined || patch.disabled) await invalidateUserSessions(db, id);
    c.var.log.info({ userId: id, changed: Object.keys(patch) }, 'user updated');
    return c.json(presentUser(toPublicUser(user)), 200);
  });

  return router;
}

async function requireAnotherActiveAdmin(db: Kysely<Database>, exceptUserId: User['id']): Promise<void> {
  const other = await db
    .selectFrom('users')
    .select('id')
    .where('is_admin', '=', true)
    .where('disabled', '=', false)
    .where('id', '!=', exceptUserId)
    .executeTakeFirst();
  if (!other) throw hubError('HUB_ERR_LAST_ADMIN');
}
