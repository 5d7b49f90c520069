/** `/api/alerts` and `/api/alerts/rules`. */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { createRouter, errors, json, jsonBody } from '../api/rest/index.js';
import { homeRole, inVisibleHomes, requireHomeRole } from '../auth/index.js';
import type { Alert, AlertRule, Database } from '../db/index.js';
import { requireVisibleDevice } from '../devices/index.js';
import { hubError } from '../errors/index.js';
import type { AlertEngine } from './index.js';

const RuleInput = z
  .object({
    home_id: z.uuid(),
    device_id: z.uuid().optional().describe('Default: every device of the home'),
    metric: z.string().regex(/^[a-z0-9_]{1,64}$/),
    direction: z.enum(['above', 'below']),
    warning: z.number().optional(),
    critical: z.number().optional(),
    for_seconds: z.number().int().min(0).max(86_400).default(0).describe('How long the value must stay beyond a level before it raises'),
    hysteresis: z.number().min(0).default(0).describe('How far back past the threshold the value must come to resolve by itself'),
  })
  .strict()
  .refine((r) => r.warning !== undefined || r.critical !== undefined, { message: 'give warning, critical or both', path: ['warning'] })
  .refine(
    (r) => r.warning === undefined || r.critical === undefined || (r.direction === 'above' ? r.critical >= r.warning : r.critical <= r.warning),
    { message: 'critical must be beyond warning', path: ['critical'] },
  )
  .openapi('NewAlertRule');
const RuleSchema = z
  .object({
    id: z.uuid(),
    home_id: z.uuid(),
    device_id: z.uuid().nullable(),
    metric: z.string(),
    direction: z.enum(['above', 'below']),
    warning: z.number().nullable(),
    critical: z.number().nullable(),
    for_seconds: z.number(),
    hysteresis: z.number(),
    created_at: z.iso.datetime(),
  })
  .openapi('AlertRule');
const AlertSchema = z
  .object({
    id: z.uuid(),
    rule_id: z.uuid().nullable().describe('The threshold rule that raised it, or null'),
    task_id: z.uuid().nullable().describe('The maintenance task that is due, or null'),
    home_id: z.uuid(),
    device_id: z.uuid(),
    metric: z.string(),
    severity: z.enum(['warning', 'critical']),
    status: z.enum(['active', 'acknowledged', 'resolved']),
    value: z.number(),
    threshold: z.number(),
    raised_at: z.iso.datetime(),
    acknowledged_at: z.iso.datetime().nullable(),
    acknowledged_by: z.uuid().nullable(),
    resolved_at: z.iso.datetime().nullable(),
    resolved_by: z.uuid().nullable().describe('Null on a resolved alert: it resolved by itself'),
  })
  .openapi('Alert');

const iso = (d: Date | null) => d?.toISOString() ?? null;
const presentRule = (r: AlertRule): z.infer<typeof RuleSchema> => ({
  id: r.id,
  home_id: r.home_id,
  device_id: r.device_id,
  metric: r.metric,
  direction: r.direction,
  warning: r.warning,
  critical: r.critical,
  for_seconds: r.for_seconds,
  hysteresis: r.hysteresis,
  created_at: r.created_at.toISOString(),
});
const presentAlert = (a: Alert): z.infer<typeof AlertSchema> => ({
  ...a,
  raised_at: a.raised_at.toISOString(),
  acknowledged_at: iso(a.acknowledged_at),
  resolved_at: iso(a.resolved_at),
});

const tags = ['Alerts'];
const IdParam = z.object({ id: z.uuid() });
const routes = {
  list: createRoute({
    method: 'get',
    path: '/alerts',
    tags,
    summary: 'Alerts of your homes, newest first',
    request: {
      query: z.object({
        status: z.enum(['active', 'acknowledged', 'resolved', 'open']).optional().describe('open = active or acknowledged'),
        severity: z.enum(['warning', 'critical']).optional(),
        home_id: z.uuid().optional(),
      }),
    },
    responses: { 200: json(z.array(AlertSchema), 'Alerts (at most 1000)'), ...errors(400, 401) },
  }),
  acknowledge: createRoute({
    method: 'post',
    path: '/alerts/{id}/acknowledge',
    tags,
    summary: 'Acknowledge an active alert (technician)',
    request: { params: IdParam },
    responses: { 200: json(AlertSchema, 'Acknowledged'), ...errors(400, 401, 403, 404, 409) },
  }),
  resolve: createRoute({
    method: 'post',
    path: '/alerts/{id}/resolve',
    tags,
    summary: 'Resolve an open alert by hand (technician)',
    request: { params: IdParam },
    responses: { 200: json(AlertSchema, 'Resolved'), ...errors(400, 401, 403, 404, 409) },
  }),
  rules: createRoute({
    method: 'get',
    path: '/alerts/rules',
    tags,
    summary: 'Alert rules of your homes',
    responses: { 200: json(z.array(RuleSchema), 'Rules'), ...errors(401) },
  }),
  createRule: createRoute({
    method: 'post',
    path: '/alerts/rules',
    tags,
    summary: 'Add a threshold rule (owner)',
    request: { body: jsonBody(RuleInput) },
    responses: { 201: json(RuleSchema, 'Created'), ...errors(400, 401, 403, 404, 415) },
  }),
  deleteRule: createRoute({
    method: 'delete',
    path: '/alerts/rules/{id}',
    tags,
    summary: 'Remove a rule and its alerts (owner)',
    request: { params: IdParam },
    responses: { 204: { description: 'Removed' }, ...errors(400, 401, 403, 404) },
  }),
};

export function alertRoutes({ db, engine }: { db: Kysely<Database>; engine: AlertEngine }) {
  const router = createRouter();

  router.openapi(routes.list, async (c) => {
    const principal = c.var.principal;
    const query = c.req.valid('query');
    if (query.home_id) requireHomeRole(principal, query.home_id, 'viewer');
    const alerts = await db
      .selectFrom('alerts')
      .selectAll()
      .where((eb) => inVisibleHomes(eb, principal, 'alerts.home_id'))
      .$if(query.home_id !== undefined, (q) => q.where('home_id', '=', query.home_id!))
      .$if(query.status === 'open', (q) => q.where('status', '<>', 'resolved'))
      .$if(query.status !== undefined && query.status !== 'open', (q) => q.where('status', '=', query.status as Alert['status']))
      .$if(query.severity !== undefined, (q) => q.where('severity', '=', query.severity!))
      .orderBy('raised_at', 'desc')
      .limit(1000)
      .execute();
    return c.json(alerts.map(presentAlert), 200);
  });

  for (const action of ['acknowledge', 'resolve'] as const) {
    router.openapi(routes[action], async (c) => {
      const { id } = c.req.valid('param');
      const existing = await db.selectFrom('alerts').select(['home_id', 'status']).where('id', '=', id).executeTakeFirst();
      if (!existing || !homeRole(c.var.principal, existing.home_id)) throw hubError('HUB_ERR_ALERT_NOT_FOUND');
      requireHomeRole(c.var.principal, existing.home_id, 'technician');
      const userId = c.var.principal.user.id;
      const alert = action === 'acknowledge' ? await engine.acknowledge(id, userId) : await engine.resolveById(id, userId);
      if (!alert) throw hubError('HUB_ERR_ALERT_STATE', `The alert is ${existing.status}`);
      return c.json(presentAlert(alert), 200);
    });
  }

  router.openapi(routes.rules, async (c) => {
    const principal = c.var.principal;
    const rules = await db
      .selectFrom('alert_rules')
      .selectAll()
      .where((eb) => inVisibleHomes(eb, principal, 'alert_rules.home_id'))
      .orderBy('created_at')
      .execute();
    return c.json(rules.map(presentRule), 200);
  });

  router.openapi(routes.createRule, async (c) => {
    const input = c.req.valid('json');
    requireHomeRole(c.var.principal, input.home_id, 'owner');
    if (input.device_id && (await requireVisibleDevice(db, c.var.principal, input.device_id)).home_id !== input.home_id) {
      throw hubError('HUB_ERR_DEVICE_NOT_FOUND', 'The device belongs to another home');
    }
    const rule = await db
      .insertInto('alert_rules')
      .values({ ...input, device_id: input.device_id ?? null, warning: input.warning ?? null, critical: input.critical ?? null })
      .returningAll()
      .executeTakeFirstOrThrow();
    await engine.reload();
    c.var.log.info({ ruleId: rule.id }, 'alert rule added');
    return c.json(presentRule(rule), 201);
  });

  router.openapi(routes.deleteRule, async (c) => {
    const { id } = c.req.valid('param');
    const rule = await db.selectFrom('alert_rules').select('home_id').where('id', '=', id).executeTakeFirst();
    if (!rule || !homeRole(c.var.principal, rule.home_id)) throw hubError('HUB_ERR_ALERT_NOT_FOUND', 'Alert rule not found');
    requireHomeRole(c.var.principal, rule.home_id, 'owner');
    await db.deleteFrom('alert_rules').where('id', '=', id).execute();
    await engine.reload();
    return c.body(null, 204);
  });

  return router;
}
