/** `/api/states` and `/api/history/period`: Home Assistant's REST shapes. */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { createRouter, errors, json, jsonBody } from '../api/rest/index.js';
import { homeRole, requireHomeRole, resolveHome, roleAtLeast, type Principal } from '../auth/index.js';
import { createContext } from '../bus/index.js';
import { requireHome } from '../homes/index.js';
import type { Database, Role } from '../db/index.js';
import { hubError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { historyPeriod } from './history.js';
import { isValidEntityId, type StateMachine } from './index.js';

const ContextSchema = z
  .object({ id: z.string(), parent_id: z.string().nullable(), user_id: z.string().nullable() })
  .openapi('Context');
export const StateSchema = z
  .object({
    entity_id: z.string(),
    state: z.string(),
    attributes: z.record(z.string(), z.unknown()),
    last_changed: z.iso.datetime(),
    last_updated: z.iso.datetime(),
    context: ContextSchema,
  })
  .openapi('State');
const StateInput = z
  .object({
    state: z.string().max(255),
    attributes: z.record(z.string(), z.unknown()).default({}),
    home_id: z.uuid().optional().describe("The entity's home; needed for a new entity when you belong to several homes"),
  })
  .openapi('StateInput');
const EntityParam = z.object({ entity_id: z.string().max(255) });
const HistoryEntry = z.union([StateSchema, z.object({ state: z.string(), last_changed: z.iso.datetime() })]);
const flag = z.string().optional().describe('Present = on');
const YEAR_10000_MS = 253_402_300_800_000;
/** A timestamp PostgreSQL can store and compare (years 1970 to 9999). */
const Timestamp = z.iso
  .datetime({ offset: true })
  .refine((v) => Date.parse(v) >= 0 && Date.parse(v) < YEAR_10000_MS, 'must lie between 1970 and 9999');
const HistoryQuery = z.object({
  filter_entity_id: z
    .string()
    .optional()
    .refine((v) => v === undefined || v.split(',').length <= 1000, 'at most 1000 entity ids')
    .describe('Comma-separated entity ids; default: all you can see'),
  end_time: Timestamp.optional().describe('Default: now'),
  minimal_response: flag,
  no_attributes: flag,
  significant_changes_only: flag,
});

const tags = ['States'];
const routes = {
  list: createRoute({
    method: 'get',
    path: '/states',
    tags,
    summary: 'The states of every entity you can see',
    responses: { 200: json(z.array(StateSchema), 'States'), ...errors(401) },
  }),
  get: createRoute({
    method: 'get',
    path: '/states/{entity_id}',
    tags,
    summary: "One entity's state",
    request: { params: EntityParam },
    responses: { 200: json(StateSchema, 'The state'), ...errors(400, 401, 404) },
  }),
  set: createRoute({
    method: 'post',
    path: '/states/{entity_id}',
    tags,
    summary: 'Create or update an entity’s state (admins of its home)',
    description: 'Sets the representation only; it does not talk to a device.',
    request: { params: EntityParam, body: jsonBody(StateInput) },
    responses: {
      200: json(StateSchema, 'Updated'),
      201: json(StateSchema, 'Created'),
      ...errors(400, 401, 403, 404, 409, 415),
    },
  }),
  remove: createRoute({
    method: 'delete',
    path: '/states/{entity_id}',
    tags,
    summary: 'Remove a virtual entity (admins of its home)',
    request: { params: EntityParam },
    responses: { 200: json(z.object({ message: z.string() }), 'Removed'), ...errors(400, 401, 403, 404, 409) },
  }),
  history: createRoute({
    method: 'get',
    path: '/history/period/{start}',
    tags: ['History'],
    summary: 'States over a period: one array per entity, oldest first',
    request: { params: z.object({ start: Timestamp }), query: HistoryQuery },
    responses: { 200: json(z.array(z.array(HistoryEntry)), 'History'), ...errors(400, 401) },
  }),
  historyLastDay: createRoute({
    method: 'get',
    path: '/history/period',
    tags: ['History'],
    summary: 'States over the last day',
    request: { query: HistoryQuery },
    responses: { 200: json(z.array(z.array(HistoryEntry)), 'History'), ...errors(400, 401) },
  }),
};

// Writing a virtual entity needs this role in its home.
const WRITE_ROLE: Role = 'admin';

function requireValidEntityId(entityId: string): void {
  if (!isValidEntityId(entityId)) throw hubError('HUB_ERR_INVALID_ENTITY_ID', `Invalid entity id "${entityId}"`);
}

/** The caller's entry; an entity of a home they cannot see answers exactly like one that does not exist. */
function visibleEntry(states: StateMachine, principal: Principal, entityId: string) {
  requireValidEntityId(entityId);
  const entry = states.entry(entityId);
  if (!entry || !homeRole(principal, entry.homeId)) throw hubError('HUB_ERR_ENTITY_NOT_FOUND', `Entity ${entityId} not found`);
  return entry;
}

/**
 * Refuses callers who cannot write entities in any home before anything is looked up, so the
 * answer cannot depend on whether the entity exists somewhere they cannot see.
 */
function requireWriterSomewhere(principal: Principal): void {
  if (principal.isAdmin || [...principal.homes.values()].some((role) => roleAtLeast(role, WRITE_ROLE))) return;
  throw hubError('HUB_ERR_FORBIDDEN', `Writing entities needs the ${WRITE_ROLE} role in a home`);
}

export function stateRoutes({ db, states }: { db: Kysely<Database>; states: StateMachine }) {
  const router = createRouter();

  router.openapi(routes.list, (c) => c.json(states.visibleTo(c.var.principal), 200));

  router.openapi(routes.get, (c) => c.json(visibleEntry(states, c.var.principal, c.req.valid('param').entity_id).state, 200));

  router.openapi(routes.set, async (c) => {
    const principal = c.var.principal;
    const { entity_id } = c.req.valid('param');
    requireValidEntityId(entity_id);
    requireWriterSomewhere(principal);
    const body = c.req.valid('json');
    const existing = states.entry(entity_id);
    // Entity ids are one namespace for the whole hub: an id another home uses cannot be created here.
    if (existing && !homeRole(principal, existing.homeId)) throw hubError('HUB_ERR_ENTITY_ID_TAKEN');
    const homeId = existing?.homeId ?? resolveHome(principal, body.home_id);
    if (body.home_id && body.home_id !== homeId) throw hubError('HUB_ERR_VALIDATION', `${entity_id} belongs to another home`);
    requireHomeRole(principal, homeId, WRITE_ROLE);
    if (!existing) await requireHome(db, homeId);
    const state = states.set(entity_id, body.state, body.attributes, {
      homeId,
      owner: 'api', // a plugin's entity answers 409: only the plugin may change it
      context: createContext({ user_id: principal.user.id }),
    });
    c.header('Location', `/api/states/${entity_id}`);
    return existing ? c.json(state, 200) : c.json(state, 201);
  });

  router.openapi(routes.remove, (c) => {
    const principal = c.var.principal;
    const { entity_id } = c.req.valid('param');
    requireValidEntityId(entity_id);
    requireWriterSomewhere(principal);
    const entry = visibleEntry(states, principal, entity_id);
    requireHomeRole(principal, entry.homeId, WRITE_ROLE);
    if (entry.owner !== 'api') throw hubError('HUB_ERR_ENTITY_OWNED', `${entity_id} is managed by ${entry.owner}; disable the plugin instead`);
    states.remove(entity_id, createContext({ user_id: principal.user.id }));
    return c.json({ message: 'Entity removed.' }, 200);
  });

  const history = async (principal: Principal, start: Date, query: z.infer<typeof HistoryQuery>, log: Logger) => {
    // Include the latest changes; if they cannot be written now, answer with what is stored.
    await states.flush().catch((error: unknown) => log.warn({ err: error }, 'history read before pending states were written'));
    return historyPeriod(db, principal, {
      start,
      end: query.end_time ? new Date(query.end_time) : new Date(),
      entityIds: query.filter_entity_id?.split(',').map((s) => s.trim()).filter(Boolean) ?? [],
      minimalResponse: query.minimal_response !== undefined,
      noAttributes: query.no_attributes !== undefined,
      significantChangesOnly: query.significant_changes_only !== undefined,
    });
  };
  router.openapi(routes.history, async (c) =>
    c.json(await history(c.var.principal, new Date(c.req.valid('param').start), c.req.valid('query'), c.var.log), 200),
  );
  router.openapi(routes.historyLastDay, async (c) =>
    c.json(await history(c.var.principal, new Date(Date.now() - 86_400_000), c.req.valid('query'), c.var.log), 200),
  );

  return router;
}
