/**
 * Telemetry over a real broker: the embedded one (always) and the Mosquitto named by
 * `TEST_MQTT_URL` (CI), each test hub under its own topic root.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyRetention, rollUpReadings } from '../../../core/telemetry/index.js';
import { createTestHub, type AddedDevice, type TestHub } from '../../harness/index.js';
import { connectDevice } from '../../harness/mqtt-devices.js';
import { sleep, until } from '../../harness/wait.js';

const brokers: [string, string | undefined][] = [['embedded broker', undefined]];
if (process.env.TEST_MQTT_URL) brokers.push(['external broker (TEST_MQTT_URL)', process.env.TEST_MQTT_URL]);

describe.each(brokers)('telemetry through the %s', (_, externalUrl) => {
  let t: TestHub;
  let owner: { id: string; token: string };
  let homeId: string;
  let device: AddedDevice;
  const clients: MqttClient[] = [];

  async function connectAsDevice(added: AddedDevice, extra: IClientOptions = {}): Promise<MqttClient> {
    // On an external broker the hub does not manage logins; Mosquitto here allows anonymous clients.
    const client = externalUrl
      ? await mqtt.connectAsync(externalUrl, { reconnectPeriod: 0, ...extra })
      : await connectDevice(t.hub.mqtt.broker.url, added, extra);
    clients.push(client);
    return client;
  }

  const addDevice = (name: string) => t.addDevice(owner.token, homeId, name, 'weather_station');

  const readings = (deviceId: string) =>
    t.hub.database.db.selectFrom('readings').selectAll().where('device_id', '=', deviceId).orderBy('metric').execute();

  beforeAll(async () => {
    const root = `t${crypto.randomUUID().slice(0, 8)}`;
    t = await createTestHub({ HUB_MQTT_ROOT: root, ...(externalUrl ? { MQTT_URL: externalUrl } : {}) });
    owner = await t.createUser('owner@example.com');
    homeId = await t.createHome(owner.token, { name: 'Garden' });
    device = await addDevice('Weather Station');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await t.stop();
  });

  it('hands out credentials and topics once', () => {
    expect(device.slug).toBe('weather_station');
    expect(device.mqtt).toMatchObject({
      username: device.id,
      password: expect.stringMatching(/^[a-z2-7]{32}$/),
      telemetry_topic: `${t.hub.mqtt.root}/${homeId}/${device.id}/telemetry`,
      command_topic: `${t.hub.mqtt.root}/${homeId}/${device.id}/command`,
    });
  });

  it('turns a telemetry message into entities and readings', async () => {
    const client = await connectAsDevice(device);
    await client.publishAsync(device.mqtt.telemetry_topic, JSON.stringify({ battery: 87, temperature: 21.5, raining: true, mode: 'eco' }), { qos: 1 });
    const battery = await until(() => t.hub.states.get('sensor.weather_station_battery'), (s) => s !== undefined);
    expect(battery).toMatchObject({ state: '87', attributes: { unit_of_measurement: '%', device_class: 'battery' } });
    expect(t.hub.states.get('sensor.weather_station_temperature')?.state).toBe('21.5');
    expect(t.hub.states.get('binary_sensor.weather_station_raining')?.state).toBe('on');
    expect(t.hub.states.get('sensor.weather_station_mode')?.state).toBe('eco');
    expect(t.hub.states.entry('sensor.weather_station_battery')).toMatchObject({ homeId, deviceId: device.id });

    await t.hub.telemetry.flush();
    const rows = await readings(device.id);
    expect(rows.map((r) => [r.metric, r.value, r.text_value])).toEqual([
      ['battery', 87, null],
      ['mode', null, 'eco'],
      ['raining', 1, null],
      ['temperature', 21.5, null],
    ]);
  });

  it.each([
    ['not JSON', '{"battery": 5', 'malformed'],
    ['a JSON array', '[1,2]', 'malformed'],
    ['an empty object', '{}', 'malformed'],
    ['a value that is not finite', '{"battery": 1e999}', 'invalid_value'],
    ['an object value', '{"battery": 50, "nested": {"x": 1}}', 'invalid_value'],
    ['a bad metric name', '{"bat tery": 50}', 'invalid_value'],
    ['a metric name that would break the entity id', '{"_battery": 50}', 'invalid_value'],
    ['a clock far off', `{"battery": 50, "ts": ${Date.now() + 7 * 86_400_000}}`, 'malformed'],
    ['more than 64 KiB', JSON.stringify({ note: 'x'.repeat(70 * 1024) }), 'too_large'],
  ])('drops %s whole, and counts it', async (_, payload, reason) => {
    const before = t.hub.telemetry.counters.dropped[reason as 'malformed'] ?? 0;
    const stateBefore = t.hub.states.get('sensor.weather_station_battery')?.state;
    await t.hub.mqtt.publish(device.mqtt.telemetry_topic, payload);
    await until(() => t.hub.telemetry.counters.dropped[reason as 'malformed'] ?? 0, (n) => n === before + 1);
    expect(t.hub.states.get('sensor.weather_station_battery')?.state).toBe(stateBefore);
    expect(t.hub.states.get('sensor.weather_station_nested')).toBeUndefined();
  });

  it('drops messages for unknown devices and for another home', async () => {
    const before = t.hub.telemetry.counters.dropped.unknown_device ?? 0;
    await t.hub.mqtt.publish(`${t.hub.mqtt.root}/${homeId}/${crypto.randomUUID()}/telemetry`, '{"battery": 1}');
    await t.hub.mqtt.publish(`${t.hub.mqtt.root}/${crypto.randomUUID()}/${device.id}/telemetry`, '{"battery": 1}');
    await until(() => t.hub.telemetry.counters.dropped.unknown_device ?? 0, (n) => n === before + 2);
  });

  it('marks a device offline through its last will', async () => {
    const online = await addDevice('Rain Gauge');
    const client = await connectAsDevice(online, { will: { topic: online.mqtt.status_topic, payload: Buffer.from('offline'), qos: 1, retain: false } });
    await client.publishAsync(online.mqtt.status_topic, 'online', { qos: 1 });
    await until(() => t.hub.states.get('binary_sensor.rain_gauge_online')?.state, (s) => s === 'on');
    client.stream.destroy(); // vanish without DISCONNECT: the broker sends the will
    await until(() => t.hub.states.get('binary_sensor.rain_gauge_online')?.state, (s) => s === 'off');
    const row = await until(
      () => t.hub.database.db.selectFrom('devices').select(['online', 'last_seen']).where('id', '=', online.id).executeTakeFirstOrThrow(),
      (r) => r.online === false,
    );
    expect(row.last_seen).not.toBeNull();
  });

  it('serves readings raw and rolled up, as JSON and CSV', async () => {
    const gauge = await addDevice('Soil Probe');
    const minuteStart = Math.floor(Date.now() / 60_000) * 60_000;
    const samples = [
      { ts: minuteStart - 150_000, moisture: 10 },
      { ts: minuteStart - 140_000, moisture: 20 },
      { ts: minuteStart - 90_000, moisture: 40, note: '=cmd()' },
    ];
    const before = t.hub.telemetry.counters.readings;
    for (const sample of samples) await t.hub.mqtt.publish(gauge.mqtt.telemetry_topic, JSON.stringify(sample), { qos: 1 });
    await until(() => t.hub.telemetry.counters.readings, (n) => n === before + 4);
    await t.hub.telemetry.flush();
    await rollUpReadings(t.hub.database.db);

    const url = `/api/devices/${gauge.id}/readings`;
    const raw = (await (await t.request(`${url}?metric=moisture`, { token: owner.token })).json()) as { value: number }[];
    expect(raw.map((r) => r.value)).toEqual([10, 20, 40]);
    const minutes = (await (await t.request(`${url}?metric=moisture&resolution=minute`, { token: owner.token })).json()) as Record<string, unknown>[];
    expect(minutes).toEqual([
      { metric: 'moisture', bucket: new Date(minuteStart - 180_000).toISOString(), min: 10, max: 20, avg: 15, count: 2 },
      { metric: 'moisture', bucket: new Date(minuteStart - 120_000).toISOString(), min: 40, max: 40, avg: 40, count: 1 },
    ]);

    const csv = await t.request(`${url}?format=csv`, { token: owner.token });
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines[0]).toBe('metric,ts,value,text_value');
    expect(lines).toContain(`note,${new Date(minuteStart - 90_000).toISOString()},,'=cmd()`);

    expect((await t.request(`${url}?resolution=weekly`, { token: owner.token })).status).toBe(400);
    expect((await t.request(`${url}?start=2026-01-02T00:00:00Z&end=2026-01-01T00:00:00Z`, { token: owner.token })).status).toBe(400);
  });

  it('forgets a deleted device: its messages are dropped and nothing half-written remains', async () => {
    const gone = await addDevice('Short Lived');
    await t.hub.mqtt.publish(gone.mqtt.telemetry_topic, '{"battery": 5}', { qos: 1 });
    await until(() => t.hub.states.get('sensor.short_lived_battery'), (s) => s !== undefined);
    expect((await t.request(`/api/devices/${gone.id}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
    expect(t.hub.states.get('sensor.short_lived_battery')).toBeUndefined();
    const before = t.hub.telemetry.counters.dropped.unknown_device ?? 0;
    await t.hub.mqtt.publish(gone.mqtt.telemetry_topic, '{"battery": 6}', { qos: 1 });
    await until(() => t.hub.telemetry.counters.dropped.unknown_device ?? 0, (n) => n === before + 1);
    await t.hub.telemetry.flush(); // the reading queued before the delete does not block the writer
    expect(await readings(gone.id)).toEqual([]);
  });

  it("keeps other homes out of a home's devices", async () => {
    const stranger = await t.createUser(`stranger-${crypto.randomUUID().slice(0, 6)}@example.com`);
    expect((await t.request(`/api/devices/${device.id}`, { token: stranger.token })).status).toBe(404);
    expect((await t.request(`/api/homes/${homeId}/devices`, { token: stranger.token })).status).toBe(404);
    expect((await t.request(`/api/devices/${device.id}/credentials`, { method: 'POST', token: stranger.token })).status).toBe(404);
    expect((await t.request(`/api/devices/${device.id}/readings`, { token: stranger.token })).status).toBe(404);
    expect((await t.request(`/api/homes/${homeId}/devices`, { token: stranger.token, json: { name: 'x', kind: 'y' } })).status).toBe(404);
    const list = (await (await t.request(`/api/homes/${homeId}/devices`, { token: owner.token })).json()) as { id: string }[];
    expect(list.map((d) => d.id)).toContain(device.id);
  });

  it('reports the broker in /api/health', async () => {
    const health = await (await t.request('/api/health')).json();
    expect(health).toMatchObject({ status: 'ok', mqtt: { connected: true, broker: externalUrl ? 'external' : 'embedded' } });
    expect(health.ingest.received).toBeGreaterThan(0);
  });
});

describe('the embedded broker’s access rules', () => {
  let t: TestHub;
  let homeId: string;
  let a: AddedDevice;
  let b: AddedDevice;
  let port: number;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    const owner = await t.createUser('acl@example.com');
    homeId = await t.createHome(owner.token);
    a = await t.addDevice(owner.token, homeId, 'Sensor A');
    b = await t.addDevice(owner.token, homeId, 'Sensor B');
    port = Number(new URL(t.hub.mqtt.broker.url).port);
    // The rotation test below needs a's owner token.
    Object.assign(a, { ownerToken: owner.token });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await t.stop();
  });

  const connect = async (username: string | undefined, password: string | undefined) => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username, password, clientId: username, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  };

  it('refuses clients without valid credentials', async () => {
    await expect(connect(undefined, undefined)).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(connect(a.id, 'wrong-password')).rejects.toThrow(/Bad username or password/i);
    await expect(connect('not-a-device', 'x')).rejects.toThrow(/Bad username or password/i);
    expect(t.hub.mqtt.refused.auth).toBeGreaterThanOrEqual(3);
  });

  it("disconnects a device that publishes to another device's topic, and writes nothing", async () => {
    const client = await connect(a.id, a.mqtt.password);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(b.mqtt.telemetry_topic, JSON.stringify({ battery: 1 }));
    await closed;
    await sleep(100);
    expect(t.hub.mqtt.refused.publish).toBe(1);
    expect(t.hub.states.get('sensor.sensor_b_battery')).toBeUndefined();
  });

  it('lets a device subscribe to its own commands only', async () => {
    const client = await connect(a.id, a.mqtt.password);
    const own = await client.subscribeAsync(a.mqtt.command_topic);
    expect(own[0]?.qos).toBe(0);
    // A refused filter comes back as SUBACK 0x80, which mqtt.js reports as an error.
    await expect(client.subscribeAsync(b.mqtt.command_topic)).rejects.toThrow(/Subscribe error/);
    await expect(client.subscribeAsync('#')).rejects.toThrow(/Subscribe error/);
    expect(t.hub.mqtt.refused.subscribe).toBe(2);
    expect(client.connected).toBe(true);
  });

  it('stops the old password when credentials are rotated', async () => {
    const res = await t.request(`/api/devices/${a.id}/credentials`, { method: 'POST', token: (a as unknown as { ownerToken: string }).ownerToken });
    const rotated = (await res.json()) as AddedDevice;
    expect(rotated.mqtt.password).not.toBe(a.mqtt.password);
    await expect(connect(a.id, a.mqtt.password)).rejects.toThrow(/Bad username or password/i);
    await connect(a.id, rotated.mqtt.password);
  });
});

describe('rollups and retention', () => {
  it('folds minutes into hours and deletes readings past their retention', async () => {
    const t = await createTestHub();
    try {
      const owner = await t.createUser('roll@example.com');
      const homeId = await t.createHome(owner.token);
      const { id } = await t.addDevice(owner.token, homeId, 'Probe');
      const db = t.hub.database.db;
      const lastHour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000);
      const minute = (m: number) => new Date(lastHour.getTime() + m * 60_000);
      await db
        .insertInto('readings_minute')
        .values([
          { device_id: id, metric: 'level', bucket: minute(0), min: 1, max: 3, avg: 2, count: 2 },
          { device_id: id, metric: 'level', bucket: minute(30), min: 4, max: 8, avg: 6, count: 6 },
        ])
        .execute();
      await rollUpReadings(db);
      const hour = await db.selectFrom('readings_hour').selectAll().where('device_id', '=', id).execute();
      expect(hour).toEqual([expect.objectContaining({ bucket: lastHour, min: 1, max: 8, avg: 5, count: 8 })]);

      const daysAgo = (d: number) => new Date(Date.now() - d * 86_400_000);
      await db.insertInto('readings').values([
        { device_id: id, metric: 'level', ts: daysAgo(8), value: 1, text_value: null },
        { device_id: id, metric: 'level', ts: daysAgo(6), value: 2, text_value: null },
      ]).execute();
      await db.insertInto('readings_minute').values({ device_id: id, metric: 'level', bucket: daysAgo(31), min: 1, max: 1, avg: 1, count: 1 }).execute();
      const deleted = await applyRetention(db, { rawDays: 7, minuteDays: 30, hourDays: 365 });
      expect(deleted).toEqual({ raw: 1, minute: 1, hour: 0 });
      expect((await db.selectFrom('readings').select('value').where('device_id', '=', id).execute()).map((r) => r.value)).toEqual([2]);
    } finally {
      await t.stop();
    }
  });
});
