/**
 * A bounded fuzz of the WebSocket API over real loopback sockets: malformed and binary frames,
 * JSON that is not an object, bad and out-of-order ids, unknown types, commands before auth,
 * frames over the size limit and wrong field types for every command. Every answer must be in
 * Home Assistant's shape (or a clean close with the right code), nothing of another home may
 * reach the fuzzing user, the hub must stay up and a well-behaved client must still work.
 */
import { createConnection, createLongLivedTokenAuth, getStates } from 'home-assistant-js-websocket';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { until } from '../../harness/wait.js';
import { WsClient, withGlobalWebSocket } from '../../harness/ws.js';

/** Frames sent on the fuzzing connection at most, and for how long. */
const MAX_FRAMES = 2000;
const MAX_MS = 8_000;
/** Home Assistant's error codes (websocket_api/const.py). */
const HA_ERROR_CODES = ['id_reuse', 'invalid_format', 'not_allowed', 'not_found', 'not_supported', 'home_assistant_error', 'unknown_command', 'unauthorized', 'timeout'];
const BOB_MARKER = 'bob-private-marker';

let t: TestHub;
let url: string;
let alice: { id: string; token: string };
let aliceHome: string;
let bobHome: string;

beforeAll(async () => {
  // Generous command limits: the fuzz is after the handlers, not the rate limiter.
  t = await createTestHub({ HUB_WS_COMMAND_RATE: '100000', HUB_WS_COMMAND_BURST: '100000' });
  ({ url } = await t.hub.listen());
  alice = await t.createUser('alice@example.com');
  const bob = await t.createUser('bob@example.com');
  aliceHome = await t.createHome(alice.token, { name: 'Alice' });
  bobHome = await t.createHome(bob.token, { name: BOB_MARKER });
  t.hub.states.set('sensor.alice_lawn', '12', {}, { homeId: aliceHome, owner: 'api' });
  t.hub.states.set('sensor.bob_secret', BOB_MARKER, { note: BOB_MARKER }, { homeId: bobHome, owner: 'api' });
  t.hub.actions.register({
    domain: 'fuzz',
    name: 'set',
    description: 'Sets an entity of the caller',
    role: 'technician',
    target: { domain: 'sensor' },
    schema: z.object({ entity_id: z.union([z.string(), z.array(z.string())]).optional(), value: z.string().max(32) }),
    handler: ({ data, entityIds, context }) => {
      for (const id of entityIds) t.hub.states.set(id, data.value, {}, { homeId: t.hub.states.entry(id)!.homeId, owner: 'api', context });
    },
  });
  // Bob's home keeps changing while Alice fuzzes: none of it may reach her.
  const bobWs = await WsClient.authenticated(url, bob.token);
  await bobWs.command({ id: 1, type: 'fire_event', event_type: 'bob_event', event_data: { secret: BOB_MARKER } });
  bobWs.close();
});
afterAll(() => t.stop());

/** A small deterministic generator, so a failure replays. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = Math.imul(state ^ (state >>> 15), 1 | state);
    x ^= x + Math.imul(x ^ (x >>> 7), 61 | x);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]! };
}

const deepJson = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
/** Stands for JSON nested too deeply for JSON.stringify (in frames, it is spliced in as text). */
const TOO_DEEP = '\u0001too-deep';
/** Values of the wrong type (or shape) for some field somewhere. */
const WEIRD_VALUES: unknown[] = [
  null, true, 0, -1, 1.5, 2 ** 53 + 2, -1e308, '', 'x'.repeat(10_000), '../../etc/passwd', "'; drop table sessions; --", '<script>alert(1)</script>',
  '\u0000\ud800', [], [1, 'a', null], {}, { __proto__: { admin: true } }, { constructor: { prototype: {} } }, ['sensor.bob_secret'], 'sensor.bob_secret',
  { entity_id: 'sensor.bob_secret' }, { home_id: 'not-a-uuid' }, Array.from({ length: 5000 }, (_, i) => `sensor.x${i}`), JSON.parse(deepJson(20)), TOO_DEEP,
];
/** Each command the API speaks and the fields it reads. */
const COMMANDS: Record<string, string[]> = {
  ping: [],
  supported_features: ['features'],
  get_states: [],
  get_services: [],
  get_config: [],
  subscribe_events: ['event_type'],
  unsubscribe_events: ['subscription'],
  subscribe_entities: ['entity_ids'],
  call_service: ['domain', 'service', 'service_data', 'target', 'return_response'],
  fire_event: ['event_type', 'event_data'],
};
const UNKNOWN_TYPES = ['', 'PING', 'auth', 'result', 'event', 'get_states ', 'config/entity_registry/list', '__proto__', 'x'.repeat(5000)];
const MALFORMED = ['', '{', '{"id":1,', 'nul', '[', '"unterminated', '{"id":1,"type":"ping"}}', '\u0000', '{"id":01,"type":"ping"}', 'NaN', '{"id":1,"type":"ping",}'];
const NOT_OBJECTS = ['null', '1', '-1.5', '"ping"', 'true', '[]', '[{"id":1,"type":"ping"}]', '{}'];

/** Checks a message the hub sent is one of the protocol's shapes; answers whether it answers a frame. */
function expectProtocolShape(message: Record<string, unknown>): boolean {
  if (message.type === 'event') return false;
  if (message.type === 'pong') {
    expect(message).toEqual({ id: expect.any(Number), type: 'pong' });
    return true;
  }
  expect(message.type).toBe('result');
  if (message.success === true) {
    expect(Object.keys(message).sort()).toEqual(['id', 'result', 'success', 'type']);
    expect(message.id).toEqual(expect.any(Number));
  } else {
    expect(message).toEqual({
      id: message.id === null ? null : expect.any(Number),
      type: 'result',
      success: false,
      error: expect.objectContaining({ code: expect.any(String), message: expect.any(String) }),
    });
    expect(HA_ERROR_CODES, JSON.stringify(message)).toContain((message.error as { code: string }).code);
  }
  return true;
}

/** Opens a raw socket to the API and collects what it is sent, with the close code. */
async function rawSocket() {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/websocket`);
  const received: string[] = [];
  socket.on('message', (data) => received.push(data.toString()));
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  socket.on('error', () => {}); // a refused huge frame can surface as a socket error too; the close code tells
  await new Promise((resolve) => socket.once('open', resolve));
  return { socket, received, closed };
}

describe('before auth', () => {
  it.each([
    ['malformed JSON', '{"type":"auth",'],
    ['a binary frame', Buffer.from([0x7b, 0x00, 0xff])],
    ['JSON that is not an object', '[{"type":"auth","access_token":"x"}]'],
    ['a command', JSON.stringify({ id: 1, type: 'get_states' })],
    ['an auth with a token of the wrong type', JSON.stringify({ type: 'auth', access_token: { $ne: '' } })],
    ['an auth with a huge token', JSON.stringify({ type: 'auth', access_token: 'x'.repeat(100_000) })],
    ['an auth with another home’s entity as token', JSON.stringify({ type: 'auth', access_token: 'sensor.bob_secret' })],
  ])('answers %s with auth_invalid and closes 4001', async (_, frame) => {
    const { socket, received, closed } = await rawSocket();
    socket.send(frame);
    expect((await closed).code).toBe(4001);
    expect(received.map((m) => JSON.parse(m) as { type: string }).map((m) => m.type)).toEqual(['auth_required', 'auth_invalid']);
  });

  it('closes 1009 on a frame over the size limit, before and after auth', async () => {
    const huge = JSON.stringify({ type: 'auth', access_token: 'x'.repeat(2 * 1024 * 1024) });
    const before = await rawSocket();
    before.socket.send(huge);
    expect((await before.closed).code).toBe(1009);

    const after = await WsClient.authenticated(url, alice.token);
    after.send({ id: 1, type: 'fire_event', event_type: 'big', event_data: { blob: 'x'.repeat(2 * 1024 * 1024) } });
    expect((await after.closed).code).toBe(1009);
  });
});

describe('after auth', () => {
  it(`answers up to ${MAX_FRAMES} fuzzed frames each in Home Assistant's shape, leaks nothing of another home, and stays usable`, async () => {
    const client = await WsClient.authenticated(url, alice.token);
    await client.command({ id: 1, type: 'subscribe_events' });
    const rng = random(12);
    let nextId = 2;
    const frames: (string | Buffer)[] = [];
    const command = (type: string, fields: Record<string, unknown> = {}) =>
      JSON.stringify({ id: nextId++, type, ...fields }).replaceAll(JSON.stringify(TOO_DEEP), deepJson(5000));

    // Every field of every command, with every weird value.
    for (const [type, fields] of Object.entries(COMMANDS)) {
      for (const field of fields) for (const value of WEIRD_VALUES) frames.push(command(type, { [field]: value }));
      frames.push(command(type));
    }
    for (const type of UNKNOWN_TYPES) frames.push(command(type));
    // Valid commands carrying weird payloads, so the handlers behind them run too.
    for (const value of WEIRD_VALUES) {
      frames.push(command('call_service', { domain: 'fuzz', service: 'set', service_data: value, target: { entity_id: 'sensor.alice_lawn' } }));
      frames.push(command('call_service', { domain: 'fuzz', service: 'set', service_data: { value: 'x', entity_id: value }, target: { entity_id: value } }));
      frames.push(command('fire_event', { event_type: 'fuzz_event', event_data: { value } }));
      frames.push(command('subscribe_entities', { entity_ids: [value] }));
    }
    // Then random mixes, ids out of order, repeated and of the wrong type, until the budget is spent.
    const idMutations: (() => unknown)[] = [() => nextId - 1, () => 1, () => 0, () => -5, () => 2.5, () => '7', () => null, () => [nextId], () => ({ id: 1 })];
    while (frames.length < MAX_FRAMES) {
      const roll = rng.next();
      if (roll < 0.1) frames.push(rng.pick(MALFORMED));
      else if (roll < 0.15) frames.push(rng.pick(NOT_OBJECTS));
      else if (roll < 0.2) frames.push(Buffer.from(rng.pick(MALFORMED) + 'binary'));
      else if (roll < 0.35) frames.push(JSON.stringify({ id: rng.pick(idMutations)(), type: rng.pick(Object.keys(COMMANDS)) }));
      else {
        const type = rng.pick([...Object.keys(COMMANDS), ...UNKNOWN_TYPES]);
        const fields = Object.fromEntries((Object.hasOwn(COMMANDS, type) ? COMMANDS[type]! : ['event_type']).map((f) => [f, rng.pick(WEIRD_VALUES)]));
        frames.push(command(type, fields));
      }
    }

    const started = Date.now();
    let sent = 0;
    for (const frame of frames) {
      if (Date.now() - started > MAX_MS) break;
      client.socket.send(frame, { binary: Buffer.isBuffer(frame) });
      sent++;
      // Stay a polite sender: let the answers flow every few frames.
      if (sent % 50 === 0) {
        t.hub.states.set('sensor.bob_secret', `${BOB_MARKER}-${sent}`, { note: BOB_MARKER }, { homeId: bobHome, owner: 'api' });
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
    // Each frame gets one answer; subscriptions add events but never further results. Commands
    // run concurrently (get_config reads the database), so answers may still be on their way.
    const isAnswer = (m: Record<string, unknown>) => m.type === 'result' || m.type === 'pong';
    await until(() => client.messages.filter(isAnswer).length, (n) => n >= sent, 10_000);
    const answers = client.messages.filter(expectProtocolShape);
    expect(answers.length).toBe(sent);
    const finalId = Number.MAX_SAFE_INTEGER;
    expect(await client.command({ id: finalId, type: 'ping' }), 'the fuzzed connection still answers').toEqual({ id: finalId, type: 'pong' });
    // (Bob's entity id may come back in errors, echoing what the fuzz sent; his data may not.)
    const everything = JSON.stringify(client.messages);
    expect(everything.includes(BOB_MARKER), 'Bob’s state or home name reached Alice').toBe(false);
    expect(everything.includes(bobHome), 'Bob’s home id reached Alice').toBe(false);
    expect(t.logs.filter((l) => (l.level as number) >= 50).map((l) => l.msg)).toEqual([]);
    console.info(`ws fuzz: ${sent} frames in ${Date.now() - started} ms, ${answers.filter((m) => m.success === false).length} errors, no internal error`);
    client.close();

    // The hub is up and a well-behaved client (Home Assistant's own library) still works.
    expect((await t.request('/api/health')).status).toBe(200);
    await withGlobalWebSocket(async () => {
      const connection = await createConnection({ auth: createLongLivedTokenAuth(url, alice.token) });
      const states = await getStates(connection);
      expect(states.map((s) => s.entity_id)).toContain('sensor.alice_lawn');
      expect(states.map((s) => s.entity_id)).not.toContain('sensor.bob_secret');
      connection.close();
    });
    expect(t.hub.states.get('sensor.bob_secret')?.state).toMatch(new RegExp(`^${BOB_MARKER}`));
  });
});
