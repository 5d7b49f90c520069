/** `GET /api/devices/{id}/readings`: raw readings or rollups over a period, as JSON or CSV. */
import { createRoute, z } from '@hono/zod-openapi';
import type { Kysely } from 'kysely';
import { createRouter, errors } from '../api/rest/index.js';
import { requireVisibleDevice } from '../devices/index.js';
import type { Database } from '../db/index.js';
import { hubError } from '../errors/index.js';

const MAX_ROWS = 50_000;
const DAY_MS = 86_400_000;

const ReadingsQuery = z.object({
  metric: z.string().regex(/^[a-z0-9_]{1,64}$/).optional().describe('One metric; default all'),
  start: z.iso.datetime({ offset: true }).optional().describe('Default: a day before end'),
  end: z.iso.datetime({ offset: true }).optional().describe('Default: now'),
  resolution: z.enum(['raw', 'minute', 'hour']).default('raw'),
  format: z.enum(['json', 'csv']).default('json'),
});
const Raw = z.object({ metric: z.string(), ts: z.iso.datetime(), value: z.number().nullable(), text_value: z.string().nullable() });
const Bucket = z.object({ metric: z.string(), bucket: z.iso.datetime(), min: z.number(), max: z.number(), avg: z.number(), count: z.number() });

const route = createRoute({
  method: 'get',
  path: '/devices/{id}/readings',
  tags: ['Devices'],
  summary: "A device's readings: raw, or per-minute / per-hour min, max, avg and count",
  description: `At most ${MAX_ROWS} rows; ask for a shorter period or a coarser resolution beyond that. \`format=csv\` downloads CSV.`,
  request: { params: z.object({ id: z.uuid() }), query: ReadingsQuery },
  responses: {
    200: {
      description: 'Readings, oldest first',
      content: { 'application/json': { schema: z.array(z.union([Raw, Bucket])) }, 'text/csv': { schema: z.string() } },
    },
    ...errors(400, 401, 404),
  },
});

const csvCell = (v: unknown) => {
  const text = v instanceof Date ? v.toISOString() : v === null || v === undefined ? '' : String(v);
  // Quote when needed, and defuse spreadsheet formulas in text a device sent.
  const safe = /^[=+\-@]/.test(text) && Number.isNaN(Number(text)) ? `'${text}` : text;
  return /[",\n\r]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
};

export function readingRoutes({ db }: { db: Kysely<Database> }) {
  const router = createRouter();
  router.openapi(route, async (c) => {
    const { id } = c.req.valid('param');
    const query = c.req.valid('query');
    const device = await requireVisibleDevice(db, c.var.principal, id);
    const end = query.end ? new Date(query.end) : new Date();
    const start = query.start ? new Date(query.start) : new Date(end.getTime() - DAY_MS);
    if (!(start < end)) throw hubError('HUB_ERR_VALIDATION', 'start must be before end');

    let rows: Record<string, unknown>[];
    if (query.resolution === 'raw') {
      rows = await db
        .selectFrom('readings')
        .select(['metric', 'ts', 'value', 'text_value'])
        .where('device_id', '=', id)
        .where('ts', '>=', start)
        .where('ts', '<', end)
        .$if(query.metric !== undefined, (q) => q.where('metric', '=', query.metric!))
        .orderBy('ts')
        .orderBy('metric')
        .limit(MAX_ROWS + 1)
        .execute();
    } else {
      rows = await db
        .selectFrom(query.resolution === 'minute' ? 'readings_minute' : 'readings_hour')
        .select(['metric', 'bucket', 'min', 'max', 'avg', 'count'])
        .where('device_id', '=', id)
        .where('bucket', '>=', start)
        .where('bucket', '<', end)
        .$if(query.metric !== undefined, (q) => q.where('metric', '=', query.metric!))
        .orderBy('bucket')
        .orderBy('metric')
        .limit(MAX_ROWS + 1)
        .execute();
    }
    if (rows.length > MAX_ROWS) throw hubError('HUB_ERR_VALIDATION', `More than ${MAX_ROWS} rows; shorten the period or use a coarser resolution`);

    if (query.format === 'csv') {
      const columns = Object.keys(rows[0] ?? (query.resolution === 'raw' ? Raw.shape : Bucket.shape));
      const lines = [columns.join(','), ...rows.map((row) => columns.map((k) => csvCell(row[k])).join(','))];
      c.header('Content-Type', 'text/csv; charset=utf-8');
      c.header('Content-Disposition', `attachment; filename="${device.slug}-${query.resolution}.csv"`);
      return c.body(`${lines.join('\r\n')}\r\n`, 200);
    }
    const iso = (row: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]));
    return c.json(rows.map(iso) as z.infer<typeof Raw>[], 200);
  });
  return router;
}
