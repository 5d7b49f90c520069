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
      ['GET', `/api/homes/${aliceHome}/invitations`],
      ['DELETE', `/api/homes/${aliceHome}/invitations/${crypto.randomUUID()}`],
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
  let carol: { id: string; email: string; token: string };
  beforeAll(async () => {
    home = await t.createHome(alice.token, { name: 'Shared' });
    carol = await t.createUser('carol@example.com');
  });
  const invite = (email: string, role: string, token = alice.token) => t.request(`/api/homes/${home}/members`, { token, json: { email, role } });
  const invitationsOf = async (token: string) =>
    (await (await t.request('/api/invitations', { token })).json()) as { id: string; home: { id: string; name: string }; role: string; invited_by: { email: string } }[];

  it('join by invitation: nobody is a member before accepting', async () => {
    const res = await invite('Carol@example.com', 'technician');
    expect(res.status).toBe(202);
    const invitation = (await res.json()) as { id: string };
    expect(invitation).toMatchObject({ home_id: home, email: 'carol@example.com', role: 'technician', invited_by: alice.id });
    expect((await t.request(`/api/homes/${home}`, { token: carol.token })).status).toBe(404);
    const pending = (await (await t.request(`/api/homes/${home}/invitations`, { token: alice.token })).json()) as { id: string }[];
    expect(pending.map((i) => i.id)).toEqual([invitation.id]);

    expect(await invitationsOf(carol.token)).toEqual([
      expect.objectContaining({ id: invitation.id, home: { id: home, name: 'Shared' }, role: 'technician', invited_by: { name: '', email: 'alice@example.com' } }),
    ]);
    const accepted = await t.request(`/api/invitations/${invitation.id}/accept`, { method: 'POST', token: carol.token });
    expect(accepted.status).toBe(200);
    expect(await accepted.json()).toMatchObject({ id: home, role: 'technician' });
    expect((await (await t.request(`/api/homes/${home}`, { token: carol.token })).json()).role).toBe('technician');
    const members = (await (await t.request(`/api/homes/${home}/members`, { token: carol.token })).json()) as { email: string }[];
    expect(members.map((m) => m.email)).toEqual(['alice@example.com', 'carol@example.com']);
    expect(await invitationsOf(carol.token)).toEqual([]);
    expect(await (await t.request(`/api/homes/${home}/invitations`, { token: alice.token })).json()).toEqual([]);
  });

  it('answer the same whether or not the email has an account', async () => {
    const known = await invite('bob@example.com', 'viewer');
    const unknown = await invite('ghost@example.com', 'viewer');
    expect(known.status).toBe(202);
    expect(unknown.status).toBe(202);
    const shape = (body: Record<string, unknown>) => ({ ...body, id: 'id', email: 'email', created_at: 'at', expires_at: 'at' });
    expect(shape(await known.json())).toEqual(shape(await unknown.json()));
    expect(known.headers.get('content-length')).toBe(unknown.headers.get('content-length'));
    // Bob was not added: he must accept first.
    expect((await t.request(`/api/homes/${home}`, { token: bob.token })).status).toBe(404);
  });

  it('can be declined, and belong to the invitee only', async () => {
    const [invitation] = await invitationsOf(bob.token);
    expect(invitation?.home.id).toBe(home);
    for (const token of [carol.token, alice.token]) {
      const res = await t.request(`/api/invitations/${invitation!.id}/accept`, { method: 'POST', token });
      expect(res.status).toBe(404);
      expect(await errorCode(res)).toBe('HUB_ERR_INVITATION_NOT_FOUND');
    }
    expect((await t.request(`/api/invitations/${invitation!.id}/decline`, { method: 'POST', token: bob.token })).status).toBe(204);
    expect((await t.request(`/api/invitations/${invitation!.id}/accept`, { method: 'POST', token: bob.token })).status).toBe(404);
    expect((await t.request(`/api/homes/${home}`, { token: bob.token })).status).toBe(404);
  });

  it('wait for someone who registers later', async () => {
    await invite('later@example.com', 'viewer');
    const later = await t.createUser('later@example.com');
    await t.addMember(alice.token, home, later, 'viewer');
    expect((await (await t.request(`/api/homes/${home}`, { token: later.token })).json()).role).toBe('viewer');
  });

  it('are revoked by owners and expire', async () => {
    const dave = await t.createUser('dave@example.com');
    const first = (await (await invite('dave@example.com', 'viewer')).json()) as { id: string };
    expect((await t.request(`/api/homes/${home}/invitations/${first.id}`, { method: 'DELETE', token: carol.token })).status).toBe(403);
    expect((await t.request(`/api/homes/${home}/invitations/${first.id}`, { method: 'DELETE', token: alice.token })).status).toBe(204);
    expect((await t.request(`/api/invitations/${first.id}/accept`, { method: 'POST', token: dave.token })).status).toBe(404);

    const second = (await (await invite('dave@example.com', 'viewer')).json()) as { id: string; expires_at: string };
    expect(Date.parse(second.expires_at) - Date.now()).toBeGreaterThan(13 * 86_400_000);
    await t.hub.database.db.updateTable('home_invitations').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', second.id).execute();
    expect(await invitationsOf(dave.token)).toEqual([]);
    expect((await t.request(`/api/invitations/${second.id}/accept`, { method: 'POST', token: dave.token })).status).toBe(404);
    expect((await t.request(`/api/homes/${home}`, { token: dave.token })).status).toBe(404);
  });

  it('are capped per home; renewing one does not count twice', async () => {
    const capped = await t.createHome(alice.token, { name: 'Capped' });
    const send = (email: string) => t.request(`/api/homes/${capped}/members`, { token: alice.token, json: { email, role: 'viewer' } });
    for (let i = 0; i < 50; i++) expect((await send(`guest-${i}@example.com`)).status).toBe(202);
    const over = await send('guest-50@example.com');
    expect(over.status).toBe(409);
    expect(await errorCode(over)).toBe('HUB_ERR_INVITATION_LIMIT');
    expect((await send('guest-0@example.com')).status).toBe(202);
    const rows = await t.hub.database.db.selectFrom('home_invitations').select('id').where('home_id', '=', capped).execute();
    expect(rows).toHaveLength(50);
  });

  it('are void once the inviter may no longer grant the role', async () => {
    const erin = await t.createUser('erin@example.com');
    await t.addMember(alice.token, home, erin, 'owner');
    const frank = await t.createUser('frank@example.com');
    const invitation = (await (await invite('frank@example.com', 'owner', erin.token)).json()) as { id: string };
    expect((await invite('erin@example.com', 'viewer')).status).toBe(200);
    const res = await t.request(`/api/invitations/${invitation.id}/accept`, { method: 'POST', token: frank.token });
    expect(res.status).toBe(404);
    expect((await t.request(`/api/homes/${home}`, { token: frank.token })).status).toBe(404);
  });

  it("change a member's role on a second POST", async () => {
    const res = await invite('carol@example.com', 'viewer');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ user_id: carol.id, role: 'viewer' });
  });

  it('cannot manage the home below the owner role', async () => {
    const res = await t.request(`/api/homes/${home}`, { method: 'PATCH', token: carol.token, json: { name: 'x' } });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe('HUB_ERR_FORBIDDEN');
    expect((await invite('bob@example.com', 'viewer', carol.token)).status).toBe(403);
    expect((await t.request(`/api/homes/${home}/invitations`, { token: carol.token })).status).toBe(403);
  });

  it('cannot be granted a role above the granter', async () => {
    expect((await invite('bob@example.com', 'admin')).status).toBe(403);
  });

  it('are in the OpenAPI document', async () => {
    const doc = (await (await t.request('/api/openapi.json')).json()) as { paths: Record<string, object> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/homes/{id}/invitations', '/api/homes/{id}/invitations/{invitation_id}', '/api/invitations', '/api/invitations/{id}/accept', '/api/invitations/{id}/decline']),
    );
    expect(Object.keys(doc.paths['/api/homes/{id}/members']!)).toContain('post');
  });

  it('need a session to see or answer invitations', async () => {
    const { token } = (await (await t.request('/api/tokens', { token: carol.token, json: { name: 'tool', home_id: home, role: 'viewer' } })).json()) as { token: string };
    expect((await t.request('/api/invitations', { token })).status).toBe(403);
  });

  it('keep at least one owner', async () => {
    const leave = await t.request(`/api/homes/${home}/members/${alice.id}`, { method: 'DELETE', token: alice.token });
    expect(leave.status).toBe(409);
    expect(await errorCode(leave)).toBe('HUB_ERR_LAST_OWNER');
    expect((await invite('alice@example.com', 'viewer')).status).toBe(409);
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
