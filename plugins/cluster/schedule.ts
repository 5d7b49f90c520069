/**
 * Cluster mowing: a cluster's weekly plan, the job that starts a run when a plan's slot is due,
 * the run routes (start, cancel, history, usage per home) and the actions flows and the
 * `cluster-plan` Node-RED node call (`cluster.plan`, `cluster.next_yard`, `cluster.start_run`,
 * `cluster.cancel_run`). The walk itself is in `runs.ts`.
 *
 * Who may do what: a cluster belongs to its host home. Its members see it (viewer), its owners
 * change the plan and start or cancel runs; administrators may do everything. A cluster of a
 * home the caller cannot see answers 404, as if it did not exist.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { createRoute, z } from '@hono/zod-openapi';
import { CronExpressionParser } from 'cron-parser';
import { sql } from 'kysely';
import { errors, json, jsonBody } from '../../core/api/rest/index.js';
import { homeRole, requireHomeRole, type Principal } from '../../core/auth/index.js';
import type { Role } from '../../core/db/index.js';
import { hubError } from '../../core/errors/index.js';
import type { PluginContext } from '../../core/plugin.js';
import { ClusterRuns, SessionEndedData, type ClusterDb, type RunView } from './runs.js';
import type { ClusterTables, WeeklyPlan } from './tables.js';

export { ClusterRuns, type NextYard, type RunView, type YardMowed, type YardVisitView } from './runs.js';

/** What {@link clusterMowing} needs from the plugin entry. */
export interface ClusterMowingHooks {
  /** Refreshes the cluster's `next_yard` entity; called whenever the next yard changes. */
  positionChanged(clusterId: string): Promise<void>;
  /**
   * The planner's plan for a host home (members, rejected, route, warnings). When given, the
   * `cluster.plan` action serves it (the `cluster-plan` node's plan mode); otherwise the
   * action is not registered here.
   */
  plan?(hostHomeId: string): Promise<unknown>;
  /** How long one yard may take before its run fails. Default 6 h. */
  yardTimeoutMs?: number;
  /** How late a missed weekly slot still starts (the hub was down at its time). Default 1 h. */
  catchUpMs?: number;
  /** How often the job looks for due slots and stuck runs. Default every minute. */
  tickMs?: number;
  /** The clock for weekly plans; tests move it. Default the system clock. */
  now?(): Date;
}

const DEFAULTS = { yardTimeoutMs: 6 * 3_600_000, catchUpMs: 3_600_000, tickMs: 60_000 };

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** A weekly plan as the API takes it: days, a local time and the zone that time is in. */
export const WeeklyPlanSchema = z
  .object({
    days: z
      .array(z.number().int().min(0).max(6))
      .min(1)
      .max(7)
      .refine((days) => new Set(days).size === days.length, 'each day at most once')
      .describe('Week days the run starts on, 0 = Sunday … 6 = Saturday'),
    time: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time of day as HH:MM (24 h)').describe('Local start time, HH:MM'),
    timezone: z.string().max(64).refine(isTimeZone, 'must be an IANA time zone such as Europe/Berlin'),
  })
  .strict()
  .openapi('ClusterWeeklyPlan');

/** The weekly plan as a cron expression (minute hour * * days). */
function cronOf(plan: WeeklyPlan): string {
  const [hour, minute] = plan.time.split(':').map(Number);
  return `${minute} ${hour} * * ${[...plan.days].sort().join(',')}`;
}

/** The plan's latest start at or before `now`. */
export function latestSlot(plan: WeeklyPlan, now: Date): Date {
  // prev() looks strictly before its current date; a second on top makes `now` itself count.
  return CronExpressionParser.parse(cronOf(plan), { tz: plan.timezone, currentDate: new Date(now.getTime() + 1000) })
    .prev()
    .toDate();
}

/** The plan's first start after `now`. */
export function nextSlot(plan: WeeklyPlan, now: Date): Date {
  return CronExpressionParser.parse(cronOf(plan), { tz: plan.timezone, currentDate: now }).next().toDate();
}

const tags = ['Cluster mowing'];
const ClusterId = z
  .string()
  .regex(/^[0-9]{1,18}$/, 'a cluster id (digits)')
  .openapi({ param: { name: 'id', in: 'path' }, example: '1' });
const IdParam = z.object({ id: ClusterId });
const RunIdParam = z.object({ runId: z.uuid().openapi({ param: { name: 'runId', in: 'path' } }) });

const ScheduleView = z
  .object({
    cluster_id: z.string(),
    schedule: WeeklyPlanSchema.nullable(),
    next_start: z.iso.datetime().nullable().describe('When the next run starts, from the plan'),
  })
  .openapi('ClusterSchedule');

const Visit = z
  .object({
    candidate_id: z.string(),
    home_id: z.uuid().nullable(),
    position: z.number().int().nullable(),
    session_id: z.uuid().nullable(),
    started_at: z.iso.datetime(),
    ended_at: z.iso.datetime().nullable(),
    area_m2: z.number(),
    outcome: z.enum(['finished', 'interrupted', 'skipped', 'failed']).nullable().describe('null while the yard is being mowed'),
    detail: z.string().nullable(),
  })
  .openapi('ClusterYardVisit');

const Run = z
  .object({
    id: z.uuid(),
    cluster_id: z.string(),
    status: z.enum(['running', 'finished', 'failed', 'cancelled']),
    started_at: z.iso.datetime(),
    ended_at: z.iso.datetime().nullable(),
    position: z.number().int().describe('Route position of the yard being mowed'),
    entity_id: z.string().nullable().describe("The host's mower"),
    slot: z.iso.datetime().nullable().describe('The weekly-plan time it started for; null when started by hand'),
    detail: z.string().nullable(),
    visits: z.array(Visit),
  })
  .openapi('ClusterRun');

const Usage = z
  .object({
    cluster_id: z.string(),
    from: z.iso.datetime(),
    to: z.iso.datetime(),
    total_m2: z.number(),
    homes: z.array(z.object({ candidate_id: z.string(), home_id: z.uuid().nullable(), area_m2: z.number(), visits: z.number().int() })),
  })
  .openapi('ClusterUsage');

const routes = {
  getSchedule: createRoute({
    method: 'get',
    path: '/clusters/{id}/schedule',
    tags,
    summary: "A cluster's weekly plan and its next start",
    request: { params: IdParam },
    responses: { 200: json(ScheduleView, 'The plan'), ...errors(400, 401, 404) },
  }),
  putSchedule: createRoute({
    method: 'put',
    path: '/clusters/{id}/schedule',
    tags,
    summary: "Sets a cluster's weekly plan (owner of the host home); null clears it",
    request: { params: IdParam, body: jsonBody(WeeklyPlanSchema.nullable()) },
    responses: { 200: json(ScheduleView, 'The plan'), ...errors(400, 401, 403, 404, 415) },
  }),
  deleteSchedule: createRoute({
    method: 'delete',
    path: '/clusters/{id}/schedule',
    tags,
    summary: "Clears a cluster's weekly plan (owner of the host home)",
    request: { params: IdParam },
    responses: { 204: { description: 'Cleared' }, ...errors(400, 401, 403, 404) },
  }),
  listRuns: createRoute({
    method: 'get',
    path: '/clusters/{id}/runs',
    tags,
    summary: "A cluster's recent runs, newest first, with their yard visits",
    request: { params: IdParam, query: z.object({ limit: z.coerce.number().int().min(1).max(200).default(20) }) },
    responses: { 200: json(z.array(Run), 'Runs'), ...errors(400, 401, 404) },
  }),
  startRun: createRoute({
    method: 'post',
    path: '/clusters/{id}/runs',
    tags,
    summary: "Starts a run now: the host's mower walks the route (owner of the host home)",
    request: {
      params: IdParam,
      body: {
        content: { 'application/json': { schema: z.object({ entity_id: z.string().max(255).optional().describe("Which of the host's mowers; default the first reachable") }).strict() } },
        required: false,
      },
    },
    responses: { 201: json(Run, 'Started'), ...errors(400, 401, 403, 404, 409, 415) },
  }),
  cancelRun: createRoute({
    method: 'post',
    path: '/clusters/runs/{runId}/cancel',
    tags,
    summary: 'Cancels a running run and sends its mower home; what was mowed is still recorded (owner of the host home)',
    request: { params: RunIdParam },
    responses: { 200: json(Run, 'Cancelled'), ...errors(400, 401, 403, 404, 409) },
  }),
  usage: createRoute({
    method: 'get',
    path: '/clusters/{id}/usage',
    tags,
    summary: 'Mowed m² per yard and home in a period (default the last 30 days), as billing counts it',
    request: {
      params: IdParam,
      query: z.object({ from: z.iso.datetime({ offset: true }).optional(), to: z.iso.datetime({ offset: true }).optional() }),
    },
    responses: { 200: json(Usage, 'Usage'), ...errors(400, 401, 404) },
  }),
};

/**
 * Registers cluster mowing on the cluster plugin's context: routes, actions, the `cluster-plan`
 * Node-RED node, the `mowing_session_ended` listener and the `runs` job, which also carries on
 * runs a previous start left open. Await it in `setup` (the plugin's migrations ran before).
 *
 * @example
 * await clusterMowing(ctx, { positionChanged: (id) => nextYardEntity.refresh(id), plan: (home) => planner.planFor(home) });
 */
export async function clusterMowing(ctx: PluginContext<unknown>, hooks: ClusterMowingHooks): Promise<void> {
  const options = {
    yardTimeoutMs: hooks.yardTimeoutMs ?? DEFAULTS.yardTimeoutMs,
    catchUpMs: hooks.catchUpMs ?? DEFAULTS.catchUpMs,
    tickMs: hooks.tickMs ?? DEFAULTS.tickMs,
  };
  const now = hooks.now ?? (() => new Date());
  const db: ClusterDb = ctx.db.withTables<ClusterTables>();
  const runs = new ClusterRuns(ctx, { positionChanged: (id) => hooks.positionChanged(id), yardTimeoutMs: options.yardTimeoutMs });

  /** The cluster, if the caller may act on it with `minimum`; another home's cluster is not found. */
  const clusterFor = async (principal: Principal | null, id: string, minimum: Role, homeId?: string | null) => {
    const row = await db.selectFrom('cluster_clusters').select(['id', 'host_home_id', 'schedule']).where('id', '=', id).executeTakeFirst();
    if (!row || (homeId && row.host_home_id !== homeId) || (principal && !homeRole(principal, row.host_home_id))) throw hubError('HUB_ERR_CLUSTER_NOT_FOUND');
    if (principal) requireHomeRole(principal, row.host_home_id, minimum);
    return { ...row, id: String(row.id) };
  };
  const scheduleView = (id: string, schedule: WeeklyPlan | null) => ({
    cluster_id: id,
    schedule: schedule && { days: schedule.days, time: schedule.time, timezone: schedule.timezone },
    next_start: schedule ? nextSlot(schedule, now()).toISOString() : null,
  });
  const saveSchedule = async (id: string, schedule: WeeklyPlan | null) => {
    await db
      .updateTable('cluster_clusters')
      .set({ schedule: schedule === null ? null : sql<WeeklyPlan>`${JSON.stringify(schedule)}::text::jsonb`, schedule_set_at: schedule === null ? null : now() })
      .where('id', '=', id)
      .execute();
  };

  ctx.routes.openapi(routes.getSchedule, async (c) => {
    const cluster = await clusterFor(c.var.principal, c.req.valid('param').id, 'viewer');
    return c.json(scheduleView(cluster.id, cluster.schedule), 200);
  });

  ctx.routes.openapi(routes.putSchedule, async (c) => {
    const cluster = await clusterFor(c.var.principal, c.req.valid('param').id, 'owner');
    const schedule = c.req.valid('json');
    await saveSchedule(cluster.id, schedule);
    c.var.log.info({ clusterId: cluster.id, schedule }, 'cluster weekly plan set');
    return c.json(scheduleView(cluster.id, schedule), 200);
  });

  ctx.routes.openapi(routes.deleteSchedule, async (c) => {
    const cluster = await clusterFor(c.var.principal, c.req.valid('param').id, 'owner');
    await saveSchedule(cluster.id, null);
    return c.body(null, 204);
  });

  ctx.routes.openapi(routes.listRuns, async (c) => {
    const cluster = await clusterFor(c.var.principal, c.req.valid('param').id, 'viewer');
    return c.json(await runs.list(cluster.id, c.req.valid('query').limit), 200);
  });

  ctx.routes.openapi(routes.startRun, async (c) => {
    const cluster = await clusterFor(c.var.principal, c.req.valid('param').id, 'owner');
    // The body is optional: an empty POST starts with the default mower.
    const body = (c.req.valid('json') as { entity_id?: string } | undefined) ?? {};
    return c.json(await runs.start(cluster.id, { entityId: body.entity_id }), 201);
  });

  ctx.routes.openapi(routes.cancelRun, async (c) => {
    const run = await runFor(c.var.principal, c.req.valid('param').runId, null);
    return c.json(await runs.cancel(run.id, `Cancelled by ${c.var.principal.user.email}`), 200);
  });

  ctx.routes.openapi(routes.usage, async (c) => {
    const cluster = await clusterFor(c.var.principal, c.req.valid('param').id, 'viewer');
    const query = c.req.valid('query');
    const to = query.to ? new Date(query.to) : new Date();
    const from = query.from ? new Date(query.from) : new Date(to.getTime() - 30 * 86_400_000);
    if (from > to) throw hubError('HUB_ERR_VALIDATION', 'from must not be after to', { details: [{ path: ['from'], message: 'after to', code: 'custom' }] });
    return c.json(await runs.usage(cluster.id, from, to), 200);
  });

  /** A run of a cluster the caller may run (owner of its host home). */
  const runFor = async (principal: Principal | null, runId: string, homeId: string | null) => {
    const run = await db.selectFrom('cluster_runs').select(['id', 'cluster_id']).where('id', '=', runId).executeTakeFirst();
    if (!run) throw hubError('HUB_ERR_CLUSTER_RUN_NOT_FOUND');
    try {
      await clusterFor(principal, String(run.cluster_id), 'owner', homeId);
    } catch (error) {
      if ((error as { code?: string }).code === 'HUB_ERR_CLUSTER_NOT_FOUND') throw hubError('HUB_ERR_CLUSTER_RUN_NOT_FOUND');
      throw error;
    }
    return run;
  };

  registerActions(ctx, { runs, hooks, clusterFor, runFor });
  ctx.nodeRed.nodes(fileURLToPath(new URL('./nodes', import.meta.url)));

  ctx.bus.on('mowing_session_ended', async (event) => {
    // Only the hub fires sessions (the Mammotion plugin); one a user fired must not bill a yard.
    if (event.context.user_id !== null) return;
    const parsed = SessionEndedData.safeParse(event.data);
    if (!parsed.success) {
      ctx.log.warn({ issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }, 'mowing_session_ended without what a cluster run needs; ignored');
      return;
    }
    await runs.sessionEnded(parsed.data);
  });

  /** Starts the runs whose weekly slot is due, once per slot. */
  const startDue = async () => {
    const at = now();
    const planned = await db.selectFrom('cluster_clusters').select(['id', 'schedule', 'schedule_set_at']).where('schedule', 'is not', null).execute();
    for (const cluster of planned) {
      const parsed = WeeklyPlanSchema.safeParse(cluster.schedule);
      if (!parsed.success) continue;
      const slot = latestSlot(parsed.data, at);
      // A slot from before the plan was saved is not owed; nor one long missed (hub down).
      if ((cluster.schedule_set_at && slot < cluster.schedule_set_at) || at.getTime() - slot.getTime() > options.catchUpMs) continue;
      try {
        await runs.startSlot(String(cluster.id), slot);
      } catch (error) {
        ctx.log.error({ err: error, clusterId: String(cluster.id) }, 'weekly cluster run not started');
      }
    }
  };

  // Also what carries on the runs a previous start of the hub left open: a yard being mowed
  // needs nothing (its session's end arrives as usual), a run between two yards goes on at the
  // first tick, once its mower is back (the Mammotion plugin reconnects in the background).
  await ctx.jobs.schedule('runs', { everyMs: options.tickMs }, async () => {
    await startDue();
    await runs.sweep();
  });
}

interface ActionDeps {
  runs: ClusterRuns;
  hooks: ClusterMowingHooks;
  clusterFor(principal: Principal | null, id: string, minimum: Role, homeId?: string | null): Promise<{ id: string; host_home_id: string }>;
  runFor(principal: Principal | null, runId: string, homeId: string | null): Promise<{ id: string }>;
}

/**
 * The actions. Each takes an optional `home_id` (the host home): with it, the hub checks the
 * caller's role there and the cluster must be that home's; without it, only hub administrators
 * (and flows, which act as the hub) may call.
 */
function registerActions(ctx: PluginContext<unknown>, { runs, hooks, clusterFor, runFor }: ActionDeps): void {
  const clusterId = z.union([z.string().regex(/^[0-9]{1,18}$/), z.number().int().nonnegative()]).transform(String).describe('The cluster id');
  const homeId = z.uuid().optional().describe('The host home (lets home owners call; checked against the cluster)');

  if (hooks.plan) {
    const plan = hooks.plan;
    ctx.actions.register({
      domain: 'cluster',
      name: 'plan',
      description: 'Plans the cluster a host home could serve: members, rejected candidates with reasons, route, warnings',
      role: 'viewer',
      response: 'only',
      schema: z.object({ home_id: z.uuid().describe('The host home') }),
      handler: ({ data }) => plan(data.home_id),
    });
  }

  ctx.actions.register({
    domain: 'cluster',
    name: 'next_yard',
    description: "The yard the cluster's mower mows now, or next",
    role: 'viewer',
    response: 'only',
    schema: z.object({ cluster_id: clusterId, home_id: homeId }),
    handler: async ({ data, homeId: home }) => {
      const cluster = await clusterFor(null, data.cluster_id, 'viewer', home);
      return (await runs.nextYard(cluster.id)) ?? null;
    },
  });

  ctx.actions.register({
    domain: 'cluster',
    name: 'start_run',
    description: "Starts a run now: the host's mower walks the cluster's route",
    role: 'owner',
    response: 'optional',
    schema: z.object({ cluster_id: clusterId, home_id: homeId, entity_id: z.string().max(255).optional().describe("Which of the host's mowers") }),
    handler: async ({ data, homeId: home }) => {
      const cluster = await clusterFor(null, data.cluster_id, 'owner', home);
      return runs.start(cluster.id, { entityId: data.entity_id });
    },
  });

  ctx.actions.register({
    domain: 'cluster',
    name: 'cancel_run',
    description: 'Cancels a running cluster run and sends its mower home',
    role: 'owner',
    response: 'optional',
    schema: z.object({ run_id: z.uuid(), home_id: homeId }),
    handler: async ({ data, homeId: home, user }): Promise<RunView> => {
      const run = await runFor(null, data.run_id, home);
      return runs.cancel(run.id, user ? `Cancelled by ${user.email}` : 'Cancelled by an automation');
    },
  });
}
