/**
 * A database outage while devices keep publishing: a private PostgreSQL server is started for
 * the test, stopped under load and started again; every reading taken in must be written.
 * Runs with TEST_DATABASE_URL (CI), and then needs PostgreSQL's server binaries (pg_ctl, initdb).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../core/config/index.js';
import { openDatabase } from '../../../core/db/index.js';
import { createHub, type Hub } from '../../../core/hub.js';

const BIN = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'].find((dir) => existsSync(`${dir}/pg_ctl`));

/** Runs a PostgreSQL tool as the postgres user (the server refuses to run as root). */
function pg(tool: string, ...args: string[]): void {
  const asPostgres = process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--'] : [];
  const [command, ...rest] = [...asPostgres, `${BIN}/${tool}`, ...args];
  execFileSync(command!, rest, { stdio: 'ignore' });
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.runIf(process.env.TEST_DATABASE_URL)('readings during a database outage', () => {
  let dir: string;
  let port: number;
  let hub: Hub;
  const start = () => pg('pg_ctl', '-D', dir, '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, '-w', 'start');
  const stop = () => pg('pg_ctl', '-D', dir, '-m', 'fast', '-w', 'stop');

  beforeAll(async () => {
    if (!BIN) throw new Error('PostgreSQL server binaries (pg_ctl, initdb) not found under /usr/lib/postgresql/<15|16|17>/bin');
    dir = await mkdtemp(path.join(tmpdir(), 'hub-pg-'));
    await chmod(dir, 0o777); // the postgres user creates the cluster inside
    dir = path.join(dir, 'data');
    port = await freePort();
    pg('initdb', '-D', dir, '-A', 'trust', '-U', 'postgres');
    start();
    const config = loadConfig({ HUB_ADMIN_PASSWORD: 'admin-password-1', LOG_LEVEL: 'silent', PORT: '0', MQTT_PORT: '0' });
    hub = await createHub(config, { database: await openDatabase({ kind: 'postgres', url: `postgres://postgres@127.0.0.1:${port}/postgres` }), plugins: [] });
  });
  afterAll(async () => {
    await hub?.stop();
    try {
      stop();
    } catch {
      // already stopped
    }
    await rm(path.dirname(dir), { recursive: true, force: true });
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

    console.log('A');stop();console.log('B');
    await publish(50, 150);console.log('C');
    expect(hub.states.get('sensor.gauge_level')?.state).toBe('149'); // ingest goes on
    await expect(hub.telemetry.flush()).rejects.toThrow();
    expect(hub.telemetry.pending).toBe(100);
    const health = await hub.app.request('/api/health');
    expect(health.status).toBe(503);

    console.log('D');start();console.log('E');
    await publish(150, 200);console.log('F');
    for (let i = 0; i < 100 && hub.telemetry.pending > 0; i++) await hub.telemetry.flush().catch(() => sleep(100));
    const rows = await db.selectFrom('readings').select('value').where('device_id', '=', device.id).orderBy('value').execute();
    expect(rows.map((r) => r.value)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(hub.telemetry.counters.droppedReadings).toBe(0);
  });
});
