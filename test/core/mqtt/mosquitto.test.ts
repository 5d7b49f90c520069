/**
 * The generated Mosquitto password and ACL files, enforced by a real Mosquitto started for the
 * test on a free port. Runs where Mosquitto is installed and TEST_MQTT_URL says so (CI).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mosquittoFiles } from '../../../core/mqtt/index.js';
import { createTestHub, type TestHub } from '../../harness/index.js';

interface Created {
  id: string;
  mqtt: { username: string; password: string; telemetry_topic: string; command_topic: string };
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe.runIf(process.env.TEST_MQTT_URL)('Mosquitto with the generated password and ACL files', () => {
  let t: TestHub;
  let dir: string;
  let broker: ChildProcess;
  let url: string;
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

    dir = await mkdtemp(path.join(tmpdir(), 'hub-mosquitto-'));
    const files = await mosquittoFiles(t.hub.database.db, t.hub.mqtt.root, hubLogin);
    await writeFile(path.join(dir, 'passwd'), files.passwordFile, { mode: 0o600 });
    await writeFile(path.join(dir, 'acl'), files.aclFile);
    const port = await freePort();
    await writeFile(
      path.join(dir, 'mosquitto.conf'),
      // `user root`: when the test runs as root, stay root so the broker can read the 0600 files.
      [`listener ${port} 127.0.0.1`, 'user root', 'allow_anonymous false', `password_file ${dir}/passwd`, `acl_file ${dir}/acl`, 'persistence false', ''].join('\n'),
    );
    broker = spawn('mosquitto', ['-c', path.join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
    url = `mqtt://127.0.0.1:${port}`;
    for (let i = 0; i < 100; i++) {
      const ok = await mqtt.connectAsync(url, { ...hubLogin, reconnectPeriod: 0 }).then((c) => c.endAsync().then(() => true), () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    broker?.kill();
    await t.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const connect = async (username: string, password: string) => {
    const client = await mqtt.connectAsync(url, { username, password, reconnectPeriod: 0 });
    clients.push(client);
    return client;
  };

  it('lets devices in with their own credentials only', async () => {
    await connect(a.mqtt.username, a.mqtt.password);
    await expect(connect(a.mqtt.username, b.mqtt.password)).rejects.toThrow(/Not authorized|Bad username or password/i);
    await expect(mqtt.connectAsync(url, { reconnectPeriod: 0 })).rejects.toThrow(/Not authorized|Bad username or password/i);
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
    await new Promise((r) => setTimeout(r, 300));
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
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toEqual([a.mqtt.command_topic]);
  });
});
