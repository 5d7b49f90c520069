/**
 * Telemetry entity ids across homes (issue 12, findings 1 and 5): ids are allocated by the
 * entity registry, so two devices whose slug and metric spell the same id never share an
 * entity, a device keeps its ids across restarts, and one device cannot flood the hub with
 * entities.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, reusableDatabase, type AddedDevice, type TestHub } from '../../harness/index.js';
import { until } from '../../harness/wait.js';
import { WsClient } from '../../harness/ws.js';

const SCRAPE = 'scrape-token-for-entities-test';

/** The entity ids a device's entities have now. */
const entityIdsOf = (t: TestHub, deviceId: string) =>
  [...t.hub.states.entries()].filter((e) => e.deviceId === deviceId).map((e) => e.state.entity_id).sort();

describe('telemetry entity ids of two homes whose names collide', () => {
  let t: TestHub;
  let a: { token: string; homeId: string; device: AddedDevice };
  let b: { token: string; homeId: string; device: AddedDevice };
  let url: string;

  beforeAll(async () => {
    t = await createTestHub();
    ({ url } = await t.hub.listen());
    const ownerA = await t.createUser('a@example.com');
    const ownerB = await t.createUser('b@example.com');
    const homeA = await t.createHome(ownerA.token, { name: 'A' });
    const homeB = await t.createHome(ownerB.token, { name: 'B' });
    a = { token: ownerA.token, homeId: homeA, device: await t.addDevice(ownerA.token, homeA, 'Weather', 'weather_station') };
    b = { token: ownerB.token, homeId: homeB, device: await t.addDevice(ownerB.token, homeB, 'Weather Wind', 'weather_station') };
  });
  afterAll(() => t?.stop());

  it("gives B's colliding metric another id: A keeps its entity, home, device and state", async () => {
    await t.hub.mqtt.publish(a.device.mqtt.telemetry_topic, JSON.stringify({ wind_speed: 5 }), { qos: 1 });
    await until(() => t.hub.states.get('sensor.weather_wind_speed')?.state, (s) => s === '5');

    // "Weather Wind" + speed spells the same id as "Weather" + wind_speed.
    await t.hub.mqtt.publish(b.device.mqtt.telemetry_topic, JSON.stringify({ speed: 9 }), { qos: 1 });
    const [bId] = await until(() => entityIdsOf(t, b.device.id), (ids) => ids.length === 1);
    expect(bId).toBe('sensor.weather_wind_speed_2');
    expect(t.hub.states.get(bId!)?.state).toBe('9');

    const aEntry = t.hub.states.entry('sensor.weather_wind_speed');
    expect(aEntry).toMatchObject({ homeId: a.homeId, deviceId: a.device.id, owner: 'telemetry' });
    expect(aEntry?.state).toMatchObject({ state: '5', attributes: { friendly_name: 'Weather wind speed' } });

    // Both keep feeding their own entity.
    await t.hub.mqtt.publish(b.device.mqtt.telemetry_topic, JSON.stringify({ speed: 10 }), { qos: 1 });
    await t.hub.mqtt.publish(a.device.mqtt.telemetry_topic, JSON.stringify({ wind_speed: 6 }), { qos: 1 });
    await until(() => t.hub.states.get('sensor.weather_wind_speed')?.state, (s) => s === '6');
    await until(() => t.hub.states.get(bId!)?.state, (s) => s === '10');
    expect(t.hub.states.entry('sensor.weather_wind_speed')?.homeId).toBe(a.homeId);
    expect(t.hub.telemetry.counters.dropped.failed ?? 0).toBe(0);
  });

  it("never shows B A's state, over REST or the WebSocket API", async () => {
    const list = await (await t.request('/api/states', { token: b.token })).text();
    expect(list).not.toMatch(/"sensor\.weather_wind_speed"/);
    expect(list).not.toContain('Weather wind speed');
    expect((await t.request('/api/states/sensor.weather_wind_speed', { token: b.token })).status).toBe(404);
    expect((await t.request('/api/states/sensor.weather_wind_speed', { token: a.token })).status).toBe(200);

    const ws = await WsClient.authenticated(url, b.token);
    try {
      const states = (await ws.command({ id: 1, type: 'get_states' })).result as { entity_id: string }[];
      expect(states.map((s) => s.entity_id)).toEqual(['sensor.weather_wind_speed_2']);
      await ws.command({ id: 2, type: 'subscribe_events', event_type: 'state_changed' });
      await t.hub.mqtt.publish(a.device.mqtt.telemetry_topic, JSON.stringify({ wind_speed: 7 }), { qos: 1 });
      await t.hub.mqtt.publish(b.device.mqtt.telemetry_topic, JSON.stringify({ speed: 11 }), { qos: 1 });
      // B's own change arrives; A's, published first, never does.
      const event = await ws.next((m) => m.type === 'event');
      expect((event.event as { data: { entity_id: string } }).data.entity_id).toBe('sensor.weather_wind_speed_2');
      expect(JSON.stringify(ws.messages)).not.toMatch(/"sensor\.weather_wind_speed"/);
    } finally {
      ws.close();
    }
  });

  it('refuses a state change that would move an entity to another home or device', () => {
    const moveHome = () => t.hub.states.set('sensor.weather_wind_speed', '1', {}, { homeId: b.homeId, owner: 'telemetry', deviceId: a.device.id });
    const moveDevice = () => t.hub.states.set('sensor.weather_wind_speed', '1', {}, { homeId: a.homeId, owner: 'telemetry', deviceId: b.device.id });
    expect(moveHome).toThrow(expect.objectContaining({ code: 'HUB_ERR_ENTITY_OWNED' }));
    expect(moveDevice).toThrow(expect.objectContaining({ code: 'HUB_ERR_ENTITY_OWNED' }));
    expect(t.hub.states.entry('sensor.weather_wind_speed')).toMatchObject({ homeId: a.homeId, deviceId: a.device.id, state: { state: '7' } });
  });
});

describe('telemetry entity ids across a restart', () => {
  it('keeps a device its ids, even when the id it first wanted is free again', async () => {
    const database = await reusableDatabase();
    try {
      const first = await createTestHub({}, { database: database.handle() });
      const owner = await first.createUser('owner@example.com');
      const other = await first.createUser('other@example.com');
      const homeA = await first.createHome(owner.token);
      const homeB = await first.createHome(other.token);
      const weather = await first.addDevice(owner.token, homeA, 'Weather', 'weather_station');
      const wind = await first.addDevice(other.token, homeB, 'Weather Wind', 'weather_station');
      await first.hub.mqtt.publish(weather.mqtt.telemetry_topic, JSON.stringify({ wind_speed: 5 }), { qos: 1 });
      await until(() => first.hub.states.get('sensor.weather_wind_speed'), (s) => s !== undefined);
      await first.hub.mqtt.publish(wind.mqtt.telemetry_topic, JSON.stringify({ speed: 9 }), { qos: 1 });
      await until(() => entityIdsOf(first, wind.id), (ids) => ids.length === 1);
      // A's device goes; its ids are free for others, not for B's metric, which keeps its own.
      expect((await first.request(`/api/devices/${weather.id}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
      await first.stop();

      const second = await createTestHub({}, { database: database.handle() });
      expect(entityIdsOf(second, wind.id)).toEqual(['sensor.weather_wind_speed_2']);
      await second.hub.mqtt.publish(wind.mqtt.telemetry_topic, JSON.stringify({ speed: 12, gust: 20 }), { qos: 1 });
      await until(() => entityIdsOf(second, wind.id), (ids) => ids.length === 2);
      expect(entityIdsOf(second, wind.id)).toEqual(['sensor.weather_wind_gust', 'sensor.weather_wind_speed_2']);
      expect(second.hub.states.get('sensor.weather_wind_speed_2')?.state).toBe('12');
      expect(second.hub.states.get('sensor.weather_wind_speed')).toBeUndefined();

      // A new device takes the freed id.
      const token = await second.login('owner@example.com', 'user-password-1');
      const again = await second.addDevice(token, homeA, 'Weather', 'weather_station');
      await second.hub.mqtt.publish(again.mqtt.telemetry_topic, JSON.stringify({ wind_speed: 3 }), { qos: 1 });
      await until(() => entityIdsOf(second, again.id), (ids) => ids.length === 1);
      expect(entityIdsOf(second, again.id)).toEqual(['sensor.weather_wind_speed']);
      await second.stop();
    } finally {
      await database.close();
    }
  }, 60_000); // two hub starts
});

describe('telemetry entity caps', () => {
  let t: TestHub;
  let owner: { token: string };
  let homeId: string;

  beforeAll(async () => {
    // Default per-device cap (100); a home quota a little above it.
    t = await createTestHub({ HUB_MAX_ENTITIES_PER_HOME: '150', HUB_METRICS_TOKEN: SCRAPE });
    owner = await t.createUser('caps@example.com');
    homeId = await t.createHome(owner.token);
  });
  afterAll(() => t?.stop());

  const metrics = (prefix: string, n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${String(i).padStart(4, '0')}`, i]));

  it('persists at most the per-device cap of a message with 2,000 metric names; the rest is counted and logged', async () => {
    const flood = await t.addDevice(owner.token, homeId, 'Flood', 'weather_station');
    await t.hub.mqtt.publish(flood.mqtt.telemetry_topic, JSON.stringify(metrics('m', 2000)), { qos: 1 });
    await until(() => t.hub.telemetry.counters.droppedMetrics.metric_cap ?? 0, (n) => n === 1900);
    expect(entityIdsOf(t, flood.id)).toHaveLength(100);
    expect(t.hub.states.get('sensor.flood_m0099')?.state).toBe('99');
    expect(t.hub.states.get('sensor.flood_m0100')).toBeUndefined();
    expect(t.logs).toContainEqual(expect.objectContaining({ msg: 'telemetry metrics dropped', reason: 'metric_cap', count: 1900, deviceId: flood.id }));

    await t.hub.states.flush();
    const stored = await t.hub.database.db.selectFrom('entity_states').select('entity_id').where('device_id', '=', flood.id).execute();
    expect(stored).toHaveLength(100);

    // Known metrics of a later message still apply; new ones are dropped.
    const readings = t.hub.telemetry.counters.readings;
    await t.hub.mqtt.publish(flood.mqtt.telemetry_topic, JSON.stringify({ m0001: 42, extra: 1 }), { qos: 1 });
    await until(() => t.hub.states.get('sensor.flood_m0001')?.state, (s) => s === '42');
    expect(t.hub.telemetry.counters.readings).toBe(readings + 1);
    expect(t.hub.telemetry.counters.droppedMetrics.metric_cap).toBe(1901);
    expect(t.hub.states.get('sensor.flood_extra')).toBeUndefined();
  });

  it('stops at the per-home quota, for telemetry and virtual entities alike', async () => {
    const second = await t.addDevice(owner.token, homeId, 'Second', 'weather_station');
    await t.hub.mqtt.publish(second.mqtt.telemetry_topic, JSON.stringify(metrics('x', 80)), { qos: 1 });
    await until(() => t.hub.telemetry.counters.droppedMetrics.entity_quota ?? 0, (n) => n === 30);
    expect(entityIdsOf(t, second.id)).toHaveLength(50);
    expect(t.logs).toContainEqual(expect.objectContaining({ msg: 'telemetry metrics dropped', reason: 'entity_quota', count: 30 }));

    const admin = await t.adminToken();
    const refused = await t.request('/api/states/sensor.one_more', { token: admin, json: { state: '1', home_id: homeId } });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_ENTITY_QUOTA');

    const scrape = await (await t.request('/metrics', { token: SCRAPE })).text();
    expect(scrape).toContain('hub_mqtt_metrics_dropped_total{reason="metric_cap"} 1901');
    expect(scrape).toContain('hub_mqtt_metrics_dropped_total{reason="entity_quota"} 30');
  });
});
