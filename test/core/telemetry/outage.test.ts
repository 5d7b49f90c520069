/**
 * A database outage while devices keep publishing: a private PostgreSQL server is started for
 * the test, stopped under load and started again; every reading taken in must be written.
 * Runs with TEST_DATABASE_URL (CI), and then needs PostgreSQL's server binaries (pg_ctl, initdb).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../core/config/index.js';
import { openDatabase } from '../../../core/db/index.js';
import { createHub, type Hub } from '../../../core/hub.js';
import { TEST_SECRET_KEY } from '../../harness/index.js';
import { privatePostgres, type PrivateServer } from '../../harness/servers.js';
import { sleep } from '../../harness/wait.js';

describe.runIf(process.env.TEST_DATABASE_URL)('readings during a database outage', () => {
  let server: PrivateServer;
  let hub: Hub;

  beforeAll(async () => {
    server = await privatePostgres();
    const config = loadConfig({ HUB_ADMIN_PASSWORD: 'admin-password-1', LOG_LEVEL: 'silent', PORT: '0', MQTT_PORT: '0', HUB_SECRET_KEY: TEST_SECRET_KEY });
    hub = await createHub(config, { database: await openDatabase({ kind: 'postgres', url: server.url }), plugins: [] });
  });
  afterAll(async () => {
    await hub?.stop();
    await server?.remove();
  });

  it('keeps readings in memory while the server is down and writes all of them when it is back', async () => {
    const db = hub.database.db;
    const home = await db.insertInto('homes').values({ name: 'h' }).returning('id').executeTakeFirstOrThrow();
    const res = await hub.app.request('/api/auth/login', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@localhost', password: 'admin-password-1' }),
    });
    const { token } = (await res.json()) as { token: string };
    const created = await hub.app.request(`/api/homes/${home.id}/devices`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ name: 'Gauge', kind: 'sensor' }),
    });
    const device = (await created.json()) as { id: string; mqtt: { telemetry_topic: string } };

    const publish = async (from: number, to: number) => {
      for (let i = from; i < to; i++) await hub.mqtt.publish(device.mqtt.telemetry_topic, JSON.stringify({ level: i }), { qos: 1 });
      while (hub.telemetry.counters.readings < to) await sleep(10);
    };
    await publish(0, 50);
    await hub.telemetry.flush();

    await server.stop();
    await publish(50, 150);
    expect(hub.states.get('sensor.gauge_level')?.state).toBe('149'); // ingest goes on
    await expect(hub.telemetry.flush()).rejects.toThrow();
    expect(hub.telemetry.pending).toBe(100);
    const health = await hub.app.request('/api/health');
    expect(health.status).toBe(503);

    await server.start();
    await publish(150, 200);
    for (let i = 0; i < 100 && hub.telemetry.pending > 0; i++) await hub.telemetry.flush().catch(() => sleep(100));
    const rows = await db.selectFrom('readings').select('value').where('device_id', '=', device.id).orderBy('value').execute();
    expect(rows.map((r) => r.value)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(hub.telemetry.counters.droppedReadings).toBe(0);
  }, 60_000); // stopping and starting a PostgreSQL server takes seconds on a busy machine
});
