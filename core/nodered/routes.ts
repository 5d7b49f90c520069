/**
 * `/api/nodered/versions`: every deploy of the flows, who made it and when; restore one.
 * For administrators and users allowed to automate.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import RED from 'node-red';
import { createRouter, errors, json, jsonBody } from '../api/rest/index.js';
import type { Principal } from '../auth/index.js';
import { jsonb, type Database } from '../db/index.js';
import { hubError } from '../errors/index.js';

const Version = z
  .object({
    id: z.string(),
    deployed_at: z.iso.datetime(),
    deployed_by: z.object({ id: z.uuid(), email: z.string() }).nullable(),
    nodes: z.number().int().describe('Nodes and tabs in this version'),
    restored_from: z.string().nullable(),
  })
  .openapi('FlowVersion');

/** The example flows shipped in `flows/`, importable by name. */
export const EXAMPLE_FLOWS_DIR = fileURLToPath(new URL('../../flows', import.meta.url));

const tags = ['Node-RED'];
const routes = {
  examples: createRoute({
    method: 'get',
    path: '/nodered/flows/examples',
    tags,
    summary: 'Example flows that can be imported',
    responses: { 200: json(z.array(z.object({ name: z.string(), nodes: z.number().int() })), 'Examples'), ...errors(401, 403) },
  }),
  import: createRoute({
    method: 'post',
    path: '/nodered/flows/import',
    tags,
    summary: 'Add an example flow to the running flows (its nodes get fresh ids) and deploy',
    request: { body: jsonBody(z.object({ name: z.string().regex(/^[a-z0-9-]{1,64}$/, 'an example name from /nodered/flows/examples') }).strict()) },
    responses: { 200: json(Version, 'The new version, now running'), ...errors(400, 401, 403, 404, 409, 415) },
  }),
  list: createRoute({
    method: 'get',
    path: '/nodered/versions',
    tags,
    summary: 'Deployed versions of the flows, newest first (the first one runs)',
    request: { query: z.object({ limit: z.coerce.number().int().min(1).max(200).default(20) }) },
    responses: { 200: json(z.array(Version), 'Versions'), ...errors(400, 401, 403) },
  }),
  restore: createRoute({
    method: 'post',
    path: '/nodered/versions/{id}/restore',
    tags,
    summary: 'Deploy an earlier version again (as a new version)',
    request: { params: z.object({ id: z.string().regex(/^\d{1,18}$/) }) },
    responses: { 200: json(Version, 'The new version, now running'), ...errors(400, 401, 403, 404, 409) },
  }),
};

/** Administrators, and users an administrator allowed to automate; sessions only (API tokens are for tools). */
export function mayAutomate(principal: Principal): boolean {
  return principal.via.kind === 'session' && (principal.isAdmin || principal.user.can_automate);
}

export function requireAutomation(principal: Principal): void {
  if (!mayAutomate(principal)) {
    throw hubError('HUB_ERR_FORBIDDEN', 'Automations need an administrator, or a user allowed to automate');
  }
}

export function noderedRoutes(db: Kysely<Database>, running: () => boolean) {
  const router = createRouter();
  const versions = () =>
    db
      .selectFrom('nodered_deployments')
      .leftJoin('users', 'users.id', 'nodered_deployments.deployed_by')
      .select(['nodered_deployments.id', 'deployed_at', 'deployed_by', 'users.email', 'restored_from', (eb) => eb.fn<number>('jsonb_array_length', [eb.ref('flows')]).as('nodes')]);
  const present = (row: Awaited<ReturnType<ReturnType<typeof versions>['executeTakeFirstOrThrow']>>) => ({
    id: String(row.id),
    deployed_at: row.deployed_at.toISOString(),
    deployed_by: row.deployed_by && row.email ? { id: row.deployed_by, email: row.email } : null,
    nodes: Number(row.nodes),
    restored_from: row.restored_from === null ? null : String(row.restored_from),
  });

  const examples = async () =>
    (await readdir(EXAMPLE_FLOWS_DIR).catch(() => [] as string[])).filter((file) => file.endsWith('.json')).map((file) => file.slice(0, -5)).sort();
  const readExample = async (name: string) => JSON.parse(await readFile(path.join(EXAMPLE_FLOWS_DIR, `${name}.json`), 'utf8')) as Record<string, unknown>[];

  router.openapi(routes.examples, async (c) => {
    requireAutomation(c.var.principal);
    const list = await Promise.all((await examples()).map(async (name) => ({ name, nodes: (await readExample(name)).length })));
    return c.json(list, 200);
  });

  router.openapi(routes.import, async (c) => {
    const principal = c.var.principal;
    requireAutomation(principal);
    if (!running()) throw hubError('HUB_ERR_NODERED_OFF');
    const { name } = c.req.valid('json');
    if (!(await examples()).includes(name)) throw hubError('HUB_ERR_NOT_FOUND', `No example flow named ${name}`);
    const current = await RED.runtime.flows.getFlows({});
    const flows = [...current.flows, ...withFreshIds(await readExample(name))];
    await RED.runtime.flows.setFlows({ flows: { flows }, deploymentType: 'full', user: { username: principal.user.email, hubUserId: principal.user.id } });
    c.var.log.info({ example: name }, 'example flow imported');
    return c.json(present(await versions().orderBy('nodered_deployments.id', 'desc').executeTakeFirstOrThrow()), 200);
  });

  router.openapi(routes.list, async (c) => {
    requireAutomation(c.var.principal);
    const rows = await versions().orderBy('nodered_deployments.id', 'desc').limit(c.req.valid('query').limit).execute();
    return c.json(rows.map(present), 200);
  });

  router.openapi(routes.restore, async (c) => {
    const principal = c.var.principal;
    requireAutomation(principal);
    if (!running()) throw hubError('HUB_ERR_NODERED_OFF');
    const { id } = c.req.valid('param');
    const old = await db.selectFrom('nodered_deployments').select(['flows', 'credentials']).where('id', '=', id).executeTakeFirst();
    if (!old) throw hubError('HUB_ERR_VERSION_NOT_FOUND');
    const row = await db
      .insertInto('nodered_deployments')
      .values({ flows: jsonb(old.flows), credentials: jsonb(old.credentials), deployed_by: principal.user.id, restored_from: id })
      .returning('id')
      .executeTakeFirstOrThrow();
    // 'reload' makes Node-RED read the flows back from storage: the row just written.
    await RED.runtime.flows.setFlows({ deploymentType: 'reload', user: { username: principal.user.email } });
    c.var.log.info({ version: row.id, restoredFrom: id }, 'node-red flows restored');
    return c.json(present(await versions().where('nodered_deployments.id', '=', row.id).executeTakeFirstOrThrow()), 200);
  });
  return router;
}

/** The same nodes with new ids (and every reference to them), so an import never clashes. */
function withFreshIds(nodes: Record<string, unknown>[]): Record<string, unknown>[] {
  const ids = new Map(nodes.map((node) => [String(node.id), randomBytes(8).toString('hex')]));
  const renamed = JSON.stringify(nodes, (_key, value: unknown) => (typeof value === 'string' && ids.has(value) ? ids.get(value) : value));
  return JSON.parse(renamed) as Record<string, unknown>[];
}
