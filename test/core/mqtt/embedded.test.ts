/**
 * Client ids on the embedded broker are bound to the device that logs in: a device cannot
 * take another device's (or the hub's) id, kick it off, or resume its session. Packets over
 * `HUB_MQTT_MAX_PACKET_BYTES` close their connection before the broker holds them.
 */
import { connect as connectTcp } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type AddedDevice, type TestHub } from '../../harness/index.js';
import { connectDevice } from '../../harness/mqtt-devices.js';
import { payloadFilling, publishBytes, remainingLength } from '../../harness/mqtt-packets.js';
import { sleep, until } from '../../harness/wait.js';

describe('client ids on the embedded broker', () => {
  let t: TestHub;
  let a: AddedDevice;
  let b: AddedDevice;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    const owner = await t.createUser('owner@example.com');
    const homeId = await t.createHome(owner.token);
    a = await t.addDevice(owner.token, homeId, 'A');
    b = await t.addDevice(owner.token, homeId, 'B');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await t.stop();
  });

  const connect = async (device: AddedDevice, clientId: string, extra: IClientOptions = {}) => {
    const client = await connectDevice(t.hub.mqtt.broker.url, device, { clientId, ...extra });
    clients.push(client);
    return client;
  };

  it("refuses a device that connects with another device's client id, and the owner stays connected", async () => {
    const victim = await connect(a, a.id);
    let kicked = false;
    victim.on('close', () => (kicked = true));
    const refusedBefore = t.hub.mqtt.refused.auth;

    // CONNACK return code 2, which mqtt.js reports as "Identifier rejected".
    await expect(connect(b, a.id)).rejects.toThrow(/Identifier rejected/i);
    await expect(connect(b, `${a.id}-second`)).rejects.toThrow(/Identifier rejected/i);
    await expect(connect(b, 'mqttjs_12345678')).rejects.toThrow(/Identifier rejected/i);

    await sleep(100); // a takeover would close the victim's socket right after B's CONNACK
    expect(kicked).toBe(false);
    expect(victim.connected).toBe(true);
    expect(t.hub.mqtt.refused.auth - refusedBefore).toBe(3);
    expect(t.logs).toContainEqual(expect.objectContaining({ refused: 'auth', clientId: a.id, username: b.id, reason: 'client id not bound to the device' }));
  });

  it("lets a device use its own id and '<id>-<suffix>' for a second connection", async () => {
    const first = await connect(b, b.id);
    const second = await connect(b, `${b.id}-commands`);
    expect([first.connected, second.connected]).toEqual([true, true]);
  });

  it("refuses the hub's client id names to devices", async () => {
    await expect(connect(a, 'hub')).rejects.toThrow(/Identifier rejected/i);
    await expect(connect(a, 'hub-0123456789ab')).rejects.toThrow(/Identifier rejected/i);
  });

  it("keeps a device's persistent session, and its queued commands, away from other devices", async () => {
    const owner = await connect(a, a.id, { clean: false });
    await owner.subscribeAsync(a.mqtt.command_topic, { qos: 1 });
    await owner.endAsync();
    await t.hub.mqtt.publish(a.mqtt.command_topic, 'dock', { qos: 1 });

    await expect(connect(b, a.id, { clean: false })).rejects.toThrow(/Identifier rejected/i);

    // Listening before the connection opens: queued messages follow the CONNACK at once.
    const received: string[] = [];
    const back = mqtt.connect(t.hub.mqtt.broker.url, {
      username: a.mqtt.username,
      password: a.mqtt.password,
      clientId: a.id,
      clean: false,
      reconnectPeriod: 0,
    });
    clients.push(back);
    back.on('message', (_topic, payload) => received.push(payload.toString()));
    await until(() => received, (r) => r.length > 0);
    expect(received).toEqual(['dock']);
  });
});

describe('packet size limit on the embedded broker', () => {
  let t: TestHub;
  let device: AddedDevice;
  let limit: number;
  let port: number;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    const owner = await t.createUser('owner@example.com');
    const homeId = await t.createHome(owner.token);
    device = await t.addDevice(owner.token, homeId, 'Big');
    limit = t.hub.config.mqttMaxPacketBytes;
    port = Number(new URL(t.hub.mqtt.broker.url).port);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await t.stop();
  });

  const connect = async () => {
    const client = await connectDevice(t.hub.mqtt.broker.url, device);
    clients.push(client);
    return client;
  };

  /** Writes `bytes` on a raw connection and resolves when the broker closes it; fails if it is still open after 3 s (aedes waits 30 s for a CONNECT). */
  const closedAfterSending = (bytes: number[]) =>
    new Promise<void>((resolve, reject) => {
      const socket = connectTcp(port, '127.0.0.1', () => socket.write(Buffer.from(bytes)));
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('the broker kept the connection open'));
      }, 3000);
      socket.on('error', () => {}); // a reset once the broker has closed
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });

  it('closes a connection whose CONNECT declares 200 MB after its first bytes, and keeps serving devices', async () => {
    const declared = 200 * 1024 * 1024;
    const header = [0x10, ...remainingLength(declared)];
    const refusedBefore = t.hub.mqtt.refused.too_large;
    const closed = closedAfterSending([...header, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0xc2]);

    const healthy = await connect();
    await healthy.publishAsync(device.mqtt.telemetry_topic, '{"battery":42}', { qos: 1 });
    await closed;

    expect(t.hub.mqtt.refused.too_large - refusedBefore).toBe(1);
    expect(t.logs).toContainEqual(
      expect.objectContaining({ level: 40, refused: 'too_large', address: '127.0.0.1', declaredBytes: header.length + declared, maxBytes: limit }), // 40: warn
    );
    await until(() => t.hub.telemetry.counters.received, (n) => n >= 1);
    expect(healthy.connected).toBe(true);
  });

  it('delivers a publish of exactly the limit, and disconnects the device for one byte more', async () => {
    const topic = device.mqtt.telemetry_topic;
    const fits = payloadFilling(topic, limit);
    expect(publishBytes(topic, fits)).toBe(limit);
    const delivered: number[] = [];
    const unsubscribe = await t.hub.mqtt.subscribe(topic, (_topic, payload) => delivered.push(payload.length));
    try {
      const droppedBefore = t.hub.telemetry.counters.dropped.too_large ?? 0;
      const client = await connect();
      await client.publishAsync(topic, Buffer.alloc(fits, 0x20), { qos: 1 });
      expect(delivered).toEqual([fits]);
      // Over the ingest's own 64 KiB: dropped there, as before.
      expect((t.hub.telemetry.counters.dropped.too_large ?? 0) - droppedBefore).toBe(1);
      expect(client.connected).toBe(true);

      const refusedBefore = t.hub.mqtt.refused.too_large;
      client.publish(topic, Buffer.alloc(fits + 1, 0x20), { qos: 1 });
      await until(() => client.connected, (open) => !open);
      expect(delivered).toEqual([fits]);
      expect(t.hub.mqtt.refused.too_large - refusedBefore).toBe(1);
      expect(t.logs).toContainEqual(expect.objectContaining({ refused: 'too_large', clientId: device.id, declaredBytes: limit + 1 }));
    } finally {
      await unsubscribe();
    }
  });

  it('closes a connection whose remaining length runs over 4 bytes', async () => {
    await closedAfterSending([0x10, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });
});
