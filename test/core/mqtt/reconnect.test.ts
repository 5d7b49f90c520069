/**
 * An external broker that goes away and comes back: the hub reports it, reconnects with
 * back-off, subscribes again (the broker keeps no sessions) and ingests as before. Uses a
 * private Mosquitto on a free port; runs where Mosquitto is installed and TEST_MQTT_URL says so (CI).
 */
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { privateMosquitto, type PrivateServer } from '../../harness/servers.js';
import { sleep, until } from '../../harness/wait.js';

describe.runIf(process.env.TEST_MQTT_URL)('external broker restart', () => {
  let broker: PrivateServer;
  let t: TestHub;

  beforeAll(async () => {
    broker = await privateMosquitto(() => ['allow_anonymous true']);
    t = await createTestHub({ MQTT_URL: broker.url });
  });
  afterAll(async () => {
    await t?.stop();
    await broker?.remove();
  });

  it('reconnects, subscribes again and goes on ingesting', async () => {
    const owner = await t.createUser('owner@example.com');
    const homeId = await t.createHome(owner.token);
    const res = await t.request(`/api/homes/${homeId}/devices`, { token: owner.token, json: { name: 'Tank', kind: 'sensor' } });
    const { mqtt: topics } = (await res.json()) as { mqtt: { telemetry_topic: string } };
    const send = async (level: number) => {
      const device = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
      await device.publishAsync(topics.telemetry_topic, JSON.stringify({ level }), { qos: 1 });
      await device.endAsync();
    };
    const health = async () => ((await (await t.request('/api/health')).json()) as { mqtt: { connected: boolean } }).mqtt.connected;

    await send(1);
    await until(() => t.hub.states.get('sensor.tank_level')?.state, (s) => s === '1');

    await broker.stop();
    await until(health, (connected) => !connected);
    expect((await t.request('/api/health')).status).toBe(503);
    await sleep(1500); // let a reconnect attempt or two fail

    await broker.start();
    await until(health, (connected) => connected, 15_000);
    // The restarted broker has no record of the hub's subscriptions: this arrives only if the hub subscribed again.
    await send(2);
    await until(() => t.hub.states.get('sensor.tank_level')?.state, (s) => s === '2');
    expect((await t.request('/api/health')).status).toBe(200);
    expect(t.logs.some((line) => line.msg === 'mqtt reconnecting')).toBe(true);
  });
});
