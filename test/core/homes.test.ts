import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type TestHub } from '../harness/index.js';

let t: TestHub;
let alice: { id: string; token: string };
let bob: { id: string; token: string };
let aliceHome: string;
let bobHome: string;

const square = {
  type: 'Polygon',
  coordinates: [
    [
      [-77.61, 43.15],
      [-77.6, 43.15],
      [-77.6, 43.16],
      [-77.61, 43.16],
      [-77.61, 43.15],
    ],
  ],
};

beforeAll(async () => {
  t = await createTestHub();
  alice = await t.createUser('alice@example.com');
  bob = await t.createUser('bob@example.com');
  aliceHome = await t.createHome(alice.token, { name: 'Alice', latitude: 43.155, longitude: -77.605, timezone: 'America/New_York', parcel: square });
  bobHome = await t.createHome(bob.token, { name: 'Bob' });
});
afterAll(() => t.stop());

async function errorCode(res: Response) {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

describe('homes', () => {
  it('are created with their creator as owner', async () => {
    const home = await (await t.request(`/api/homes/${aliceHome}`, { token: alice.token })).json();
    expect(home).toMatchObject({
      name: 'Alice',
      latitude: 43.155,
      longitude: -77.605,
      timezone: 'America/New_York',
      parcel: square,
      role: 'owner',
      address: null,
    });
  });

  it("are invisible to other homes' users: 404 on every route, never their data", async () => {
    const routes: [string, string, unknown?][] = [
      ['GET', `/api/homes/${aliceHome}`],
      ['PATCH', `/api/homes/${aliceHome}`, { name: 'mine now' }],
      ['DELETE', `/api/homes/${aliceHome}`],
      ['GET', `/api/homes/${aliceHome}/members`],
      ['POST', `/api/homes/${aliceHome}/members`, { email: 'bob@example.com', role: 'owner' }],
      ['DELETE', `/api/homes/${aliceHome}/members/${alice.id}`],
    ];
    for (const [method, path, json] of routes) {
      const res = await t.request(path, { method, token: bob.token, json });
      expect(res.status, `${method} ${path}`).toBe(404);
      const text = await res.text();
      expect(text).not.toContain('Alice');
      expect(JSON.parse(text).error.code).toBe('HUB_ERR_HOME_NOT_FOUND');
    }
    const list = (await (await t.request('/api/homes', { token: bob.token })).json()) as { id: string }[];
    expect(list.map((h) => h.id)).toEqual([bobHome]);
    expect((await (await t.request(`/api/homes/${aliceHome}`, { token: alice.token })).json()).name).toBe('Alice');
  });

  it('are all visible to hub administrators', async () => {
    const list = (await (await t.request('/api/homes', { token: await t.adminToken() })).json()) as { id: string; role: string }[];
    expect(list.map((h) => h.id)).toEqual(expect.arrayContaining([aliceHome, bobHome]));
    expect(new Set(list.map((h) => h.role))).toEqual(new Set(['admin']));
  });

  it('are updated by owners; null clears a field', async () => {
    const res = await t.request(`/api/homes/${aliceHome}`, {
      method: 'PATCH',
      token: alice.token,
      json: { address: '1 Elm St', parcel: null },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ address: '1 Elm St', parcel: null, name: 'Alice' });
  });

  it('reject bad input with the reasons', async () => {
    const cases: [unknown, string][] = [
      [{}, 'name'],
      [{ name: 'x', latitude: 91, longitude: 0 }, 'latitude'],
      [{ name: 'x', latitude: 43 }, 'latitude'],
      [{ name: 'x', timezone: 'Mars/Olympus' }, 'timezone'],
      [{ name: 'x', parcel: { type: 'Polygon', coordinates: [[[0, 0], [1, 0], [1, 1], [0, 0.5]]] } }, 'parcel'],
      [{ name: 'x', parcel: { type: 'Point', coordinates: [0, 0] } }, 'parcel'],
      [{ name: 'x', owner: 'someone' }, ''],
      [{ name: 42 }, 'name'],
    ];
    for (const [json, field] of cases) {
      const res = await t.request('/api/homes', { token: alice.token, json });
      expect(res.status, JSON.stringify(json)).toBe(400);
      const body = (await res.json()) as { error: { code: string; details: { path: string[] }[] } };
      expect(body.error.code).toBe('HUB_ERR_VALIDATION');
      expect(body.error.details.map((d) => d.path[0] ?? '')).toContain(field);
    }
  });

  it('answer a malformed id with a validation error, an unknown one with 404', async () => {
    expect((await t.request('/api/homes/42', { token: alice.token })).status).toBe(400);
    const res = await t.request(`/api/homes/${crypto.randomUUID()}`, { token: await t.adminToken() });
    expect(res.status).toBe(404);
  });
});

describe('members', () => {
  let home: string;
  let carol: { id: string; token: string };
  beforeAll(async () => {
    home = await t.createHome(alice.token, { name: 'Shared' });
    carol = await t.createUser('carol@example.com');
  });

  it('are added by email and see the home with their role', async () => {
    const res = await t.request(`/api/homes/${home}/members`, { token: alice.token, json: { email: 'Carol@example.com', role: 'technician' } });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ user_id: carol.id, role: 'technician' });
    const seen = await (await t.request(`/api/homes/${home}`, { token: carol.token })).json();
    expect(seen.role).toBe('technician');
    const members = (await (await t.request(`/api/homes/${home}/members`, { token: carol.token })).json()) as { email: string }[];
    expect(members.map((m) => m.email)).toEqual(['alice@example.com', 'carol@example.com']);
  });

  it('change role on a second POST', async () => {
    const res = await t.request(`/api/homes/${home}/members`, { token: alice.token, json: { email: 'carol@example.com', role: 'viewer' } });
    expect(res.status).toBe(200);
    expect((await res.json()).role).toBe('viewer');
  });

  it('cannot manage the home below the owner role', async () => {
    const res = await t.request(`/api/homes/${home}`, { method: 'PATCH', token: carol.token, json: { name: 'x' } });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe('HUB_ERR_FORBIDDEN');
    const add = await t.request(`/api/homes/${home}/members`, { token: carol.token, json: { email: 'bob@example.com', role: 'viewer' } });
    expect(add.status).toBe(403);
  });

  it('cannot be granted a role above the granter', async () => {
    const res = await t.request(`/api/homes/${home}/members`, { token: alice.token, json: { email: 'bob@example.com', role: 'admin' } });
    expect(res.status).toBe(403);
  });

  it('need an existing account', async () => {
    const res = await t.request(`/api/homes/${home}/members`, { token: alice.token, json: { email: 'ghost@example.com', role: 'viewer' } });
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe('HUB_ERR_USER_NOT_FOUND');
  });

  it('keep at least one owner', async () => {
    const leave = await t.request(`/api/homes/${home}/members/${alice.id}`, { method: 'DELETE', token: alice.token });
    expect(leave.status).toBe(409);
    expect(await errorCode(leave)).toBe('HUB_ERR_LAST_OWNER');
    const demote = await t.request(`/api/homes/${home}/members`, { token: alice.token, json: { email: 'alice@example.com', role: 'viewer' } });
    expect(demote.status).toBe(409);
  });

  it('can leave by themselves, and are then shut out', async () => {
    const res = await t.request(`/api/homes/${home}/members/${carol.id}`, { method: 'DELETE', token: carol.token });
    expect(res.status).toBe(204);
    expect((await t.request(`/api/homes/${home}`, { token: carol.token })).status).toBe(404);
    const again = await t.request(`/api/homes/${home}/members/${carol.id}`, { method: 'DELETE', token: alice.token });
    expect(again.status).toBe(404);
    expect(await errorCode(again)).toBe('HUB_ERR_MEMBER_NOT_FOUND');
  });
});

describe('deleting a home', () => {
  it('removes it with its memberships and tokens', async () => {
    const home = await t.createHome(alice.token, { name: 'Doomed' });
    const token = (await (await t.request('/api/tokens', { token: alice.token, json: { name: 'd', home_id: home, role: 'viewer' } })).json()).token;
    expect((await t.request(`/api/homes/${home}`, { method: 'DELETE', token: alice.token })).status).toBe(204);
    expect((await t.request(`/api/homes/${home}`, { token: alice.token })).status).toBe(404);
    expect((await t.request(`/api/homes/${home}`, { token })).status).toBe(401);
    const members = await t.hub.database.db.selectFrom('home_members').where('home_id', '=', home).selectAll().execute();
    expect(members).toEqual([]);
  });
});
