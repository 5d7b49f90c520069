import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { until } from '../../harness/wait.js';
import { WsClient } from '../../harness/ws.js';

// Small limits, so each one is reached in a few frames; credentials re-checked every second.
const LIMITS = {
  HUB_WS_MAX_SUBSCRIPTIONS: '5',
  HUB_WS_MAX_CONNECTIONS_PER_USER: '3',
  HUB_WS_COMMAND_RATE: '5',
  HUB_WS_COMMAND_BURST: '10',
  HUB_WS_AUTH_RECHECK_SECONDS: '1',
};

let t: TestHub;
let url: string;
let alice: { id: string; token: string };
let aliceHome: string;

beforeAll(async () => {
  t = await createTestHub(LIMITS);
  ({ url } = await t.hub.listen());
  alice = await t.createUser('alice@example.com');
  aliceHome = await t.createHome(alice.token, { name: 'Alice' });
  t.hub.states.set('sensor.alice_lawn', '12', {}, { homeId: aliceHome, owner: 'api' });
});
afterAll(() => t.stop());

/** Opens a connection and answers the type of the reply to its auth message. */
async function tryAuthenticate(token: string): Promise<{ client: WsClient; reply: Record<string, unknown> }> {
  const client = await WsClient.open(url);
  await client.next((m) => m.type === 'auth_required');
  client.send({ type: 'auth', access_token: token });
  return { client, reply: await client.next((m) => m.type === 'auth_ok' || m.type === 'auth_invalid') };
}

/** An authenticated connection, once an earlier test's closed connections have freed their places. */
async function connect(token: string): Promise<WsClient> {
  return (await until(() => tryAuthenticate(token), ({ reply }) => reply.type === 'auth_ok')).client;
}

describe('subscriptions per connection', () => {
  it('are capped: one over answers not_allowed, and a state change reaches the connection once per subscription held', async () => {
    const client = await connect(alice.token);
    for (let id = 1; id <= 4; id++) expect(await client.command({ id, type: 'subscribe_events', event_type: 'state_changed' })).toMatchObject({ success: true });
    expect(await client.command({ id: 5, type: 'subscribe_entities' })).toMatchObject({ success: true });
    for (const [id, type] of [[6, 'subscribe_events'], [7, 'subscribe_entities']] as const) {
      expect(await client.command({ id, type })).toEqual({
        id,
        type: 'result',
        success: false,
        error: { code: 'not_allowed', message: expect.stringContaining('5 subscriptions'), hub_code: 'HUB_ERR_TOO_MANY_SUBSCRIPTIONS' },
      });
    }

    t.hub.states.set('sensor.alice_lawn', '13', {}, { homeId: aliceHome, owner: 'api' });
    await client.command({ id: 8, type: 'ping' });
    expect(client.messages.filter((m) => m.type === 'event' && m.id !== 5).map((m) => m.id)).toEqual([1, 2, 3, 4]);

    // Unsubscribing frees a place.
    expect(await client.command({ id: 9, type: 'unsubscribe_events', subscription: 2 })).toMatchObject({ success: true });
    expect(await client.command({ id: 10, type: 'subscribe_events' })).toMatchObject({ success: true });
    client.close();
    await client.closed;
  });
});

describe('connections per user', () => {
  it('are capped: one over gets auth_invalid and closes 1008, other users are not affected, and a closed one frees its place', async () => {
    const held = [await connect(alice.token), await connect(alice.token), await connect(alice.token)];
    const over = await tryAuthenticate(alice.token);
    expect(over.reply).toEqual({ type: 'auth_invalid', message: expect.stringContaining('Too many connections') });
    expect(await over.client.closed).toEqual({ code: 1008, reason: 'Too many connections' });

    const bob = await t.createUser('bob@example.com');
    const bobClient = await WsClient.authenticated(url, bob.token);
    expect(await bobClient.command({ id: 1, type: 'ping' })).toMatchObject({ type: 'pong' });
    bobClient.close();

    held[0]!.close();
    await held[0]!.closed;
    const again = await connect(alice.token);
    expect(await again.command({ id: 1, type: 'ping' })).toMatchObject({ type: 'pong' });
    for (const client of [...held, again]) client.close();
    await Promise.all([...held, again].map((client) => client.closed));
  });
});

describe('commands per connection', () => {
  it('are rate-limited with a token bucket: past the burst they answer not_allowed, and the refused id may be sent again later', async () => {
    const client = await connect(alice.token);
    for (let id = 1; id <= 30; id++) client.send({ id, type: 'ping' });
    const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => client.next((m) => m.id === i + 1)));
    const pongs = answers.filter((m) => m.type === 'pong');
    const refused = answers.filter((m) => m.type === 'result');
    expect(pongs.length).toBeGreaterThanOrEqual(10);
    expect(pongs.length).toBeLessThan(15); // 10 at once, then 5 a second
    expect(refused[0]).toEqual({
      id: refused[0]!.id,
      type: 'result',
      success: false,
      error: { code: 'not_allowed', message: expect.stringContaining('Too many commands'), hub_code: 'HUB_ERR_RATE_LIMITED' },
    });

    const lastRefused = refused.at(-1)!.id as number;
    const retried = await until(
      () => client.command({ id: lastRefused, type: 'ping' }),
      (m) => m.type === 'pong' || (m.error as { code: string }).code !== 'not_allowed',
    );
    expect(retried).toEqual({ id: lastRefused, type: 'pong' });
    client.close();
    await client.closed;
  });
});

describe('the credential', () => {
  it('is not looked up in the database for each command', async () => {
    const client = await connect(alice.token);
    // While the sessions table is locked, any query for the credential would wait.
    let release!: () => void;
    const locked = new Promise<void>((resolve) => (release = resolve));
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const transaction = t.hub.database.db.transaction().execute(async (trx) => {
      await sql`lock table sessions in access exclusive mode`.execute(trx);
      holding();
      await locked;
    });
    try {
      await held;
      expect(await client.command({ id: 1, type: 'ping' })).toEqual({ id: 1, type: 'pong' });
      const states = await client.command({ id: 2, type: 'get_states' });
      expect((states.result as { entity_id: string }[]).map((s) => s.entity_id)).toEqual(['sensor.alice_lawn']);
    } finally {
      release();
      await transaction;
    }
    client.close();
    await client.closed;
  });

  it.each([
    [
      'a logout',
      async () => {
        const token = await t.login('alice@example.com', 'user-password-1');
        return { token, end: () => t.request('/api/auth/logout', { method: 'POST', token }) };
      },
    ],
    [
      'a revoked API token',
      async () => {
        const created = (await (await t.request('/api/tokens', { token: alice.token, json: { name: 'ws', home_id: aliceHome, role: 'viewer' } })).json()) as { id: string; token: string };
        return { token: created.token, end: () => t.request(`/api/tokens/${created.id}`, { method: 'DELETE', token: alice.token }) };
      },
    ],
    [
      'a disabled account',
      async () => {
        const carol = await t.createUser('carol@example.com');
        const admin = await t.adminToken();
        return { token: carol.token, end: () => t.request(`/api/users/${carol.id}`, { method: 'PATCH', token: admin, json: { disabled: true } }) };
      },
    ],
  ])('closes the socket (4001) within seconds after %s, subscribed or idle', async (_, setUp) => {
    const { token, end } = await setUp();
    const client = await connect(token);
    await client.command({ id: 1, type: 'subscribe_events', event_type: 'state_changed' });
    expect((await end()).status).toBeLessThan(300);
    const started = Date.now();
    expect((await client.closed).code).toBe(4001);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('follows a lost membership: subscribe_entities stops delivering that home', async () => {
    const dave = await t.createUser('dave@example.com');
    await t.hub.database.db.insertInto('home_members').values({ home_id: aliceHome, user_id: dave.id, role: 'viewer' }).execute();
    const client = await WsClient.authenticated(url, dave.token);
    await client.command({ id: 1, type: 'subscribe_entities' });
    expect(((await client.next((m) => m.id === 1 && m.type === 'event')).event as { a: object }).a).toHaveProperty('sensor.alice_lawn');

    const removed = await t.request(`/api/homes/${aliceHome}/members/${dave.id}`, { method: 'DELETE', token: alice.token });
    expect(removed.status).toBeLessThan(300);
    let id = 2;
    await until(
      () => client.command({ id: id++, type: 'get_states' }),
      (m) => Array.isArray(m.result) && m.result.length === 0,
    );
    t.hub.states.set('sensor.alice_lawn', 'after', {}, { homeId: aliceHome, owner: 'api' });
    await client.command({ id: id++, type: 'ping' });
    expect(client.messages.filter((m) => m.id === 1)).toEqual([]);
    client.close();
  });
});

describe('the HUB_WS_* settings', () => {
  it('default to sane limits and refuse values that are not whole numbers in range, naming the variable', async () => {
    const { ConfigError, loadConfig } = await import('../../../core/config/index.js');
    expect(loadConfig({}).websocket).toEqual({ maxSubscriptions: 300, maxConnectionsPerUser: 20, commandRate: 20, commandBurst: 200, recheckMs: 5000 });
    for (const [name, value] of [['HUB_WS_MAX_SUBSCRIPTIONS', '0'], ['HUB_WS_COMMAND_RATE', 'fast'], ['HUB_WS_AUTH_RECHECK_SECONDS', '1.5'], ['HUB_WS_AUTH_RECHECK_SECONDS', '3600']]) {
      expect(() => loadConfig({ [name!]: value }), `${name}=${value}`).toThrow(ConfigError);
      expect(() => loadConfig({ [name!]: value })).toThrow(name);
    }
  });
});
