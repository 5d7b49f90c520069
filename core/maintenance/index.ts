/**
 * Maintenance tasks per device — due on a date, or after N operating hours of a metric (blade
 * hours, pump hours) — and the daily job that raises due tasks as alerts: `/api/maintenance`.
 *
 * @module
 */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import type { AlertEngine } from '../alerts/index.js';
import { createRouter, errors, json, jsonBody } from '../api/rest/index.js';
import { homeRole, inVisibleHomes, requireHomeRole } from '../auth/index.js';
import type { Database, MaintenanceTask } from '../db/index.js';
import { requireVisibleDevice } from '../devices/index.js';
import { hubError } from '../errors/index.js';

async function latestValue(db: Kysely<Database>, deviceId: string, metric: string): Promise<number | undefined> {
  const row = await db
    .selectFrom('readings')
    .select('value')
    .where('device_id', '=', deviceId)
    .where('metric', '=', metric)
    .where('value', 'is not', null)
    .orderBy('ts', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.value ?? undefined;
}

/** Raises an alert for every open task that is due now; returns how many were raised. */
export async function raiseDueTasks(db: Kysely<Database>, alerts: AlertEngine): Promise<number> {
  const tasks = await db.selectFrom('maintenance_tasks').selectAll().where('status', '=', 'open').execute();
  let raised = 0;
  for (const task of tasks) {
    if (task.due_at && task.due_at.getTime() <= Date.now()) {
      if (await alerts.raiseForTask(task, 0, 0)) raised++;
    } else if (task.due_metric && task.due_value !== null) {
      const value = await latestValue(db, task.device_id, task.due_metric);
      if (value !== undefined && value >= task.due_value && (await alerts.raiseForTask(task, value, task.due_value))) raised++;
    }
  }
  return raised;
}

const TaskInput = z
  .object({
    device_id: z.uuid(),
    title: z.string().trim().min(1).max(200),
    type: z.enum(['preventive', 'corrective']),
    due_at: z.iso.datetime({ offset: true }).optional(),
    metric: z.string().regex(/^[a-z0-9_]{1,64}$/).optional().describe('An operating-hours metric of the device, e.g. blade_hours'),
    due_after_hours: z.number().positive().max(1_000_000).optional().describe('Due when the metric has grown by this much from now'),
    assignee_id: z.uuid().optional().describe('A technician (or above) of the home'),
  })
  .strict()
  .refine((t) => (t.metric === undefined) === (t.due_after_hours === undefined), { message: 'metric and due_after_hours go together', path: ['metric'] })
  .openapi('NewMaintenanceTask');
const TaskPatch = z
  .object({
    title: z.string().trim().min(1).max(200).optional(),
    status: z.enum(['open', 'done', 'cancelled']).optional(),
    due_at: z.iso.datetime({ offset: true }).nullable().optional(),
    assignee_id: z.uuid().nullable().optional(),
  })
  .strict()
  .openapi('MaintenanceTaskPatch');
const TaskSchema = z
  .object({
    id: z.uuid(),
    home_id: z.uuid(),
    device_id: z.uuid(),
    title: z.string(),
    type: z.enum(['preventive', 'corrective']),
    due_at: z.iso.datetime().nullable(),
    due_metric: z.string().nullable(),
    due_value: z.number().nullable().describe('The metric value at which it is due'),
    status: z.enum(['open', 'done', 'cancelled']),
    assignee_id: z.uuid().nullable(),
    created_at: z.iso.datetime(),
    completed_at: z.iso.datetime().nullable(),
  })
  .openapi('MaintenanceTask');

const present = (t: MaintenanceTask): z.infer<typeof TaskSchema> => ({
  ...t,
  due_at: t.due_at?.toISOString() ?? null,
  created_at: t.created_at.toISOString(),
  completed_at: t.completed_at?.toISOString() ?? null,
});

const tags = ['Maintenance'];
const routes = {
  list: createRoute({
    method: 'get',
    path: '/maintenance',
    tags,
    summary: 'Maintenance tasks of your homes',
    request: { query: z.object({ status: z.enum(['open', 'done', 'cancelled']).optional(), device_id: z.uuid().optional() }) },
    responses: { 200: json(z.array(TaskSchema), 'Tasks, soonest due first'), ...errors(400, 401) },
  }),
  create: createRoute({
    method: 'post',
    path: '/maintenance',
    tags,
    summary: 'Plan a task for a device (technician)',
    request: { body: jsonBody(TaskInput) },
    responses: { 201: json(TaskSchema, 'Created'), ...errors(400, 401, 403, 404, 415) },
  }),
  update: createRoute({
    method: 'patch',
    path: '/maintenance/{id}',
    tags,
    summary: 'Change, assign, complete or cancel a task (technician); completing resolves its alert',
    request: { params: z.object({ id: z.uuid() }), body: jsonBody(TaskPatch) },
    responses: { 200: json(TaskSchema, 'Updated'), ...errors(400, 401, 403, 404, 415) },
  }),
};

export function maintenanceRoutes({ db, alerts }: { db: Kysely<Database>; alerts: AlertEngine }) {
  const router = createRouter();

  const requireAssignable = async (homeId: string, userId: string | null | undefined) => {
    if (!userId) return;
    const member = await db.selectFrom('home_members').select('role').where('home_id', '=', homeId).where('user_id', '=', userId).executeTakeFirst();
    if (!member || member.role === 'viewer') throw hubError('HUB_ERR_VALIDATION', 'The assignee must be a technician (or above) of the home');
  };

  router.openapi(routes.list, async (c) => {
    const principal = c.var.principal;
    const query = c.req.valid('query');
    const tasks = await db
      .selectFrom('maintenance_tasks')
      .selectAll()
      .where((eb) => inVisibleHomes(eb, principal, 'maintenance_tasks.home_id'))
      .$if(query.status !== undefined, (q) => q.where('status', '=', query.status!))
      .$if(query.device_id !== undefined, (q) => q.where('device_id', '=', query.device_id!))
      .orderBy('due_at', (ob) => ob.asc().nullsLast())
      .orderBy('created_at')
      .limit(1000)
      .execute();
    return c.json(tasks.map(present), 200);
  });

  router.openapi(routes.create, async (c) => {
    const input = c.req.valid('json');
    const device = await requireVisibleDevice(db, c.var.principal, input.device_id);
    requireHomeRole(c.var.principal, device.home_id, 'technician');
    await requireAssignable(device.home_id, input.assignee_id);
    const baseline = input.metric ? ((await latestValue(db, input.device_id, input.metric)) ?? 0) : undefined;
    const task = await db
      .insertInto('maintenance_tasks')
      .values({
        home_id: device.home_id,
        device_id: input.device_id,
        title: input.title,
        type: input.type,
        due_at: input.due_at ?? null,
        due_metric: input.metric ?? null,
        due_value: baseline === undefined ? null : baseline + input.due_after_hours!,
        assignee_id: input.assignee_id ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    return c.json(present(task), 201);
  });

  router.openapi(routes.update, async (c) => {
    const { id } = c.req.valid('param');
    const patch = c.req.valid('json');
    const existing = await db.selectFrom('maintenance_tasks').select(['home_id', 'status']).where('id', '=', id).executeTakeFirst();
    if (!existing || !homeRole(c.var.principal, existing.home_id)) throw hubError('HUB_ERR_NOT_FOUND', 'Maintenance task not found');
    requireHomeRole(c.var.principal, existing.home_id, 'technician');
    await requireAssignable(existing.home_id, patch.assignee_id);
    const closing = patch.status !== undefined && patch.status !== 'open';
    const task = await db
      .updateTable('maintenance_tasks')
      .set({
        title: patch.title,
        status: patch.status,
        due_at: patch.due_at,
        assignee_id: patch.assignee_id,
        completed_at: patch.status === undefined ? undefined : patch.status === 'done' ? new Date() : null,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    if (closing) await alerts.resolveForTask(id, c.var.principal.user.id);
    return c.json(present(task), 200);
  });

  return router;
}
