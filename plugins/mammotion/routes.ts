/**
 * `/api/plugins/mammotion/accounts` (link, list, unlink) and `/sessions`. Every query is scoped to
 * the caller's homes; another home's ids answer 404. Tokens and passwords are never returned.
 *
 * @module
 */
import { createRoute, z } from '@hono/zod-openapi';
import { errors, json, jsonBody, type HubRouter } from '../../core/api/rest/index.js';
import { inVisibleHomes, requireHomeRole, requireSession } from '../../core/auth/index.js';
import { hubError } from '../../core/errors/index.js';
import type { AccountLink } from './accounts.js';
import type { MammotionDb } from './tables.js';

const tags = ['Mammotion'];

const LinkInput = z
  .object({
    home_id: z.uuid(),
    email: z.string().trim().min(3).max(254).describe('The Mammotion account (a second account the mower is shared with is best)'),
    password: z.string().min(1).max(200).describe('Used once to sign in; never stored'),
  })
  .strict()
  .openapi('MammotionLinkInput');

const Mower = z.object({ iot_id: z.string(), entity_id: z.string(), model: z.string(), firmware: z.string().nullable() });
const Account = z
  .object({
    id: z.uuid(),
    home_id: z.uuid(),
    email: z.string(),
    status: z.string().describe('connecting | connected | reconnecting | reauth_required | failed'),
    status_detail: z.string().nullable(),
    mowers: z.array(Mower),
    created_at: z.iso.datetime(),
  })
  .openapi('MammotionAccount');

const Session = z
  .object({
    id: z.uuid(),
    home_id: z.uuid(),
    entity_id: z.string(),
    started_at: z.iso.datetime(),
    ended_at: z.iso.datetime().nullable(),
    area_m2: z.number(),
    minutes: z.number(),
    zones: z.array(z.string()),
    outcome: z.enum(['finished', 'interrupted']).nullable().describe('null while mowing'),
  })
  .openapi('MammotionMowingSession');

const IdParam = z.object({ id: z.uuid() });
const routes = {
  link: createRoute({
    method: 'post',
    path: '/accounts',
    tags,
    summary: 'Link a Mammotion account to a home (owner); its mowers appear as lawn_mower entities',
    request: { body: jsonBody(LinkInput) },
    responses: { 201: json(Account, 'Linked'), ...errors(400, 401, 403, 404, 409, 415, 422, 502) },
  }),
  list: createRoute({
    method: 'get',
    path: '/accounts',
    tags,
    summary: 'Linked accounts of your homes',
    request: { query: z.object({ home_id: z.uuid().optional() }) },
    responses: { 200: json(z.array(Account), 'Accounts'), ...errors(400, 401) },
  }),
  unlink: createRoute({
    method: 'delete',
    path: '/accounts/{id}',
    tags,
    summary: 'Unlink an account (owner); its mower entities are removed, sessions kept',
    request: { params: IdParam },
    responses: { 204: { description: 'Unlinked' }, ...errors(400, 401, 403, 404) },
  }),
  sessions: createRoute({
    method: 'get',
    path: '/sessions',
    tags,
    summary: 'Mowing sessions of your homes, newest first',
    request: {
      query: z.object({
        home_id: z.uuid().optional(),
        entity_id: z.string().max(255).optional(),
        start: z.iso.datetime({ offset: true }).optional(),
        end: z.iso.datetime({ offset: true }).optional(),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
    },
    responses: { 200: json(z.array(Session), 'Sessions'), ...errors(400, 401, 404) },
  }),
};

export interface AccountRouteDeps {
  db: MammotionDb;
  links: Map<string, AccountLink>;
  link(homeId: string, email: string, password: string, userId: string | null): Promise<AccountLink>;
  closeLink(id: string, unlinked: boolean): Promise<void>;
}

export function accountRoutes(router: HubRouter, { db, links, link, closeLink }: AccountRouteDeps): void {
  const present = async (ids: string[]) => {
    if (ids.length === 0) return [];
    const accounts = await db.selectFrom('mammotion_accounts').select(['id', 'home_id', 'email', 'status', 'status_detail', 'created_at']).where('id', 'in', ids).orderBy('created_at').execute();
    const mowers = await db.selectFrom('mammotion_mowers').selectAll().where('account_id', 'in', ids).orderBy('device_name').execute();
    return accounts.map((account) => ({
      ...account,
      status: links.get(account.id)?.status ?? account.status,
      created_at: account.created_at.toISOString(),
      mowers: mowers
        .filter((m) => m.account_id === account.id)
        .map((m) => ({ iot_id: m.iot_id, entity_id: m.entity_id, model: m.model, firmware: m.firmware })),
    }));
  };

  router.openapi(routes.link, async (c) => {
    const principal = c.var.principal;
    requireSession(principal);
    const input = c.req.valid('json');
    requireHomeRole(principal, input.home_id, 'owner');
    const linked = await link(input.home_id, input.email, input.password, principal.user.id);
    c.var.log.info({ account: linked.row.id, homeId: input.home_id }, 'Mammotion account linked');
    const [account] = await present([linked.row.id]);
    return c.json(account!, 201);
  });

  router.openapi(routes.list, async (c) => {
    const { home_id } = c.req.valid('query');
    if (home_id) requireHomeRole(c.var.principal, home_id, 'viewer');
    let query = db.selectFrom('mammotion_accounts').select('id').where((eb) => inVisibleHomes(eb, c.var.principal, 'home_id'));
    if (home_id) query = query.where('home_id', '=', home_id);
    return c.json(await present((await query.execute()).map((r) => r.id)), 200);
  });

  router.openapi(routes.unlink, async (c) => {
    const { id } = c.req.valid('param');
    const account = await db.selectFrom('mammotion_accounts').select(['id', 'home_id']).where('id', '=', id).executeTakeFirst();
    if (!account) throw hubError('HUB_ERR_ACCOUNT_NOT_FOUND');
    try {
      requireHomeRole(c.var.principal, account.home_id, 'owner');
    } catch (error) {
      if ((error as { code?: string }).code === 'HUB_ERR_HOME_NOT_FOUND') throw hubError('HUB_ERR_ACCOUNT_NOT_FOUND');
      throw error;
    }
    await closeLink(id, true);
    await db.deleteFrom('mammotion_accounts').where('id', '=', id).execute();
    c.var.log.info({ account: id }, 'Mammotion account unlinked');
    return c.body(null, 204);
  });

  router.openapi(routes.sessions, async (c) => {
    const { home_id, entity_id, start, end, limit } = c.req.valid('query');
    if (home_id) requireHomeRole(c.var.principal, home_id, 'viewer');
    let query = db.selectFrom('mammotion_sessions').selectAll().where((eb) => inVisibleHomes(eb, c.var.principal, 'home_id'));
    if (home_id) query = query.where('home_id', '=', home_id);
    if (entity_id) query = query.where('entity_id', '=', entity_id);
    if (start) query = query.where('started_at', '>=', new Date(start));
    if (end) query = query.where('started_at', '<', new Date(end));
    const rows = await query.orderBy('started_at', 'desc').limit(limit).execute();
    return c.json(
      rows.map((r) => ({ ...r, started_at: r.started_at.toISOString(), ended_at: r.ended_at?.toISOString() ?? null })).map(({ iot_id: _, ...r }) => r),
      200,
    );
  });
}
