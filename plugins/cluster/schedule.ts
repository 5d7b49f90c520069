/**
 * Cluster mowing: a cluster's weekly plan, the job that starts a run when a plan's slot is due,
 * the run routes (start, cancel, history, usage per home) and the actions flows and the
 * `cluster-plan` Node-RED node call (`cluster.plan`, `cluster.next_yard`, `cluster.start_run`,
 * `cluster.cancel_run`). The walk itself is in `runs.ts`.
 *
 * Who may do what: a cluster belongs to its host home. The home's members see it (viewer), its
 * owners change the plan and start or cancel runs; administrators may do everything. A member
 * home that accepted the cluster sees its own yards' visits and m² (runs, usage) and nothing of
 * the other yards. To anyone else a cluster answers 404, as if it did not exist. The host home
 * sees a yard whose member has not accepted as `yard-<position>` (runs, usage, `cluster.next_yard`);
 * the actions answer as the host home sees it.
 *
 * The run events (`cluster_run_started`, `cluster_run_ended`, `cluster_yard_mowed`) are reserved
 * to this plugin: billing acts on them, so no user or flow may fire one.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { createRoute, z } from '@hono/zod-openapi';
import { CronExpressionParser } from 'cron-parser';
import { errors, json, jsonBody } from '../../core/api/rest/index.js';
import { homeRole, requireHomeRole, type Principal, type PublicUser } from '../../core/auth/index.js';
import { jsonb, type Role } from '../../core/db/index.js';
import { hubError } from '../../core/errors/index.js';
import { TimeZone } from '../../core/homes/index.js';
import type { PluginContext } from '../../core/plugin.js';
import { ClusterRuns, HOST_VIEW, SessionEndedData, type RunView, type RunViewer } from './runs.js';
import { ClusterIdParam, type ClusterDb, type WeeklyPlan } from './tables.js';

/** What {@link clusterMowing} needs from the plugin entry. */
export interface ClusterMowingHooks {
  /** Refreshes the cluster's `next_yard` entity; called whenever the next yard changes. */
  positionChanged(clusterId: string): Promise<void>;
  /**
   * The planner's plan for a host home (members, rejected, route, warnings): what the
   * `cluster.plan` action (the `cluster-plan` node's plan mode) answers.
   */
  plan(hostHomeId: string): Promise<unknown>;
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
    timezone: TimeZone,
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
const RunIdParam = z.object({ run_id: z.uuid().openapi({ param: { name: 'run_id', in: 'path' } }) });

const ScheduleView = z
  .object({
    cluster_id: z.string(),
    schedule: WeeklyPlanSchema.nullable(),
    next_start: z.iso.datetime().nullable().describe('When the next run starts, from the plan'),
  })
  .openapi('ClusterSchedule');

const Visit = z
  .object({
    candidate_id: z.string().nullable().describe('yard-<position> for a yard whose member has not accepted; null when that yard has left the cluster'),
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
    cluster_id: z.string().nullable().describe('null once the cluster was deleted (runs are billing records and stay)'),
    status: z.enum(['running', 'finished', 'failed', 'cancelled']),
    started_at: z.iso.datetime(),
    ended_at: z.iso.datetime().nullable(),
    position: z.number().int().describe('Route position of the yard being mowed'),
    entity_id: z.string().nullable().describe("The host's mower; null for a member of the cluster, who sees only their own yards"),
    slot: z.iso.datetime().nullable().describe('The weekly-plan time it started for; null when started by hand'),
    detail: z.string().nullable().describe('Why it failed or was cancelled (never who cancelled it; a yard by its position); null for a member of the cluster'),
    visits: z.array(Visit).describe("The yards visited; a member of the cluster sees only their own"),
  })
  .openapi('ClusterRun');

const Usage = z
  .object({
    cluster_id: z.string(),
    from: z.iso.datetime(),
    to: z.iso.datetime(),
    total_m2: z.number(),
    homes: z.array(z.object({ candidate_id: z.string().nullable(), home_id: z.uuid().nullable(), area_m2: z.number(), visits: z.number().int() })),
  })
  .openapi('ClusterUsage');

const routes = {
  getSchedule: createRoute({
    method: 'get',
    path: '/clusters/{id}/schedule',
    tags,
    summary: "A cluster's weekly plan and its next start",
    request: { params: ClusterIdParam },
    responses: { 200: json(ScheduleView, 'The plan'), ...errors(400, 401, 404) },
  }),
  putSchedule: createRoute({
    method: 'put',
    path: '/clusters/{id}/schedule',
    tags,
    summary: "Sets a cluster's weekly plan (owner of the host home); null clears it",
    request: { params: ClusterIdParam, body: jsonBody(WeeklyPlanSchema.nullable()) },
    responses: { 200: json(ScheduleView, 'The plan'), ...errors(400, 401, 403, 404, 415) },
  }),
  deleteSchedule: createRoute({
    method: 'delete',
    path: '/clusters/{id}/schedule',
    tags,
    summary: "Clears a cluster's weekly plan (owner of the host home)",
    request: { params: ClusterIdParam },
    responses: { 204: { description: 'Cleared' }, ...errors(400, 401, 403, 404) },
  }),
  listRuns: createRoute({
    method: 'get',
    path: '/clusters/{id}/runs',
    tags,
    summary: "A cluster's recent runs, newest first, with their yard visits",
    description:
      "The host home's members see every yard, a yard whose member has not accepted as yard-<position>; a member home that accepted the cluster sees its own yards' visits only.",
    request: { params: ClusterIdParam, query: z.object({ limit: z.coerce.number().int().min(1).max(200).default(20) }) },
    responses: { 200: json(z.array(Run), 'Runs'), ...errors(400, 401, 404) },
  }),
  startRun: createRoute({
    method: 'post',
    path: '/clusters/{id}/runs',
    tags,
    summary: "Starts a run now: the host's mower walks the route (owner of the host home)",
    request: {
      params: ClusterIdParam,
      body: {
        content: { 'application/json': { schema: z.object({ entity_id: z.string().max(255).optional().describe("Which of the host's mowers; default the first reachable") }).strict() } },
        required: false,
      },
    },
    responses: { 201: json(Run, 'Started'), ...errors(400, 401, 403, 404, 409, 415) },
  }),
  cancelRun: createRoute({
    method: 'post',
    path: '/clusters/runs/{run_id}/cancel',
    tags,
    summary: 'Cancels a running run and sends its mower home (owner of the host home)',
    description: 'The yard being mowed is closed as failed and not billed: a session ending after the cancel cannot be told from the host mowing its own lawn.',
    request: { params: RunIdParam },
    responses: { 200: json(Run, 'Cancelled'), ...errors(400, 401, 403, 404, 409) },
  }),
  usage: createRoute({
    method: 'get',
    path: '/clusters/{id}/usage',
    tags,
    summary: 'Mowed m² per yard and home in a period (default the last 30 days), as billing counts it',
    description: "The host home's members see every yard, a yard whose member has not accepted as yard-<position>; a member home that accepted the cluster sees its own yards only.",
    request: {
      params: ClusterIdParam,
      query: z.object({ from: z.iso.datetime({ offset: true }).optional(), to: z.iso.datetime({ offset: true }).optional() }),
    },
    responses: { 200: json(Usage, 'Usage'), ...errors(400, 401, 404) },
  }),
};


/**
 * Registers cluster mowing on the cluster plugin's context: routes, actions, the `cluster-plan`
 * Node-RED node, the `mowing_session_ended` listener and the `runs` job, which also carries on runs a previous start left open. Await it
 * in `setup` (the plugin's migrations ran before).
 *
 * @example
 * await clusterMowing(ctx, { positionChanged: (id) => nextYardEntity.refresh(id), plan: (home) => planner.planFor(home) });
 */
export async function clusterMowing(ctx: PluginContext<unknown>, hooks: ClusterMowingHooks): Promise<void> {
  const timing = {
    yardTimeoutMs: hooks.yardTimeoutMs ?? DEFAULTS.yardTimeoutMs,
    catchUpMs: hooks.catchUpMs ?? DEFAULTS.catchUpMs,
    tickMs: hooks.tickMs ?? DEFAULTS.tickMs,
  };
  const now = hooks.now ?? (() => new Date());
  const db: ClusterDb = ctx.db.withTables();
  const runs = new ClusterRuns(ctx, { positionChanged: (id) => hooks.positionChanged(id), yardTimeoutMs: timing.yardTimeoutMs });
  const access = new ClusterAccess(db);

  scheduleRoutes(ctx, { db, access, now });
  runRoutes(ctx, { runs, access });
  registerActions(ctx, { runs, access, plan: (home) => hooks.plan(home) });
  ctx.nodeRed.nodes(fileURLToPath(new URL('./nodes', import.meta.url)));
  listenForSessions(ctx, runs);
  await scheduleRunsJob(ctx, { db, runs, now, ...timing });
}

type Cluster = { id: string; host_home_id: string; schedule: WeeklyPlan | null };

/**
 * Who may see and act on a cluster. A cluster belongs to its host home; a member home that
 * accepted it sees its own yards' runs and usage; to anyone else it does not exist (404).
 */
class ClusterAccess {
  constructor(private readonly db: ClusterDb) {}

  /**
   * The cluster, if the caller holds `minimum` in its host home. Without a principal (an
   * action, whose caller the registry checked in `homeId`), the cluster must be `homeId`'s;
   * without either, the caller is an administrator or a flow.
   */
  async host(principal: Principal | null, id: string, minimum: Role, homeId?: string | null): Promise<Cluster> {
    const row = await this.db.selectFrom('cluster_clusters').select(['id', 'host_home_id', 'schedule']).where('id', '=', id).executeTakeFirst();
    if (!row || (homeId && row.host_home_id !== homeId) || (principal && !homeRole(principal, row.host_home_id))) throw hubError('HUB_ERR_CLUSTER_NOT_FOUND');
    if (principal) requireHomeRole(principal, row.host_home_id, minimum);
    return { ...row, id: String(row.id) };
  }

  /** How the caller sees the cluster's runs: as an administrator, from the host home, or as a member that accepted. */
  async viewer(principal: Principal, id: string): Promise<{ id: string; viewer: RunViewer }> {
    const row = await this.db.selectFrom('cluster_clusters').select(['id', 'host_home_id']).where('id', '=', id).executeTakeFirst();
    if (!row) throw hubError('HUB_ERR_CLUSTER_NOT_FOUND');
    if (homeRole(principal, row.host_home_id)) return { id: String(row.id), viewer: runViewer(principal) };
    const homes = [...principal.homes.keys()];
    const own =
      homes.length === 0
        ? []
        : await this.db.selectFrom('cluster_members').select('home_id').where('cluster_id', '=', id).where('consent', '=', 'accepted').where('home_id', 'in', homes).execute();
    if (own.length === 0) throw hubError('HUB_ERR_CLUSTER_NOT_FOUND');
    return { id: String(row.id), viewer: { as: 'member', homes: new Set(own.flatMap((m) => (m.home_id ? [m.home_id] : []))) } };
  }

  /** A run of a cluster the caller may run (owner of its host home), with that home. */
  async run(principal: Principal | null, runId: string, homeId: string | null): Promise<{ id: string; hostHomeId: string }> {
    const run = await this.db.selectFrom('cluster_runs').select(['id', 'cluster_id']).where('id', '=', runId).executeTakeFirst();
    // A run whose cluster was deleted has no host home any more: nobody runs it.
    if (!run?.cluster_id) throw hubError('HUB_ERR_CLUSTER_RUN_NOT_FOUND');
    try {
      const cluster = await this.host(principal, String(run.cluster_id), 'owner', homeId);
      return { id: run.id, hostHomeId: cluster.host_home_id };
    } catch (error) {
      if ((error as { code?: string }).code === 'HUB_ERR_CLUSTER_NOT_FOUND') throw hubError('HUB_ERR_CLUSTER_RUN_NOT_FOUND');
      throw error;
    }
  }
}

/** How a caller who may run the cluster (or an administrator) sees its runs. */
function runViewer(principal: Principal): RunViewer {
  return principal.isAdmin ? { as: 'admin' } : { as: 'host', homes: new Set(principal.homes.keys()) };
}

/**
 * What a cancelled run says about who cancelled it. The run's detail reaches everyone who sees
 * the host home and `cluster_run_ended`, so it names a role, never a person (the user id is
 * stored apart).
 */
function cancelDetail(user: PublicUser | null, asHostMember: boolean): string {
  if (!user) return 'Cancelled by an automation';
  return asHostMember ? 'Cancelled by an owner of the host home' : 'Cancelled by a hub administrator';
}

/** The weekly-plan routes (the host home's). */
function scheduleRoutes(ctx: PluginContext<unknown>, { db, access, now }: { db: ClusterDb; access: ClusterAccess; now: () => Date }): void {
  const view = (id: string, schedule: WeeklyPlan | null) => ({
    cluster_id: id,
    schedule: schedule && { days: schedule.days, time: schedule.time, timezone: schedule.timezone },
    next_start: schedule ? nextSlot(schedule, now()).toISOString() : null,
  });
  const save = async (id: string, schedule: WeeklyPlan | null) => {
    await db
      .updateTable('cluster_clusters')
      .set({ schedule: schedule === null ? null : jsonb(schedule).$castTo<WeeklyPlan>(), schedule_set_at: schedule === null ? null : now() })
      .where('id', '=', id)
      .execute();
  };

  ctx.routes.openapi(routes.getSchedule, async (c) => {
    const cluster = await access.host(c.var.principal, c.req.valid('param').id, 'viewer');
    return c.json(view(cluster.id, cluster.schedule), 200);
  });

  ctx.routes.openapi(routes.putSchedule, async (c) => {
    const cluster = await access.host(c.var.principal, c.req.valid('param').id, 'owner');
    const schedule = c.req.valid('json');
    await save(cluster.id, schedule);
    c.var.log.info({ clusterId: cluster.id, schedule }, 'cluster weekly plan set');
    return c.json(view(cluster.id, schedule), 200);
  });

  ctx.routes.openapi(routes.deleteSchedule, async (c) => {
    const cluster = await access.host(c.var.principal, c.req.valid('param').id, 'owner');
    await save(cluster.id, null);
    return c.body(null, 204);
  });
}

/** The run routes: history and usage (host home, and each accepted member for its own yards), start and cancel (host owners). */
function runRoutes(ctx: PluginContext<unknown>, { runs, access }: { runs: ClusterRuns; access: ClusterAccess }): void {
  ctx.routes.openapi(routes.listRuns, async (c) => {
    const { id, viewer } = await access.viewer(c.var.principal, c.req.valid('param').id);
    return c.json(await runs.list(id, c.req.valid('query').limit, viewer), 200);
  });

  ctx.routes.openapi(routes.startRun, async (c) => {
    const cluster = await access.host(c.var.principal, c.req.valid('param').id, 'owner');
    // The body is optional: an empty POST starts with the default mower.
    const body = (c.req.valid('json') as { entity_id?: string } | undefined) ?? {};
    return c.json(await runs.start(cluster.id, { entityId: body.entity_id, viewer: runViewer(c.var.principal) }), 201);
  });

  ctx.routes.openapi(routes.cancelRun, async (c) => {
    const principal = c.var.principal;
    const run = await access.run(principal, c.req.valid('param').run_id, null);
    const detail = cancelDetail(principal.user, principal.homes.has(run.hostHomeId));
    return c.json(await runs.cancel(run.id, { detail, userId: principal.user.id }, runViewer(principal)), 200);
  });

  ctx.routes.openapi(routes.usage, async (c) => {
    const { id, viewer } = await access.viewer(c.var.principal, c.req.valid('param').id);
    const query = c.req.valid('query');
    const to = query.to ? new Date(query.to) : new Date();
    const from = query.from ? new Date(query.from) : new Date(to.getTime() - 30 * 86_400_000);
    if (from > to) throw hubError('HUB_ERR_VALIDATION', 'from must not be after to', { details: [{ path: ['from'], message: 'after to', code: 'custom' }] });
    return c.json(await runs.usage(id, from, to, viewer), 200);
  });
}

/**
 * Feeds mowing sessions to the runs. The event type is reserved to the Mammotion plugin (no
 * user or flow can fire it), and the runs bill only what Mammotion stored for that session:
 * so a stopped Mammotion plugin, whose reservation is released, still cannot be impersonated.
 */
function listenForSessions(ctx: PluginContext<unknown>, runs: ClusterRuns): void {
  ctx.bus.on('mowing_session_ended', async (event) => {
    const parsed = SessionEndedData.safeParse(event.data);
    if (!parsed.success) {
      ctx.log.warn({ issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }, 'mowing_session_ended without what a cluster run needs; ignored');
      return;
    }
    await runs.sessionEnded(parsed.data);
  });
}

/**
 * The `runs` job: starts the runs whose weekly slot is due (once per slot), then sweeps. It is
 * also what carries on the runs a previous start of the hub left open: a yard being mowed needs
 * nothing (its session's end arrives as usual), a run between two yards goes on at the first
 * tick, once its mower is back (the Mammotion plugin reconnects in the background).
 */
async function scheduleRunsJob(
  ctx: PluginContext<unknown>,
  { db, runs, now, catchUpMs, tickMs }: { db: ClusterDb; runs: ClusterRuns; now: () => Date; catchUpMs: number; tickMs: number },
): Promise<void> {
  const startDue = async () => {
    const at = now();
    const planned = await db.selectFrom('cluster_clusters').select(['id', 'schedule', 'schedule_set_at']).where('schedule', 'is not', null).execute();
    for (const cluster of planned) {
      const parsed = WeeklyPlanSchema.safeParse(cluster.schedule);
      if (!parsed.success) continue;
      const slot = latestSlot(parsed.data, at);
      // A slot from before the plan was saved is not owed; nor one long missed (hub down).
      if ((cluster.schedule_set_at && slot < cluster.schedule_set_at) || at.getTime() - slot.getTime() > catchUpMs) continue;
      try {
        await runs.startSlot(String(cluster.id), slot);
      } catch (error) {
        ctx.log.error({ err: error, clusterId: String(cluster.id) }, 'weekly cluster run not started');
      }
    }
  };
  await ctx.jobs.schedule('runs', { everyMs: tickMs }, async () => {
    await startDue();
    await runs.sweep();
  });
}

/**
 * The actions. Each takes an optional `home_id` (the host home): with it, the hub checks the
 * caller's role there and the cluster must be that home's; without it, only hub administrators
 * (and flows, which act as the hub) may call.
 */
function registerActions(ctx: PluginContext<unknown>, { runs, access, plan }: { runs: ClusterRuns; access: ClusterAccess; plan: (hostHomeId: string) => Promise<unknown> }): void {
  // Flows send cluster ids as numbers as often as text.
  const clusterId = z.union([ClusterIdParam.shape.id, z.number().int().nonnegative()]).transform(String).describe('The cluster id');
  const homeId = z.uuid().optional().describe('The host home (lets home owners call; checked against the cluster)');

  ctx.actions.register({
    domain: 'cluster',
    name: 'plan',
    description: 'Plans the cluster a host home could serve: members, rejected candidates with reasons, route, warnings',
    role: 'viewer',
    response: 'only',
    schema: z.object({ home_id: z.uuid().describe('The host home') }),
    handler: ({ data }) => plan(data.home_id),
  });

  ctx.actions.register({
    domain: 'cluster',
    name: 'next_yard',
    description: "The yard the cluster's mower mows now, or next",
    role: 'viewer',
    response: 'only',
    schema: z.object({ cluster_id: clusterId, home_id: homeId }),
    handler: async ({ data, homeId: home }) => {
      const cluster = await access.host(null, data.cluster_id, 'viewer', home);
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
      const cluster = await access.host(null, data.cluster_id, 'owner', home);
      return runs.start(cluster.id, { entityId: data.entity_id, viewer: HOST_VIEW });
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
      const run = await access.run(null, data.run_id, home);
      // With home_id the registry checked the caller owns the host home; without, only administrators (or flows) get here.
      return runs.cancel(run.id, { detail: cancelDetail(user, home !== null), userId: user?.id ?? null }, HOST_VIEW);
    },
  });
}
