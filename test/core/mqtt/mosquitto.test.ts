/**
 * The generated Mosquitto password and ACL files and configuration, enforced by a real
 * Mosquitto started for the test on free ports. Runs where Mosquitto is installed and
 * TEST_MQTT_URL says so (CI).
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoConfig, mosquittoFiles } from '../../../core/mqtt/index.js';
import { createTestHub, type AddedDevice, type TestHub } from '../../harness/index.js';
import { payloadFilling } from '../../harness/mqtt-packets.js';
import { freePort, privateMosquitto, type PrivateMosquitto } from '../../harness/servers.js';
import { sleep, until } from '../../harness/wait.js';

describe.runIf(process.env.TEST_MQTT_URL)('Mosquitto with the generated password and ACL files', () => {
  let t: TestHub;
  let broker: PrivateMosquitto;
  let ownerToken: string;
  let a: AddedDevice;
  let b: AddedDevice;
  let rotated: AddedDevice;
  let deleted: AddedDevice;
  const hubLogin = { username: 'hub', password: 'hub-password-for-test' };
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    const owner = await t.createUser('owner@example.com');
    ownerToken = owner.token;
    const homeId = await t.createHome(owner.token);
    a = await t.addDevice(owner.token, homeId, 'A');
    b = await t.addDevice(owner.token, homeId, 'B');
    rotated = await t.addDevice(owner.token, homeId, 'Rotated');
    deleted = await t.addDevice(owner.token, homeId, 'Deleted');

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

  const regenerate = async () => {
    const files = await mosquittoFiles(t.hub.database.db, t.hub.mqtt.root, hubLogin);
    await broker.reload({ passwd: files.passwordFile, acl: files.aclFile });
  };

  it('cuts off a device whose credentials were rotated once the files are regenerated and Mosquitto reloads', async () => {
    const device = await connect(rotated.mqtt.username, rotated.mqtt.password);
    const res = await t.request(`/api/devices/${rotated.id}/credentials`, { method: 'POST', token: ownerToken });
    const renewed = (await res.json()) as AddedDevice;
    // The hub cannot reach into Mosquitto: until it reloads, the old session goes on.
    await sleep(200);
    expect(device.connected).toBe(true);

    await regenerate();
    await until(() => device.connected, (open) => !open);
    await expect(connect(rotated.mqtt.username, rotated.mqtt.password)).rejects.toThrow(/Not authorized|Bad username or password/i);
    await connect(renewed.mqtt.username, renewed.mqtt.password);
  });

  it('cuts off a deleted device once the files are regenerated and Mosquitto reloads', async () => {
    const device = await connect(deleted.mqtt.username, deleted.mqtt.password);
    expect((await t.request(`/api/devices/${deleted.id}`, { method: 'DELETE', token: ownerToken })).status).toBe(204);
    await regenerate();
    await until(() => device.connected, (open) => !open);
    await expect(connect(deleted.mqtt.username, deleted.mqtt.password)).rejects.toThrow(/Not authorized|Bad username or password/i);
  });
});

describe.runIf(process.env.TEST_MQTT_URL)('Mosquitto with the generated configuration: client ids bound to devices', () => {
  let t: TestHub;
  let broker: PrivateMosquitto;
  let a: AddedDevice;
  let b: AddedDevice;
  const ports = { devices: 0, hub: 0 };
  const hubLogin = { username: 'hub', password: 'hub-password-for-test' };
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    t = await createTestHub();
    const owner = await t.createUser('owner@example.com');
    const homeId = await t.createHome(owner.token);
    a = await t.addDevice(owner.token, homeId, 'A');
    b = await t.addDevice(owner.token, homeId, 'B');
    const files = await mosquittoFiles(t.hub.database.db, t.hub.mqtt.root, hubLogin);
    ports.devices = await freePort();
    ports.hub = await freePort();
    broker = await privateMosquitto((dir) => mosquittoConfig(dir, { ...ports, bind: '127.0.0.1' }, t.hub.config.mqttMaxPacketBytes).split('\n'), {
      passwd: files.passwordFile,
      'hub-passwd': files.hubPasswordFile,
      acl: files.aclFile,
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await broker?.remove();
    await t.stop();
  });

  const connect = async (port: number, login: { username: string; password: string }, clientId: string) => {
    const { username, password } = login; // a device's credentials also name the hub's own broker and port
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username, password, clientId, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  };

  it("keeps a device and the hub connected when another device uses their client ids", async () => {
    const hub = await connect(ports.hub, hubLogin, 'hub-0123456789ab');
    const victim = await connect(ports.devices, a.mqtt, a.id);
    const closed: string[] = [];
    hub.on('close', () => closed.push('hub'));
    victim.on('close', () => closed.push('victim'));

    await connect(ports.devices, b.mqtt, a.id);
    await connect(ports.devices, b.mqtt, 'hub-0123456789ab');
    await sleep(300); // a takeover closes the old connection right after the new CONNACK
    expect(closed).toEqual([]);

    // The victim still works: its telemetry reaches the hub.
    const received: string[] = [];
    hub.on('message', (topic) => received.push(topic));
    await hub.subscribeAsync(`${t.hub.mqtt.root}/#`, { qos: 1 });
    await victim.publishAsync(a.mqtt.telemetry_topic, '{"level":1}', { qos: 1 });
    await until(() => received, (r) => r.includes(a.mqtt.telemetry_topic));
  });

  it('delivers a publish of HUB_MQTT_MAX_PACKET_BYTES, and disconnects the device for a larger one', async () => {
    const limit = t.hub.config.mqttMaxPacketBytes;
    const topic = a.mqtt.telemetry_topic;
    const hub = await connect(ports.hub, hubLogin, 'hub-packet-size');
    const received: number[] = [];
    hub.on('message', (_topic, payload) => received.push(payload.length));
    await hub.subscribeAsync(topic, { qos: 1 });
    const device = await connect(ports.devices, a.mqtt, a.id);

    const fits = payloadFilling(topic, limit);
    await device.publishAsync(topic, Buffer.alloc(fits, 0x20), { qos: 1 });
    await until(() => received, (r) => r.length > 0);
    expect(device.connected).toBe(true);

    // Mosquitto 2.0 leaves the remaining length's own bytes (3 here) out of its count.
    device.publish(topic, Buffer.alloc(fits + 4, 0x20), { qos: 1 });
    await until(() => device.connected, (open) => !open);
    expect(received).toEqual([fits]);
  });

  it("admits only the hub's login on the hub's listener", async () => {
    await expect(connect(ports.hub, a.mqtt, a.id)).rejects.toThrow(/Not authorized|Bad username or password/i);
  });
});
