/**
 * The generated Mosquitto password and ACL files, enforced by a real Mosquitto started for the
 * test on a free port. Runs where Mosquitto is installed and TEST_MQTT_URL says so (CI).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoFiles } from '../../../core/mqtt/index.js';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { privateMosquitto, type PrivateServer } from '../../harness/servers.js';
import { sleep } from '../../harness/wait.js';

interface Created {
  id: string;
  mqtt: { username: string; password: string; telemetry_topic: string; command_topic: string };
}

describe.runIf(process.env.TEST_MQTT_URL)('Mosquitto with the generated password and ACL files', () => {
  let t: TestHub;
  let broker: PrivateServer;
  let a: Created;
  let b: Created;
  const hubLogin = { username: 'hub', password: 'hub-password-for-test' };
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    const owner = await t.createUser('owner@example.com');
    const homeId = await t.createHome(owner.token);
    const add = async (name: string) =>
      (await (await t.request(`/api/homes/${homeId}/devices`, { token: owner.token, json: { name, kind: 'sensor' } })).json()) as Created;
    a = await add('A');
    b = await add('B');

    const files = await mosquittoFiles(t.hub.database.db, t.hub.mqtt.root, hubLogin);
    broker = await privateMosquitto((dir) => ['allow_anonymous false', `password_file ${dir}/passwd`, `acl_file ${dir}/acl`], {
      passwd: files.passwordFile,
      acl: files.aclFile,
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await broker?.remove();
    await t.stop();
  });

  const connect = async (username: string, password: string) => {
    const client = await mqtt.connectAsync(broker.url, { username, password, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  };

  it('lets devices in with their own credentials only', async () => {
    await connect(a.mqtt.username, a.mqtt.password);
    await expect(connect(a.mqtt.username, b.mqtt.password)).rejects.toThrow(/Not authorized|Bad username or password/i);
    await expect(mqtt.connectAsync(broker.url, { reconnectPeriod: 0 })).rejects.toThrow(/Not authorized|Bad username or password/i);
  });

  it("delivers a device's own telemetry to the hub, and drops what it writes to another device's topic", async () => {
    const hub = await connect(hubLogin.username, hubLogin.password);
    const received: string[] = [];
    hub.on('message', (topic) => received.push(topic));
    await hub.subscribeAsync(`${t.hub.mqtt.root}/#`);
    const device = await connect(a.mqtt.username, a.mqtt.password);
    await device.publishAsync(b.mqtt.telemetry_topic, '{"battery":1}', { qos: 1 });
    await device.publishAsync(a.mqtt.telemetry_topic, '{"battery":2}', { qos: 1 });
    await hub.publishAsync(a.mqtt.command_topic, 'dock', { qos: 1 });
    await sleep(300);
    expect(received).toEqual([a.mqtt.telemetry_topic, a.mqtt.command_topic]);
  });

  it("lets a device read its own commands, not another's", async () => {
    const device = await connect(a.mqtt.username, a.mqtt.password);
    const got: string[] = [];
    device.on('message', (topic) => got.push(topic));
    await device.subscribeAsync(a.mqtt.command_topic, { qos: 1 });
    await device.subscribeAsync(b.mqtt.command_topic, { qos: 1 }).catch(() => {}); // refused or silently empty
    const hub = await connect(hubLogin.username, hubLogin.password);
    await hub.publishAsync(b.mqtt.command_topic, 'dock', { qos: 1 });
    await hub.publishAsync(a.mqtt.command_topic, 'start', { qos: 1 });
    await sleep(300);
    expect(got).toEqual([a.mqtt.command_topic]);
  });
});
