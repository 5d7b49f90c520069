/**
 * Client ids on the embedded broker are bound to the device that logs in: a device cannot
 * take another device's (or the hub's) id, kick it off, or resume its session.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { sleep, until } from '../../harness/wait.js';

interface Created {
  id: string;
  mqtt: { username: string; password: string; command_topic: string };
}

describe('client ids on the embedded broker', () => {
  let t: TestHub;
  let a: Created;
  let b: Created;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    const owner = await t.createUser('owner@example.com');
    const homeId = await t.createHome(owner.token);
    const add = async (name: string) =>
      (await (await t.request(`/api/homes/${homeId}/devices`, { token: owner.token, json: { name, kind: 'sensor' } })).json()) as Created;
    a = await add('A');
    b = await add('B');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await t.stop();
  });

  const connect = async (device: Created, clientId: string, extra: IClientOptions = {}) => {
    const port = new URL(t.hub.mqtt.broker.url).port;
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      username: device.mqtt.username,
      password: device.mqtt.password,
      clientId,
      reconnectPeriod: 0,
      ...extra,
    });
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
    const back = mqtt.connect(`mqtt://127.0.0.1:${new URL(t.hub.mqtt.broker.url).port}`, {
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
