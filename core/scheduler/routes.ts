/** `GET /api/jobs`, `POST /api/jobs/{id}/run`. */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { createRouter, errors, json } from '../api/rest/index.js';
import { homeRole, inVisibleHomes, requireAdmin, requireHomeRole } from '../auth/index.js';
import type { Database } from '../db/index.js';
import { hubError } from '../errors/index.js';
import type { Scheduler } from './index.js';

const JobSchema = z
  .object({
    id: z.string(),
    owner: z.string(),
    name: z.string(),
    home_id: z.uuid().nullable(),
    schedule: z.string().describe('A cron expression, or "every <n>ms"'),
    timezone: z.string(),
    next_run: z.iso.datetime().nullable(),
    last_run: z.iso.datetime().nullable(),
    last_error: z.string().nullable(),
    last_duration_ms: z.number().nullable(),
    run_count: z.number(),
    running: z.boolean().describe('A run holds the lease now (on any instance)'),
  })
  .openapi('Job');
const RunResultSchema = z
  .object({ ok: z.boolean(), duration_ms: z.number(), error: z.string().nullable() })
  .openapi('JobRunResult');

const tags = ['Jobs'];
const routes = {
  list: createRoute({
    method: 'get',
    path: '/jobs',
    tags,
    summary: 'Scheduled jobs: hub-wide ones for administrators, and those of your homes',
    responses: { 200: json(z.array(JobSchema), 'Active jobs by id'), ...errors(401) },
  }),
  run: createRoute({
    method: 'post',
    path: '/jobs/{id}/run',
    tags,
    summary: 'Run a job now (administrators, or owners of its home)',
    request: { params: z.object({ id: z.string().max(300) }) },
    responses: { 200: json(RunResultSchema, 'The run finished (ok or with its error)'), ...errors(401, 403, 404, 409) },
  }),
};

export function jobRoutes({ db, scheduler }: { db: Kysely<Database>; scheduler: Scheduler }) {
  const router = createRouter();

  router.openapi(routes.list, async (c) => {
    const principal = c.var.principal;
    const rows = await db
      .selectFrom('jobs')
      .selectAll()
      .where('active', '=', true)
      .$if(!principal.isAdmin, (q) => q.where((eb) => inVisibleHomes(eb, principal, 'jobs.home_id')))
      .orderBy('id')
      .execute();
    const now = Date.now();
    return c.json(
      rows.map((r) => ({
        id: r.id,
        owner: r.owner,
        name: r.name,
        home_id: r.home_id,
        schedule: r.schedule,
        timezone: r.timezone,
        next_run: r.next_run?.toISOString() ?? null,
        last_run: r.last_run?.toISOString() ?? null,
        last_error: r.last_error,
        last_duration_ms: r.last_duration_ms,
        run_count: r.run_count,
        running: r.lease_until !== null && r.lease_until.getTime() > now,
      })),
      200,
    );
  });

  router.openapi(routes.run, async (c) => {
    const principal = c.var.principal;
    const { id } = c.req.valid('param');
    const row = await db.selectFrom('jobs').select(['home_id']).where('id', '=', id).where('active', '=', true).executeTakeFirst();
    const visible = row && (principal.isAdmin || (row.home_id !== null && homeRole(principal, row.home_id)));
    if (!visible || !scheduler.has(id)) throw hubError('HUB_ERR_JOB_NOT_FOUND');
    if (row.home_id) requireHomeRole(principal, row.home_id, 'owner');
    else requireAdmin(principal);
    const result = await scheduler.runNow(id);
    c.var.log.info({ job: id, ok: result.ok }, 'job run by hand');
    return c.json({ ok: result.ok, duration_ms: result.durationMs, error: result.error }, 200);
  });

  return router;
}
