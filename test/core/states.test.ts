import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { loadConfig } from '../../core/config/index.js';
import { openDatabase, type HubDatabase } from '../../core/db/index.js';
import { createHub } from '../../core/hub.js';
import { createTestHub, openTestDatabase, TEST_SECRET_KEY, type TestHub } from '../harness/index.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let t: TestHub;
let homeId: string;
let otherHomeId: string;
let admin: string;
let owner: { id: string; token: string };
beforeAll(async () => {
  t = await createTestHub();
  admin = await t.adminToken();
  owner = await t.createUser('owner@example.com');
  homeId = await t.createHome(owner.token, { name: 'Mine' });
  otherHomeId = await t.createHome(admin, { name: 'Other' });
});
afterAll(() => t.stop());

describe('state machine', () => {
  const set = (id: string, state: string, attributes: Record<string, unknown> = {}) =>
    t.hub.states.set(id, state, attributes, { homeId, owner: 'api' });

  it('moves last_changed only when the state string changes', async () => {
    const first = set('sensor.grass', '10', { unit: 'mm' });
    await sleep(5);
    const attrOnly = set('sensor.grass', '10', { unit: 'cm' });
    expect(attrOnly.last_changed).toBe(first.last_changed);
    expect(attrOnly.last_updated > first.last_updated).toBe(true);
    await sleep(5);
    const changed = set('sensor.grass', '11', { unit: 'cm' });
    expect(changed.last_changed).toBe(changed.last_updated);
    expect(changed.last_changed > first.last_changed).toBe(true);
  });

  it('fires nothing when nothing changed', () => {
    set('sensor.still', 'a', { x: [1, 2] });
    let fired = 0;
    const off = t.hub.bus.on('state_changed', () => void fired++);
    set('sensor.still', 'a', { x: [1, 2] });
    off();
    expect(fired).toBe(0);
  });

  it.each(['Sensor.x', 'sensor', 'sensor.', '.x', 'sensor.a-b', 'sensor._x', 'sensor.x_', 'sensor.a__b', 'a.b.c'])(
    'rejects the entity id %s',
    (id) => {
      expect(() => set(id, 'on')).toThrow(expect.objectContaining({ code: 'HUB_ERR_INVALID_ENTITY_ID' }));
    },
  );

  it('refuses a change by someone who does not own the entity', () => {
    t.hub.states.set('sensor.owned', '1', {}, { homeId, owner: 'plugin:x' });
    expect(() => set('sensor.owned', '2')).toThrow(expect.objectContaining({ code: 'HUB_ERR_ENTITY_OWNED' }));
  });

  it('writes every change to history, in batches', async () => {
    for (let i = 0; i < 1200; i++) set('sensor.burst', String(i));
    await t.hub.states.flush();
    const rows = await t.hub.database.db
      .selectFrom('state_history')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('entity_id', '=', 'sensor.burst')
      .executeTakeFirstOrThrow();
    expect(Number(rows.n)).toBe(1200);
    const current = await t.hub.database.db.selectFrom('entity_states').select('state').where('entity_id', '=', 'sensor.burst').executeTakeFirst();
    expect(current?.state).toBe('1199');
  });
});

describe('restart', () => {
  /** A database that survives its hub: a PGlite directory, or a PostgreSQL database. */
  async function durableDatabase(): Promise<{ open(): Promise<HubDatabase>; drop(): Promise<void> }> {
    const server = await openTestDatabase();
    if (server.url) {
      await server.database.close();
      return { open: () => openDatabase({ kind: 'postgres', url: server.url! }), drop: server.drop };
    }
    await server.database.close();
    const dir = await mkdtemp(path.join(tmpdir(), 'hub-restart-'));
    const template = new Blob([await readFile(inject('pgliteTemplate'))]);
    let opened = 0;
    return {
      open: () => openDatabase({ kind: 'pglite', dataDir: dir, template: opened++ === 0 ? template : undefined }),
      drop: () => rm(dir, { recursive: true, force: true }),
    };
  }

  it('restores current states', async () => {
    const durable = await durableDatabase();
    const config = loadConfig({ HUB_ADMIN_PASSWORD: 'admin-password-1', LOG_LEVEL: 'silent', PORT: '0', MQTT_PORT: '0', HUB_SECRET_KEY: TEST_SECRET_KEY });
    try {
      const first = await createHub(config, { database: await durable.open(), plugins: [] });
      const home = await first.database.db.insertInto('homes').values({ name: 'h' }).returning('id').executeTakeFirstOrThrow();
      first.states.set('sensor.kept', '42', { unit: 'mm' }, { homeId: home.id, owner: 'api' });
      const before = first.states.get('sensor.kept');
      await first.stop();

      const second = await createHub(config, { database: await durable.open(), plugins: [] });
      expect(second.states.get('sensor.kept')).toEqual(before);
      await second.stop();
    } finally {
      await durable.drop();
    }
  });
});

describe('/api/states', () => {
  it('creates, updates, reads and removes a virtual entity', async () => {
    const created = await t.request('/api/states/sensor.rain', { token: owner.token, json: { state: 'dry', attributes: { friendly_name: 'Rain' } } });
    expect(created.status).toBe(403); // owners are not admins of their home
    const asAdmin = await t.request('/api/states/sensor.rain', { token: admin, json: { state: 'dry', home_id: homeId, attributes: { friendly_name: 'Rain' } } });
    expect(asAdmin.status).toBe(201);
    expect(asAdmin.headers.get('location')).toBe('/api/states/sensor.rain');
    const updated = await t.request('/api/states/sensor.rain', { token: admin, json: { state: 'wet' } });
    expect(updated.status).toBe(200);
    expect(await updated.json()).toMatchObject({ entity_id: 'sensor.rain', state: 'wet', attributes: {}, context: { user_id: expect.any(String) } });

    const read = await t.request('/api/states/sensor.rain', { token: owner.token });
    expect((await read.json()).state).toBe('wet');
    const list = (await (await t.request('/api/states', { token: owner.token })).json()) as { entity_id: string }[];
    expect(list.map((s) => s.entity_id)).toContain('sensor.rain');

    expect(await (await t.request('/api/states/sensor.rain', { method: 'DELETE', token: admin })).json()).toEqual({ message: 'Entity removed.' });
    expect((await t.request('/api/states/sensor.rain', { token: owner.token })).status).toBe(404);
  });

  it("hides another home's entities on every route", async () => {
    t.hub.states.set('sensor.secret', 'x', {}, { homeId: otherHomeId, owner: 'api' });
    expect((await t.request('/api/states/sensor.secret', { token: owner.token })).status).toBe(404);
    expect((await t.request('/api/states/sensor.secret', { token: owner.token, json: { state: 'mine' } })).status).toBe(403); // writes nowhere
    expect((await t.request('/api/states/sensor.secret', { method: 'DELETE', token: owner.token })).status).toBe(403);
    const list = await (await t.request('/api/states', { token: owner.token })).text();
    expect(list).not.toContain('sensor.secret');
    const history = await (await t.request('/api/history/period?filter_entity_id=sensor.secret', { token: owner.token })).json();
    expect(history).toEqual([]);
    expect(t.hub.states.get('sensor.secret')?.state).toBe('x');
  });

  it('answers bad input with coded 4xx', async () => {
    const bad = await t.request('/api/states/Not-An-Id', { token: admin });
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_INVALID_ENTITY_ID');
    expect((await t.request('/api/states/sensor.x', { token: admin, json: { state: 5 } })).status).toBe(400);
    expect((await t.request('/api/states/sensor.x', { token: admin, json: { state: 'x'.repeat(256), home_id: homeId } })).status).toBe(400);
    expect((await t.request('/api/states/sensor.x', { token: admin, json: { state: 'on' } })).status).toBe(400); // which home?
    expect((await t.request('/api/states/sensor.x', { token: admin, json: { state: 'on', home_id: crypto.randomUUID() } })).status).toBe(404);
    expect((await t.request('/api/states/sensor.nothing', { token: admin })).status).toBe(404);
    t.hub.states.set('sensor.plugin_made', '1', {}, { homeId, owner: 'plugin:demo' });
    expect((await t.request('/api/states/sensor.plugin_made', { method: 'DELETE', token: admin })).status).toBe(409);
    expect((await t.request('/api/states/sensor.plugin_made', { token: admin, json: { state: 'hacked' } })).status).toBe(409);
    expect(t.hub.states.get('sensor.plugin_made')?.state).toBe('1');
  });

  it('refuses what PostgreSQL cannot store, and keeps persisting everything else', async () => {
    for (const body of [{ state: 'a\u0000b' }, { state: 'ok', attributes: { note: 'x\u0000' } }, { state: '\ud800' }]) {
      const res = await t.request('/api/states/sensor.weird', { token: admin, json: { ...body, home_id: homeId } });
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    t.hub.states.set('sensor.after_weird', 'fine', {}, { homeId, owner: 'api' });
    await t.hub.states.flush();
    const stored = await t.hub.database.db.selectFrom('entity_states').select('state').where('entity_id', '=', 'sensor.after_weird').executeTakeFirst();
    expect(stored?.state).toBe('fine');
  });
});

describe('/api/history/period', () => {
  it('returns one list per entity, starting with the state at the start time', async () => {
    const set = (state: string, attributes = {}) => t.hub.states.set('sensor.hist', state, attributes, { homeId, owner: 'api' });
    set('a');
    await sleep(20);
    const start = new Date();
    await sleep(20);
    set('b', { n: 1 });
    set('b', { n: 2 });
    set('c');
    set('d');

    const url = `/api/history/period/${encodeURIComponent(start.toISOString())}?filter_entity_id=sensor.hist`;
    const full = (await (await t.request(url, { token: owner.token })).json()) as { state: string; last_changed: string; attributes?: object }[][];
    expect(full).toHaveLength(1);
    expect(full[0]!.map((s) => s.state)).toEqual(['a', 'b', 'b', 'c', 'd']);
    expect(full[0]![0]!.last_changed).toBe(start.toISOString());

    const significant = (await (await t.request(`${url}&significant_changes_only`, { token: owner.token })).json()) as { state: string }[][];
    expect(significant[0]!.map((s) => s.state)).toEqual(['a', 'b', 'c', 'd']);

    const minimal = (await (await t.request(`${url}&minimal_response&no_attributes`, { token: owner.token })).json()) as Record<string, unknown>[][];
    expect(Object.keys(minimal[0]![0]!)).toContain('entity_id');
    expect(Object.keys(minimal[0]![2]!).sort()).toEqual(['last_changed', 'state']);
    expect(minimal[0]!.at(-1)).toMatchObject({ entity_id: 'sensor.hist', state: 'd', attributes: {} });
  });

  it('rejects bad timestamps and oversized filters with 400', async () => {
    expect((await t.request('/api/history/period/yesterday', { token: owner.token })).status).toBe(400);
    expect((await t.request('/api/history/period/0000-01-01T00:00:00Z', { token: owner.token })).status).toBe(400);
    expect((await t.request('/api/history/period?end_time=0000-01-01T00:00:00Z', { token: owner.token })).status).toBe(400);
    const ids = Array.from({ length: 1001 }, (_, i) => `sensor.s${i}`).join(',');
    expect((await t.request(`/api/history/period?filter_entity_id=${ids}`, { token: owner.token })).status).toBe(400);
  });
});

// Issue 12 #9: an entity of a home the caller cannot see answers exactly like one that does not exist.
describe('/api/states existence probing', () => {
  const hidden = 'sensor.probe_hidden';
  const missing = 'sensor.probe_missing';
  beforeAll(() => {
    t.hub.states.set(hidden, 'x', {}, { homeId: otherHomeId, owner: 'api' });
  });
  /** Status and body, with the entity id taken out of the message. */
  const answer = async (entityId: string, token: string, init: { method?: string; json?: unknown } = {}) => {
    const res = await t.request(`/api/states/${entityId}`, { token, ...init });
    return { status: res.status, body: (await res.text()).replaceAll(entityId, '<id>') };
  };
  const probes = (homeId: string) => [{}, { json: { state: 'mine' } }, { json: { state: 'mine', home_id: homeId } }, { method: 'DELETE' }];

  it('tells a caller who writes in no home nothing: 403 before any lookup', async () => {
    for (const init of probes(homeId)) {
      const seen = await answer(hidden, owner.token, init);
      expect(seen, JSON.stringify(init)).toEqual(await answer(missing, owner.token, init));
      if (init.method || init.json) expect(seen.status).toBe(403);
    }
    expect(t.hub.states.get(hidden)?.state).toBe('x');
  });

  it("tells a home's admin only that the id is taken when they try to create it", async () => {
    const homeAdmin = await t.createUser('home-admin@example.com');
    const ownHome = await t.createHome(admin, { name: 'Administered' });
    await t.addMember(admin, ownHome, homeAdmin, 'admin');
    for (const init of [{}, { method: 'DELETE' }]) {
      const seen = await answer(hidden, homeAdmin.token, init);
      expect(seen).toEqual(await answer(missing, homeAdmin.token, init));
      expect(seen.status).toBe(404);
    }
    const taken = await t.request(`/api/states/${hidden}`, { token: homeAdmin.token, json: { state: 'mine', home_id: ownHome } });
    expect(taken.status).toBe(409);
    expect(((await taken.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_ENTITY_ID_TAKEN');
    expect(t.hub.states.entry(hidden)).toMatchObject({ homeId: otherHomeId, state: { state: 'x' } });
  });
});
