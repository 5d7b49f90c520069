/**
 * MQTT fuzz on the embedded broker, bounded in count and time, loopback only: one device of
 * home A sends garbage payloads, writes to other devices' and other homes' topics, subscribes
 * with wildcards, sends oversized messages, tries other client ids and raw non-MQTT bytes.
 * Nothing of another device or home may change, the drops are counted and logged, the other
 * devices stay connected, and the device itself still works afterwards.
 *
 * `MQTT_FUZZ_OPS` (default 1500) and `MQTT_FUZZ_SEED` (default random, printed) repeat a run.
 */
import { connect as connectTcp } from 'node:net';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type AddedDevice, type TestHub } from '../../harness/index.js';
import { connectDevice } from '../../harness/mqtt-devices.js';
import { until } from '../../harness/wait.js';

const OPS = Number(process.env.MQTT_FUZZ_OPS ?? 1500);
const TIME_LIMIT_MS = 10_000;
const SEED = Number(process.env.MQTT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

/** mulberry32: a small seeded generator, so a failing run can be repeated. */
function generator(seed: number) {
  let a = seed;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))),
  };
}

/** Payloads a broken or hostile device might send. */
function garbage(random: ReturnType<typeof generator>): Buffer {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const candidates: (() => string | Buffer)[] = [
    () => random.bytes(random.int(512)),
    () => Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1]),
    () => '',
    () => 'null',
    () => 'offline',
    () => deep(5000),
    () => `{"a":${deep(2000)}}`,
    () => '{"battery": 1e400}',
    () => '{"battery": NaN}',
    () => '{"battery": "NaN", "temperature": -Infinity}',
    () => '{"__proto__": {"polluted": 1}, "constructor": {"prototype": 1}}',
    () => `{"x'; drop table devices; --": 1}`,
    () => '{"<script>alert(1)</script>": "<img src=x onerror=alert(1)>"}',
    () => `{"${'m'.repeat(5000)}": 1}`,
    () => JSON.stringify(Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`fuzz_${i}`, i]))),
    () => JSON.stringify({ ts: -1e20, level: 1 }),
    () => JSON.stringify({ ts: 'yesterday', level: 1 }),
    () => JSON.stringify({ level: { nested: true } }),
    () => JSON.stringify({ level: [1, 2, 3] }),
    () => JSON.stringify({ level: 'x'.repeat(100_000) }),
    () => `{"level": 1${' '.repeat(70 * 1024)}}`, // over the 64 KiB limit
  ];
  const made = random.pick(candidates)();
  return Buffer.isBuffer(made) ? made : Buffer.from(made);
}

/** Resolves with what `work` gave, or with undefined when it takes too long (a dropped connection). */
const bounded = <T>(work: Promise<T>, ms = 500) =>
  Promise.race([work.catch(() => undefined), new Promise<undefined>((resolve) => setTimeout(resolve, ms))]);

describe('MQTT fuzz on the embedded broker', () => {
  let t: TestHub;
  let homeA: string;
  let homeB: string;
  let attacker: AddedDevice;
  let neighbour: AddedDevice; // same home
  let stranger: AddedDevice; // other home
  let port: number;
  const clients: MqttClient[] = [];

  const connectAs = async (device: AddedDevice, clientId = device.id) => {
    const client = await connectDevice(t.hub.mqtt.broker.url, device, { clientId, connectTimeout: 2000 });
    clients.push(client);
    return client;
  };

  /** Everything the attacker must not change: other devices' rows, entities and readings. */
  const othersSnapshot = async () => {
    const db = t.hub.database.db;
    const [devices, entities, registry, readings] = await Promise.all([
      db.selectFrom('devices').selectAll().where('id', '!=', attacker.id).orderBy('id').execute(),
      db.selectFrom('entity_states').selectAll().orderBy('entity_id').execute(),
      db.selectFrom('entity_registry').selectAll().orderBy('entity_id').execute(),
      db.selectFrom('readings').selectAll().where('device_id', '!=', attacker.id).orderBy('device_id').orderBy('metric').orderBy('ts').execute(),
    ]);
    const inMemory = [...t.hub.states.entries()].filter((e) => e.deviceId !== attacker.id).map((e) => ({ ...e }));
    return {
      devices,
      entities: entities.filter((e) => e.device_id !== attacker.id),
      registry: registry.filter((e) => e.device_id !== attacker.id),
      readings,
      inMemory: inMemory.sort((x, y) => x.state.entity_id.localeCompare(y.state.entity_id)),
    };
  };

  beforeAll(async () => {
    t = await createTestHub();
    port = Number(new URL(t.hub.mqtt.broker.url).port);
    const ownerA = await t.createUser('a@example.com');
    const ownerB = await t.createUser('b@example.com');
    homeA = await t.createHome(ownerA.token, { name: 'A' });
    homeB = await t.createHome(ownerB.token, { name: 'B' });
    attacker = await t.addDevice(ownerA.token, homeA, 'Fuzzer');
    neighbour = await t.addDevice(ownerA.token, homeA, 'Neighbour');
    stranger = await t.addDevice(ownerB.token, homeB, 'Stranger');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
    await t.stop();
  });

  it('keeps the hub up and every other device and home untouched', { timeout: 60_000 }, async () => {
    const root = t.hub.mqtt.root;
    // The victims report once, then stay connected and listen for their commands.
    const victims = await Promise.all([neighbour, stranger].map((device) => connectAs(device)));
    const victimsClosed: string[] = [];
    const victimCommands: string[] = [];
    for (const [i, client] of victims.entries()) {
      client.on('close', () => victimsClosed.push([neighbour, stranger][i]!.id));
      client.on('message', (topic) => victimCommands.push(topic));
      await client.subscribeAsync([neighbour, stranger][i]!.mqtt.command_topic, { qos: 1 });
      await client.publishAsync([neighbour, stranger][i]!.mqtt.telemetry_topic, JSON.stringify({ level: 7, mode: 'eco' }), { qos: 1 });
    }
    await until(() => [t.hub.states.get('sensor.neighbour_level'), t.hub.states.get('sensor.stranger_level')], (s) => s.every(Boolean));
    await t.hub.telemetry.flush();
    await t.hub.states.flush();
    const before = await othersSnapshot();
    const refusedBefore = { ...t.hub.mqtt.refused };

    const random = generator(SEED);
    const own = [attacker.mqtt.telemetry_topic, attacker.mqtt.status_topic, `${root}/${homeA}/${attacker.id}/state`];
    const foreign = [
      neighbour.mqtt.telemetry_topic,
      neighbour.mqtt.status_topic,
      neighbour.mqtt.command_topic,
      stranger.mqtt.telemetry_topic,
      stranger.mqtt.status_topic,
      stranger.mqtt.command_topic,
      attacker.mqtt.command_topic, // its own command topic is the hub's to write
      `${attacker.mqtt.telemetry_topic}/extra`,
      `${root}/${homeB}/${attacker.id}/telemetry`, // its own id under another home
      `${root}/${homeA}/${stranger.id}/telemetry`,
      `other/${homeA}/${attacker.id}/telemetry`,
      '$SYS/broker/uptime',
      `${root}/+/${neighbour.id}/telemetry`,
      `${root}/#`,
      '/',
    ];
    const filters = [
      '#',
      '+/#',
      '+/+/+/command',
      '$SYS/#',
      `${root}/#`,
      `${root}/${homeB}/#`,
      `${root}/+/+/command`,
      `${root}/${homeA}/+/command`,
      neighbour.mqtt.command_topic,
      stranger.mqtt.command_topic,
      `$share/x/${root}/#`,
      `${root}/${homeA}/${attacker.id}/telemetry`,
    ];
    const sent = { own: 0, foreign: 0, subscribe: 0, oversized: 0, takeover: 0, raw: 0, reconnects: 0 };
    const attackerGot: string[] = [];
    let client = await connectAs(attacker);
    const watch = (c: MqttClient) => c.on('message', (topic) => attackerGot.push(topic));
    watch(client);
    // Known before the run, so per-device metric caps the garbage may fill do not hide it afterwards.
    await client.publishAsync(attacker.mqtt.telemetry_topic, JSON.stringify({ level: 1 }), { qos: 1 });
    await until(() => t.hub.states.get(`sensor.${attacker.slug}_level`)?.state, (s) => s === '1');

    const started = Date.now();
    for (let op = 0; op < OPS && Date.now() - started < TIME_LIMIT_MS; op++) {
      if (!client.connected) {
        client = await connectAs(attacker);
        watch(client);
        sent.reconnects++;
      }
      const roll = random.int(100);
      if (roll < 45) {
        sent.own++;
        await bounded(client.publishAsync(random.pick(own), garbage(random), { qos: random.pick([0, 1] as const) }));
      } else if (roll < 65) {
        sent.foreign++;
        await bounded(client.publishAsync(random.pick(foreign), garbage(random), { qos: 0 }), 100);
        await bounded(new Promise<void>((resolve) => client.once('close', () => resolve())), 200); // refused publishes disconnect
      } else if (roll < 85) {
        sent.subscribe++;
        await bounded(client.subscribeAsync(random.pick(filters), { qos: random.pick([0, 1] as const) }));
      } else if (roll < 90) {
        sent.oversized++;
        const size = random.pick([65 * 1024, 512 * 1024, 2 * 1024 * 1024]);
        // Over HUB_MQTT_MAX_PACKET_BYTES the broker closes the connection instead of acknowledging.
        const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
        await bounded(Promise.race([client.publishAsync(attacker.mqtt.telemetry_topic, Buffer.alloc(size, 0x7b), { qos: 1 }), closed]), 2000);
      } else if (roll < 95) {
        sent.takeover++;
        const clientId = random.pick([neighbour.id, stranger.id, `${stranger.id}-x`, 'hub', `mqttjs_${random.int(1e6)}`]);
        const intruder = await bounded(connectAs(attacker, clientId));
        expect(intruder, `client id ${clientId} was admitted`).toBeUndefined();
      } else {
        sent.raw++;
        await new Promise<void>((resolve) => {
          const socket = connectTcp(port, '127.0.0.1', () => socket.end(random.bytes(1 + random.int(256))));
          socket.on('error', () => resolve());
          socket.on('close', () => resolve());
          socket.setTimeout(500, () => socket.destroy());
        });
      }
      // Commands to the victims during the run: none may reach the attacker.
      if (op % 50 === 0) await t.hub.mqtt.publish(random.pick([neighbour, stranger]).mqtt.command_topic, 'dock', { qos: 1 });
    }
    const total = Object.values(sent).reduce((n, v) => n + v, 0) - sent.reconnects;
    console.info(`mqtt fuzz: seed ${SEED}, ${total} operations in ${Date.now() - started} ms`, sent, 'refused', t.hub.mqtt.refused, 'dropped', t.hub.telemetry.counters.dropped);

    // The hub is up and answers.
    expect((await t.request('/api/health')).status).toBe(200);
    await t.hub.telemetry.flush();
    await t.hub.states.flush();

    // Nothing of another device or home changed; the victims were never kicked off and still get their commands.
    expect(await othersSnapshot()).toEqual(before);
    expect(victimsClosed).toEqual([]);
    expect(victims.every((c) => c.connected)).toBe(true);
    expect(victimCommands.length).toBeGreaterThan(0);
    expect(attackerGot.every((topic) => topic === attacker.mqtt.command_topic)).toBe(true);

    // The drops were counted and logged.
    if (sent.foreign > 0) expect(t.hub.mqtt.refused.publish).toBeGreaterThan(refusedBefore.publish);
    if (sent.subscribe > 0) expect(t.hub.mqtt.refused.subscribe).toBeGreaterThan(refusedBefore.subscribe);
    if (sent.takeover > 0) expect(t.hub.mqtt.refused.auth).toBeGreaterThan(refusedBefore.auth);
    expect(Object.values(t.hub.telemetry.counters.dropped).reduce((n, v) => n + v, 0)).toBeGreaterThan(0);
    expect(t.logs.some((line) => line.msg === 'mqtt client refused')).toBe(true);
    expect(t.logs.some((line) => line.msg === 'telemetry message dropped')).toBe(true);

    // The device itself still works.
    const again = await connectAs(attacker);
    await again.publishAsync(attacker.mqtt.telemetry_topic, JSON.stringify({ level: 42 }), { qos: 1 });
    await until(() => t.hub.states.get(`sensor.${attacker.slug}_level`)?.state, (s) => s === '42');
    await victims[1]!.publishAsync(stranger.mqtt.telemetry_topic, JSON.stringify({ level: 8 }), { qos: 1 });
    await until(() => t.hub.states.get('sensor.stranger_level')?.state, (s) => s === '8');
  });
});
