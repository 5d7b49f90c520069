/**
 * Devices' credentials against live connections on the embedded broker: rotating or deleting
 * them closes the device's connections, so a session opened with the old password ends there.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type AddedDevice, type TestHub } from '../harness/index.js';
import { connectDevice } from '../harness/mqtt-devices.js';
import { until } from '../harness/wait.js';

describe('device credentials and live MQTT connections', () => {
  let t: TestHub;
  let owner: { token: string };
  let homeId: string;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    owner = await t.createUser('owner@example.com');
    homeId = await t.createHome(owner.token);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await t.stop();
  });

  const addDevice = (name: string) => t.addDevice(owner.token, homeId, name);

  const connect = async (device: AddedDevice, clientId = device.id) => {
    const client = await connectDevice(t.hub.mqtt.broker.url, device, { clientId });
    clients.push(client);
    return client;
  };

  const send = async (client: MqttClient, device: AddedDevice, level: number) => {
    await client.publishAsync(device.mqtt.telemetry_topic, JSON.stringify({ level }), { qos: 1 });
  };

  it('closes every connection of a device when its credentials are rotated', async () => {
    const device = await addDevice('Tank');
    const first = await connect(device);
    const second = await connect(device, `${device.id}-backup`);
    await send(first, device, 1);
    await until(() => t.hub.states.get('sensor.tank_level')?.state, (s) => s === '1');

    const res = await t.request(`/api/devices/${device.id}/credentials`, { method: 'POST', token: owner.token });
    expect(res.status).toBe(200);
    const rotated = (await res.json()) as AddedDevice;

    await until(() => [first.connected, second.connected], (open) => !open.includes(true), 2000);
    // The old password cannot open a new session, the new one can, and only its messages count.
    await expect(connect(device)).rejects.toThrow(/Bad username or password/i);
    const renewed = await connect(rotated);
    await send(renewed, rotated, 2);
    await until(() => t.hub.states.get('sensor.tank_level')?.state, (s) => s === '2');
    expect(t.logs).toContainEqual(expect.objectContaining({ msg: 'device credentials rotated', deviceId: device.id, disconnected: 2 }));
  });

  it('closes the connections of a deleted device, and leaves other devices connected', async () => {
    const doomed = await addDevice('Doomed');
    const other = await addDevice('Other');
    const doomedClient = await connect(doomed);
    const otherClient = await connect(other);

    const res = await t.request(`/api/devices/${doomed.id}`, { method: 'DELETE', token: owner.token });
    expect(res.status).toBe(204);

    await until(() => doomedClient.connected, (open) => !open, 2000);
    expect(otherClient.connected).toBe(true);
    await send(otherClient, other, 5);
    await until(() => t.hub.states.get('sensor.other_level')?.state, (s) => s === '5');
  });
});

describe('HUB_MQTT_DEVICE_URL', () => {
  it('tells devices where to connect instead of the broker the hub uses', async () => {
    const t = await createTestHub({ HUB_MQTT_DEVICE_URL: 'mqtts://mqtt.example.com:8883' });
    try {
      const owner = await t.createUser('owner@example.com');
      const homeId = await t.createHome(owner.token);
      const device = await t.addDevice(owner.token, homeId, 'Tank');
      expect(device.mqtt).toMatchObject({ host: 'mqtt.example.com', port: 8883 });
    } finally {
      await t.stop();
    }
  });
});
