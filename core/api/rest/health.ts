/** `GET /api/health`: public liveness and readiness for load balancers and humans. */
import { createRoute, z } from '@hono/zod-openapi';
import { json } from './openapi.js';
import { createRouter } from './router.js';

const Health = z
  .object({
    status: z.enum(['ok', 'degraded']),
    version: z.string(),
    uptime_s: z.number().describe('Seconds since the hub started'),
    db: z.object({ ok: z.boolean(), kind: z.enum(['pglite', 'postgres']), latency_ms: z.number().nullable() }),
    mqtt: z.object({ connected: z.boolean(), broker: z.enum(['embedded', 'external']) }),
    ingest: z.object({ received: z.number(), readings: z.number(), dropped: z.number().describe('Messages dropped, all reasons') }),
  })
  .openapi('Health');

const route = createRoute({
  method: 'get',
  path: '/health',
  tags: ['Hub'],
  summary: 'Whether the hub and its database are up',
  responses: { 200: json(Health, 'Healthy'), 503: json(Health, 'The database or the MQTT broker is unreachable') },
});

export const PUBLIC_HEALTH_ROUTES = ['GET /api/health'];

export interface HealthOptions {
  version: string;
  startedAt: number;
  db: { kind: 'pglite' | 'postgres'; ping(): Promise<number> };
  mqtt: { connected: boolean; broker: { kind: 'embedded' | 'external' } };
  telemetry: { counters: { received: number; readings: number; dropped: Record<string, number> } };
}

export function healthRoutes({ version, startedAt, db, mqtt, telemetry }: HealthOptions) {
  const router = createRouter();
  router.openapi(route, async (c) => {
    const latency = await db.ping().catch((error: unknown) => {
      c.var.log.warn({ err: error }, 'health check: database unreachable');
      return null;
    });
    const { received, readings, dropped } = telemetry.counters;
    const healthy = latency !== null && mqtt.connected;
    const body = {
      status: healthy ? ('ok' as const) : ('degraded' as const),
      version,
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
      db: { ok: latency !== null, kind: db.kind, latency_ms: latency === null ? null : Math.round(latency * 100) / 100 },
      mqtt: { connected: mqtt.connected, broker: mqtt.broker.kind },
      ingest: { received, readings, dropped: Object.values(dropped).reduce((a, b) => a + b, 0) },
    };
    return healthy ? c.json(body, 200) : c.json(body, 503);
  });
  return router;
}
