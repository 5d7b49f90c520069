import { createConnection, createLongLivedTokenAuth, callService, getServices, getStates, subscribeEntities, type HassEntities } from 'home-assistant-js-websocket';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret } from '../../../core/auth/index.js';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { WsClient, withGlobalWebSocket } from '../../harness/ws.js';
import { z } from 'zod';

let t: TestHub;
let url: string;
let alice: { id: string; token: string };
let bob: { id: string; token: string };
let aliceHome: string;
let bobHome: string;

beforeAll(async () => {
  t = await createTestHub();
  ({ url } = await t.hub.listen());
  alice = await t.createUser('alice@example.com');
  bob = await t.createUser('bob@example.com');
  aliceHome = await t.createHome(alice.token, { name: 'Alice' });
  bobHome = await t.createHome(bob.token, { name: 'Bob' });
  t.hub.states.set('sensor.alice_lawn', '12', { unit_of_measurement: 'mm' }, { homeId: aliceHome, owner: 'api' });
  t.hub.states.set('sensor.bob_lawn', '30', {}, { homeId: bobHome, owner: 'api' });
  t.hub.actions.register({
    domain: 'test',
    name: 'set_height',
    description: 'Set the lawn sensor',
    role: 'technician',
    target: { domain: 'sensor' },
    response: 'optional',
    schema: z.object({ entity_id: z.union([z.string(), z.array(z.string())]).optional(), height: z.number().int().min(10).max(100).describe('Millimetres') }),
    handler: ({ data, entityIds, context }) => {
      for (const id of entityIds) t.hub.states.set(id, String(data.height), { unit_of_measurement: 'mm' }, { homeId: t.hub.states.entry(id)!.homeId, owner: 'api', context });
      return { set: entityIds.length };
    },
  });
});
afterAll(() => t.stop());

describe('auth phase', () => {
  it('asks for auth with an ha_version, accepts a session token', async () => {
    const client = await WsClient.open(url);
    expect(await client.next((m) => m.type === 'auth_required')).toEqual({ type: 'auth_required', ha_version: expect.stringMatching(/^\d{4}\.\d+\.\d+$/) });
    client.send({ type: 'auth', access_token: alice.token });
    expect((await client.next(() => true)).type).toBe('auth_ok');
    client.close();
  });

  it('accepts an API token', async () => {
    const res = await t.request('/api/tokens', { token: alice.token, json: { name: 'ws', home_id: aliceHome, role: 'viewer' } });
    const { token } = (await res.json()) as { token: string };
    const client = await WsClient.authenticated(url, token);
    const states = await client.command({ id: 1, type: 'get_states' });
    expect((states.result as { entity_id: string }[]).map((s) => s.entity_id)).toEqual(['sensor.alice_lawn']);
    client.close();
  });

  it.each([
    ['a wrong token', { type: 'auth', access_token: 'nope' }],
    ['a message that is not auth', { type: 'get_states', id: 1 }],
    ['not JSON', '{oops'],
  ])('answers %s with auth_invalid and closes', async (_, message) => {
    const client = await WsClient.open(url);
    await client.next((m) => m.type === 'auth_required');
    client.send(message);
    expect((await client.next(() => true)).type).toBe('auth_invalid');
    expect((await client.closed).code).toBe(4001);
  });

  it('refuses an expired session', async () => {
    const token = await t.login('alice@example.com', 'user-password-1');
    await t.hub.database.db.updateTable('sessions').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', hashSecret(token)).execute();
    const client = await WsClient.open(url);
    await client.next((m) => m.type === 'auth_required');
    client.send({ type: 'auth', access_token: token });
    expect((await client.next(() => true)).type).toBe('auth_invalid');
  });

  it('rejects other upgrade paths', async () => {
    const socket = new WebSocket(`${url.replace('http', 'ws')}/api/not-a-socket`);
    const error = await new Promise<Error>((resolve) => socket.once('error', resolve));
    expect(error.message).toMatch(/404/);
  });
});

describe('commands', () => {
  let ws: WsClient;
  beforeAll(async () => {
    ws = await WsClient.authenticated(url, alice.token);
  });
  afterAll(() => ws.close());

  it('require strictly increasing ids', async () => {
    expect(await ws.command({ id: 5, type: 'ping' })).toEqual({ id: 5, type: 'pong' });
    const reused = await ws.command({ id: 5, type: 'ping' });
    expect(reused).toMatchObject({ id: 5, type: 'result', success: false, error: { code: 'id_reuse' } });
    const lower = await ws.command({ id: 3, type: 'get_states' });
    expect(lower).toMatchObject({ success: false, error: { code: 'id_reuse' } });
  });

  it('report unknown commands and malformed ones', async () => {
    expect(await ws.command({ id: 10, type: 'make_coffee' })).toMatchObject({ success: false, error: { code: 'unknown_command' } });
    ws.send({ type: 'ping' });
    expect(await ws.next((m) => m.type === 'result' && m.id === null)).toMatchObject({ success: false, error: { code: 'invalid_format' } });
    expect(await ws.command({ id: 11, type: 'unsubscribe_events', subscription: 'x' })).toMatchObject({ error: { code: 'invalid_format' } });
  });

  it("get_states shows only the caller's homes", async () => {
    const result = (await ws.command({ id: 20, type: 'get_states' })).result as { entity_id: string }[];
    expect(result.map((s) => s.entity_id)).toEqual(['sensor.alice_lawn']);
  });

  it('subscribe_events delivers visible state changes, and stops after unsubscribe', async () => {
    expect(await ws.command({ id: 30, type: 'subscribe_events', event_type: 'state_changed' })).toMatchObject({ success: true, result: null });
    t.hub.states.set('sensor.bob_lawn', '31', {}, { homeId: bobHome, owner: 'api' });
    t.hub.states.set('sensor.alice_lawn', '13', { unit_of_measurement: 'mm' }, { homeId: aliceHome, owner: 'api' });
    const event = await ws.next((m) => m.id === 30 && m.type === 'event');
    expect(event.event).toMatchObject({
      event_type: 'state_changed',
      origin: 'LOCAL',
      data: { entity_id: 'sensor.alice_lawn', old_state: { state: '12' }, new_state: { state: '13', attributes: { unit_of_measurement: 'mm' } } },
      context: { id: expect.any(String), parent_id: null, user_id: null },
    });
    expect(ws.messages.some((m) => JSON.stringify(m).includes('bob_lawn'))).toBe(false);

    expect(await ws.command({ id: 31, type: 'unsubscribe_events', subscription: 30 })).toMatchObject({ success: true });
    t.hub.states.set('sensor.alice_lawn', '14', {}, { homeId: aliceHome, owner: 'api' });
    expect(await ws.command({ id: 32, type: 'ping' })).toMatchObject({ type: 'pong' });
    expect(ws.messages.filter((m) => m.id === 30)).toEqual([]);
    expect(await ws.command({ id: 33, type: 'unsubscribe_events', subscription: 30 })).toMatchObject({ error: { code: 'not_found' } });
  });

  it('subscribe_entities sends compressed adds, changes and removals', async () => {
    expect(await ws.command({ id: 40, type: 'subscribe_entities' })).toMatchObject({ success: true });
    const initial = (await ws.next((m) => m.id === 40 && m.type === 'event')).event as { a: Record<string, { s: string; a: object; lc: number }> };
    expect(Object.keys(initial.a)).toEqual(['sensor.alice_lawn']);
    expect(initial.a['sensor.alice_lawn']).toMatchObject({ s: '14', a: {}, lc: expect.any(Number) });

    t.hub.states.set('sensor.alice_lawn', '15', { unit_of_measurement: 'mm' }, { homeId: aliceHome, owner: 'api' });
    const change = (await ws.next((m) => m.id === 40 && m.type === 'event')).event as { c: Record<string, { '+': { s: string; a: object } }> };
    expect(change.c['sensor.alice_lawn']!['+']).toMatchObject({ s: '15', a: { unit_of_measurement: 'mm' } });

    t.hub.states.set('sensor.alice_extra', 'on', {}, { homeId: aliceHome, owner: 'api' });
    expect(((await ws.next((m) => m.id === 40 && m.type === 'event')).event as { a: object }).a).toHaveProperty('sensor.alice_extra');
    t.hub.states.remove('sensor.alice_extra');
    expect((await ws.next((m) => m.id === 40 && m.type === 'event')).event).toEqual({ r: ['sensor.alice_extra'] });
  });

  it('call_service runs the action and validates its data', async () => {
    const ok = await ws.command({
      id: 50,
      type: 'call_service',
      domain: 'test',
      service: 'set_height',
      service_data: { height: 40 },
      target: { entity_id: 'sensor.alice_lawn' },
      return_response: true,
    });
    expect(ok).toMatchObject({ success: true, result: { context: { user_id: alice.id }, response: { set: 1 } } });
    expect(t.hub.states.get('sensor.alice_lawn')?.state).toBe('40');

    const invalid = await ws.command({ id: 51, type: 'call_service', domain: 'test', service: 'set_height', service_data: { height: 'tall' }, target: { entity_id: 'sensor.alice_lawn' } });
    expect(invalid).toMatchObject({ success: false, error: { code: 'invalid_format', hub_code: 'HUB_ERR_VALIDATION' } });
    const otherHome = await ws.command({ id: 52, type: 'call_service', domain: 'test', service: 'set_height', service_data: { height: 40 }, target: { entity_id: 'sensor.bob_lawn' } });
    expect(otherHome).toMatchObject({ success: false, error: { code: 'not_found' } });
    expect(t.hub.states.get('sensor.bob_lawn')?.state).toBe('31');
    const missing = await ws.command({ id: 53, type: 'call_service', domain: 'test', service: 'nothing', service_data: {} });
    expect(missing).toMatchObject({ success: false, error: { code: 'not_found' } });
  });

  it('fire_event reaches subscribers of the same home only', async () => {
    const bobWs = await WsClient.authenticated(url, bob.token);
    await bobWs.command({ id: 1, type: 'subscribe_events', event_type: 'lawn_watered' });
    await ws.command({ id: 60, type: 'subscribe_events', event_type: 'lawn_watered' });
    const fired = await ws.command({ id: 61, type: 'fire_event', event_type: 'lawn_watered', event_data: { litres: 20 } });
    expect(fired).toMatchObject({ success: true, result: { context: { user_id: alice.id } } });
    expect((await ws.next((m) => m.id === 60 && m.type === 'event')).event).toMatchObject({ event_type: 'lawn_watered', data: { litres: 20 }, home_id: aliceHome });
    await bobWs.command({ id: 2, type: 'ping' });
    expect(bobWs.messages.filter((m) => m.type === 'event')).toEqual([]);
    const foreign = await ws.command({ id: 62, type: 'fire_event', event_type: 'lawn_watered', event_data: { home_id: bobHome } });
    expect(foreign).toMatchObject({ success: false, error: { code: 'not_found' } });
    bobWs.close();
  });

  it('get_services describes actions in Home Assistant’s shape', async () => {
    const services = (await ws.command({ id: 70, type: 'get_services' })).result as Record<string, Record<string, unknown>>;
    expect(services.test!.set_height).toEqual({
      name: 'set height',
      description: 'Set the lawn sensor',
      fields: {
        entity_id: { required: false, description: '', selector: { object: {} } },
        height: { required: true, description: 'Millimetres', selector: { number: { min: 10, max: 100 } } },
      },
      target: { entity: [{ domain: 'sensor' }] },
      response: { optional: true },
    });
    expect(services.hub).toBeUndefined(); // hub.purge_history is for administrators
  });

  it('get_config answers with the home’s place and the hub’s components', async () => {
    const config = (await ws.command({ id: 80, type: 'get_config' })).result as Record<string, unknown>;
    expect(config).toMatchObject({ location_name: 'Alice', time_zone: 'UTC', state: 'RUNNING', components: expect.arrayContaining(['housekeeping', 'test']) });
  });

  it('coalesces messages when the client asks for it', async () => {
    const client = await WsClient.authenticated(url, alice.token);
    await client.command({ id: 1, type: 'supported_features', features: { coalesce_messages: 1 } });
    const raw: string[] = [];
    client.socket.on('message', (data) => raw.push(data.toString()));
    // subscribe_entities answers with its result and the initial states in the same moment.
    client.send({ id: 2, type: 'subscribe_entities' });
    await client.next((m) => m.id === 2 && m.type === 'event');
    expect(JSON.parse(raw.at(-1)!)).toEqual([
      expect.objectContaining({ id: 2, type: 'result', success: true }),
      expect.objectContaining({ id: 2, type: 'event' }),
    ]);
    client.close();
  });
});

// Credentials that end (logout, revoked token, disabled account) are in ws-limits.test.ts.
describe('reserved events', () => {
  it('refuses to fire the kernel’s own events', async () => {
    const client = await WsClient.authenticated(url, alice.token);
    for (const [id, event_type] of [[1, 'home_deleted'], [2, 'state_changed']] as const) {
      const reply = await client.command({ id, type: 'fire_event', event_type, event_data: { home_id: aliceHome } });
      expect(reply).toMatchObject({ success: false, error: { code: 'unauthorized', hub_code: 'HUB_ERR_FORBIDDEN' } });
    }
    expect(t.hub.states.get('sensor.alice_lawn')).toBeDefined();
    client.close();
  });
});

describe('a slow consumer', () => {
  it('is disconnected instead of buffered without bound', async () => {
    const client = await WsClient.authenticated(url, alice.token);
    await client.command({ id: 1, type: 'subscribe_events', event_type: 'state_changed' });
    client.socket.pause(); // stops reading: the server's send buffer fills
    const big = { blob: 'x'.repeat(64 * 1024) };
    for (let i = 0; i < 400; i++) {
      t.hub.states.set('sensor.alice_flood', String(i), big, { homeId: aliceHome, owner: 'api' });
      await new Promise((resolve) => setImmediate(resolve));
    }
    client.socket.resume();
    expect((await client.closed).code).toBe(1006);
    t.hub.states.remove('sensor.alice_flood');
  });
});

describe('Home Assistant’s own client library (home-assistant-js-websocket)', () => {
  it('connects, lists entities, follows changes and calls actions', async () => {
    await withGlobalWebSocket(async () => {
      const connection = await createConnection({ auth: createLongLivedTokenAuth(url, alice.token) });
      const states = await getStates(connection);
      expect(states.map((s) => s.entity_id)).toContain('sensor.alice_lawn');
      expect(states.map((s) => s.entity_id)).not.toContain('sensor.bob_lawn');
      const services = await getServices(connection);
      expect(Object.keys(services.test ?? {})).toContain('set_height');

      let latest: HassEntities = {};
      const seen = new Promise<void>((resolve) => {
        const unsubscribe = subscribeEntities(connection, (entities) => {
          latest = entities;
          if (entities['sensor.alice_lawn']?.state === '77') {
            unsubscribe();
            resolve();
          }
        });
      });
      await callService(connection, 'test', 'set_height', { height: 77 }, { entity_id: 'sensor.alice_lawn' });
      await seen;
      expect(latest['sensor.alice_lawn']).toMatchObject({ state: '77', attributes: { unit_of_measurement: 'mm' } });
      expect(latest['sensor.bob_lawn']).toBeUndefined();
      connection.close();
    });
  });
});
