import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashSecret, SESSION_LIFETIME_MS } from '../../core/auth/index.js';
import { addressKey, createLoginLimiter, LOGIN_LIMITS } from '../../core/auth/rate-limit.js';
import { hasLiveSessionFrom } from '../../core/auth/sessions.js';
import { ADMIN, createTestHub, type TestHub } from '../harness/index.js';

const DAY = 86_400_000;

let t: TestHub;
beforeAll(async () => {
  t = await createTestHub();
});
afterAll(() => t.stop());

async function errorCode(res: Response) {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

describe('first run', () => {
  it('creates the administrator from HUB_ADMIN_EMAIL / HUB_ADMIN_PASSWORD', async () => {
    expect(t.hub.firstRunAdmin).toEqual({ email: ADMIN.email, generatedPassword: undefined });
    const me = await t.request('/api/auth/me', { token: await t.adminToken() });
    expect(await me.json()).toMatchObject({ user: { email: ADMIN.email, is_admin: true }, via: 'session', homes: [] });
  });

  it('generates a password when none is configured, and never again once users exist', async () => {
    const fresh = await createTestHub({ HUB_ADMIN_EMAIL: 'admin@localhost', HUB_ADMIN_PASSWORD: '' });
    try {
      const generated = fresh.hub.firstRunAdmin?.generatedPassword;
      expect(generated).toMatch(/^[a-z2-7]{32}$/);
      expect(fresh.logs.some((line) => JSON.stringify(line).includes(generated!))).toBe(false);
      await fresh.login('admin@localhost', generated!);
    } finally {
      await fresh.stop();
    }
  });
});

describe('login and logout', () => {
  it('returns a token and an HttpOnly SameSite=Lax cookie; the cookie and the bearer both work', async () => {
    const res = await t.request('/api/auth/login', { json: { email: ADMIN.email, password: ADMIN.password } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { token: string; expires_at: string };
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(new RegExp(`^hub_session=${body.token};`));
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(Date.parse(body.expires_at) - Date.now()).toBeGreaterThan(SESSION_LIFETIME_MS - 60_000);

    const viaCookie = await t.request('/api/auth/me', { headers: { cookie: `hub_session=${body.token}` } });
    expect(viaCookie.status).toBe(200);
    const viaBearer = await t.request('/api/auth/me', { token: body.token });
    expect(viaBearer.status).toBe(200);
  });

  it('stores only the hash of the session token', async () => {
    const token = await t.login(ADMIN.email, ADMIN.password);
    const rows = await t.hub.database.db.selectFrom('sessions').select('id').execute();
    expect(rows.map((r) => r.id)).toContain(hashSecret(token));
    expect(rows.map((r) => r.id)).not.toContain(token);
  });

  it('refuses a wrong password and an unknown email alike', async () => {
    const wrong = await t.request('/api/auth/login', { json: { email: ADMIN.email, password: 'not-it-at-all' } });
    const unknown = await t.request('/api/auth/login', { json: { email: 'nobody@example.com', password: 'whatever1' } });
    expect([wrong.status, unknown.status]).toEqual([401, 401]);
    expect(await wrong.json()).toEqual(await unknown.json());
  });

  it('ends the session on logout', async () => {
    const token = await t.login(ADMIN.email, ADMIN.password);
    const out = await t.request('/api/auth/logout', { method: 'POST', token });
    expect(out.status).toBe(204);
    const after = await t.request('/api/auth/me', { token });
    expect(after.status).toBe(401);
    expect(await errorCode(after)).toBe('HUB_ERR_UNAUTHENTICATED');
  });

  it('rejects disabled accounts and ends their sessions', async () => {
    const user = await t.createUser('disabled@example.com');
    const res = await t.request(`/api/users/${user.id}`, { method: 'PATCH', token: await t.adminToken(), json: { disabled: true } });
    expect(res.status).toBe(200);
    expect((await t.request('/api/auth/me', { token: user.token })).status).toBe(401);
    const login = await t.request('/api/auth/login', { json: { email: 'disabled@example.com', password: 'user-password-1' } });
    expect(login.status).toBe(403);
    expect(await errorCode(login)).toBe('HUB_ERR_ACCOUNT_DISABLED');
  });
});

describe('session lifetime', () => {
  const setExpiry = (token: string, expiresAt: Date) =>
    t.hub.database.db.updateTable('sessions').set({ expires_at: expiresAt }).where('id', '=', hashSecret(token)).execute();
  const expiryOf = async (token: string) =>
    (await t.hub.database.db.selectFrom('sessions').select('expires_at').where('id', '=', hashSecret(token)).executeTakeFirst())
      ?.expires_at;

  it('rejects and deletes an expired session', async () => {
    const token = await t.login(ADMIN.email, ADMIN.password);
    await setExpiry(token, new Date(Date.now() - 1000));
    const res = await t.request('/api/auth/me', { headers: { cookie: `hub_session=${token}` } });
    expect(res.status).toBe(401);
    expect(res.headers.get('set-cookie')).toMatch(/hub_session=;/);
    expect(await expiryOf(token)).toBeUndefined();
  });

  it('slides the expiry forward when a session in its second half is used', async () => {
    const token = await t.login(ADMIN.email, ADMIN.password);
    await setExpiry(token, new Date(Date.now() + 10 * DAY));
    const res = await t.request('/api/auth/me', { headers: { cookie: `hub_session=${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toMatch(new RegExp(`hub_session=${token};`));
    expect((await expiryOf(token))!.getTime() - Date.now()).toBeGreaterThan(29 * DAY);
  });

  it('leaves a young session as it is', async () => {
    const token = await t.login(ADMIN.email, ADMIN.password);
    const before = await expiryOf(token);
    const res = await t.request('/api/auth/me', { token });
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(await expiryOf(token)).toEqual(before);
  });
});

describe('API tokens', () => {
  let owner: { id: string; token: string };
  let homeA: string;
  let homeB: string;
  beforeAll(async () => {
    owner = await t.createUser('token-owner@example.com');
    homeA = await t.createHome(owner.token, { name: 'A' });
    homeB = await t.createHome(owner.token, { name: 'B' });
  });

  async function createToken(body: Record<string, unknown>, token = owner.token) {
    return t.request('/api/tokens', { token, json: body });
  }

  it('is shown once, stored hashed, and listed without its secret', async () => {
    const res = await createToken({ name: 'automation', home_id: homeA, role: 'viewer' });
    expect(res.status).toBe(201);
    const created = (await res.json()) as { id: string; token: string; hint: string };
    expect(created.token).toMatch(/^mhub_/);
    expect(created.hint).toBe(created.token.slice(-4));
    const list = await (await t.request('/api/tokens', { token: owner.token })).json();
    expect(JSON.stringify(list)).not.toContain(created.token);
    expect(list).toEqual(expect.arrayContaining([expect.objectContaining({ id: created.id, name: 'automation', role: 'viewer' })]));
    const stored = await t.hub.database.db.selectFrom('api_tokens').select('token_hash').where('id', '=', created.id).executeTakeFirst();
    expect(stored?.token_hash).toBe(hashSecret(created.token));
  });

  it('reaches only its home, with only its role', async () => {
    const { token } = (await (await createToken({ name: 'viewer', home_id: homeA, role: 'viewer' })).json()) as { token: string };
    expect((await t.request(`/api/homes/${homeA}`, { token })).status).toBe(200);
    const patch = await t.request(`/api/homes/${homeA}`, { method: 'PATCH', token, json: { name: 'renamed' } });
    expect(patch.status).toBe(403);
    const other = await t.request(`/api/homes/${homeB}`, { token });
    expect(other.status).toBe(404);
    const list = (await (await t.request('/api/homes', { token })).json()) as { id: string }[];
    expect(list.map((h) => h.id)).toEqual([homeA]);
  });

  it('cannot mint tokens, manage users or create homes', async () => {
    const { token } = (await (await createToken({ name: 'owner', home_id: homeA, role: 'owner' })).json()) as { token: string };
    expect(await errorCode(await createToken({ name: 'x', home_id: homeA, role: 'viewer' }, token))).toBe('HUB_ERR_FORBIDDEN');
    expect((await t.request('/api/homes', { token, json: { name: 'new' } })).status).toBe(403);
    expect((await t.request('/api/tokens', { token })).status).toBe(403);
  });

  it('never grants more than the owner holds', async () => {
    const viewer = await t.createUser('token-viewer@example.com');
    await t.addMember(owner.token, homeA, viewer, 'viewer');
    const tooStrong = await createToken({ name: 'x', home_id: homeA, role: 'owner' }, viewer.token);
    expect(tooStrong.status).toBe(403);
    const notMine = await createToken({ name: 'x', home_id: homeB, role: 'viewer' }, viewer.token);
    expect(notMine.status).toBe(404);
  });

  it('stops working when revoked, when expired, and when its owner leaves the home', async () => {
    const make = async () =>
      (await (await createToken({ name: 't', home_id: homeA, role: 'viewer' })).json()) as { id: string; token: string };

    const revoked = await make();
    expect((await t.request(`/api/tokens/${revoked.id}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
    expect((await t.request(`/api/homes/${homeA}`, { token: revoked.token })).status).toBe(401);
    expect((await t.request(`/api/tokens/${revoked.id}`, { method: 'DELETE', token: owner.token })).status).toBe(404);

    const expired = await make();
    await t.hub.database.db.updateTable('api_tokens').set({ expires_at: new Date(Date.now() - 1000) }).where('id', '=', expired.id).execute();
    const res = await t.request(`/api/homes/${homeA}`, { token: expired.token });
    expect(res.status).toBe(401);
    expect(await errorCode(res)).toBe('HUB_ERR_UNAUTHENTICATED');

    const member = await t.createUser('leaver@example.com');
    await t.addMember(owner.token, homeA, member, 'owner');
    const { token } = (await (await createToken({ name: 'l', home_id: homeA, role: 'owner' }, member.token)).json()) as { token: string };
    expect((await t.request(`/api/homes/${homeA}`, { token })).status).toBe(200);
    await t.request(`/api/homes/${homeA}/members/${member.id}`, { method: 'DELETE', token: owner.token });
    expect((await t.request(`/api/homes/${homeA}`, { token })).status).toBe(401);
  });

  it("cannot revoke someone else's token", async () => {
    const { id } = (await (await createToken({ name: 'mine', home_id: homeA, role: 'viewer' })).json()) as { id: string };
    const res = await t.request(`/api/tokens/${id}`, { method: 'DELETE', token: await t.adminToken() });
    expect(res.status).toBe(404);
  });

  it('validates its input', async () => {
    const res = await createToken({ name: '', home_id: 'not-a-uuid', role: 'god' });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; details: { path: string[] }[] } };
    expect(body.error.code).toBe('HUB_ERR_VALIDATION');
    expect(body.error.details.map((d) => d.path[0]).sort()).toEqual(['home_id', 'name', 'role']);
  });
});

describe('login rate limits', () => {
  it('locks an account after 5 failures, with Retry-After, even for the right password', async () => {
    await t.createUser('target@example.com', { password: 'right-password' });
    for (let i = 0; i < 5; i++) {
      const res = await t.request('/api/auth/login', { json: { email: 'target@example.com', password: `guess-${i}` } });
      expect(res.status).toBe(401);
    }
    const locked = await t.request('/api/auth/login', { json: { email: 'target@example.com', password: 'right-password' } });
    expect(locked.status).toBe(429);
    expect(await errorCode(locked)).toBe('HUB_ERR_RATE_LIMITED');
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(800);
    // Other accounts are not affected.
    expect((await t.request('/api/auth/login', { json: { email: ADMIN.email, password: ADMIN.password } })).status).toBe(200);
  });

  it('counts parallel guesses before checking them', async () => {
    await t.createUser('parallel@example.com', { password: 'right-password' });
    const statuses = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        t.request('/api/auth/login', { json: { email: 'parallel@example.com', password: `guess-${i}` } }).then((r) => r.status),
      ),
    );
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(7);
  });

  it('limits attempts per client address (behind a trusted proxy)', async () => {
    const proxied = await createTestHub({ HUB_TRUST_PROXY: 'true' });
    try {
      const attempt = (ip: string, n: number) =>
        proxied.request('/api/auth/login', {
          json: { email: `spray-${n}@example.com`, password: 'password1' },
          headers: { 'x-forwarded-for': `198.51.100.7, ${ip}` },
        });
      for (let n = 0; n < 30; n++) expect((await attempt('203.0.113.9', n)).status).toBe(401);
      const limited = await attempt('203.0.113.9', 30);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await attempt('203.0.113.10', 31)).status).toBe(401);
    } finally {
      await proxied.stop();
    }
  });
});

describe('login rate limits per address and account', () => {
  let proxied: TestHub;
  beforeAll(async () => {
    proxied = await createTestHub({ HUB_TRUST_PROXY: 'true' });
    await proxied.createUser('owner@example.com', { password: 'right-password' });
  });
  afterAll(() => proxied.stop());
  const loginFrom = (ip: string, email: string, password: string) =>
    proxied.request('/api/auth/login', { json: { email, password }, headers: { 'x-forwarded-for': ip } });

  it("do not let guesses from elsewhere lock the owner out", async () => {
    for (let i = 0; i < 5; i++) expect((await loginFrom('203.0.113.9', 'owner@example.com', `guess-${i}`)).status).toBe(401);
    const attacker = await loginFrom('203.0.113.9', 'owner@example.com', 'right-password');
    expect(attacker.status).toBe(429);
    expect(Number(attacker.headers.get('retry-after'))).toBeGreaterThan(800);
    expect((await loginFrom('198.51.100.20', 'owner@example.com', 'right-password')).status).toBe(200);
  });

  it('count an IPv6 /64 as one address', async () => {
    for (let i = 1; i <= 5; i++) expect((await loginFrom(`2001:db8:0:7::${i}`, 'owner@example.com', 'wrong')).status).toBe(401);
    expect((await loginFrom('2001:db8:0:7::99', 'owner@example.com', 'right-password')).status).toBe(429);
    expect((await loginFrom('2001:db8:0:8::1', 'owner@example.com', 'right-password')).status).toBe(200);
    expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
  });

  it('cap guesses on one account from many addresses, except from where the owner has signed in', async () => {
    expect((await loginFrom('198.51.100.30', 'owner@example.com', 'right-password')).status).toBe(200);
    let clock = Date.now();
    const limiter = createLoginLimiter({
      isKnownAddress: (email, address) => hasLiveSessionFrom(proxied.hub.database.db, email, address),
      now: () => clock,
    });
    const { limit, windowMs } = LOGIN_LIMITS.perAccountFromNewAddresses;
    const perAddress = LOGIN_LIMITS.perAddressAndAccount.limit;
    for (let n = 0; n < limit; n++) expect(await limiter.admit(`192.0.2.${Math.floor(n / perAddress)}`, 'owner@example.com')).toBe(0);
    expect(await limiter.admit('192.0.2.250', 'owner@example.com')).toBeGreaterThan(0);
    expect(await limiter.admit('198.51.100.30', 'owner@example.com')).toBe(0);
    expect(await limiter.admit('192.0.2.251', 'someone-else@example.com')).toBe(0);
    clock += windowMs;
    expect(await limiter.admit('192.0.2.252', 'owner@example.com')).toBe(0);
  });
});

describe('CSRF', () => {
  let cookie: string;
  beforeAll(async () => {
    cookie = `hub_session=${await t.login(ADMIN.email, ADMIN.password)}`;
  });
  const create = (headers: Record<string, string>) =>
    t.request('/api/homes', { json: { name: 'csrf' }, headers: { cookie, host: 'hub.example', ...headers } });

  it('refuses cookie-authenticated writes from another site or of unknown origin', async () => {
    const attempts: Record<string, string>[] = [{}, { origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }, { origin: 'null' }];
    for (const headers of attempts) {
      const res = await create(headers);
      expect(res.status).toBe(403);
      expect(await errorCode(res)).toBe('HUB_ERR_CSRF');
    }
  });

  it('accepts them from the same origin', async () => {
    expect((await create({ origin: 'http://hub.example' })).status).toBe(201);
    expect((await create({ 'sec-fetch-site': 'same-origin' })).status).toBe(201);
  });

  it('does not apply to bearer tokens, which a browser never sends by itself', async () => {
    const res = await t.request('/api/homes', { token: await t.adminToken(), json: { name: 'tool' } });
    expect(res.status).toBe(201);
  });

  it('refuses a cross-site login form', async () => {
    const res = await t.request('/api/auth/login', {
      json: { email: ADMIN.email, password: ADMIN.password },
      headers: { origin: 'https://evil.example', host: 'hub.example' },
    });
    expect(res.status).toBe(403);
  });
});

describe('registration', () => {
  it('is closed by default', async () => {
    const res = await t.request('/api/auth/register', { json: { email: 'new@example.com', password: 'password1' } });
    expect(res.status).toBe(403);
    expect(await errorCode(res)).toBe('HUB_ERR_REGISTRATION_CLOSED');
  });

  it('creates a plain user when open, and refuses a taken email', async () => {
    const open = await createTestHub({ HUB_OPEN_REGISTRATION: 'true' });
    try {
      const res = await open.request('/api/auth/register', { json: { email: 'New@Example.com', password: 'password1', name: 'New' } });
      expect(res.status).toBe(201);
      const body = (await res.json()) as { token: string; user: { email: string; is_admin: boolean } };
      expect(body.user).toMatchObject({ email: 'new@example.com', is_admin: false });
      expect((await open.request('/api/auth/me', { token: body.token })).status).toBe(200);
      const again = await open.request('/api/auth/register', { json: { email: 'new@example.com', password: 'password2' } });
      expect(again.status).toBe(409);
      const weak = await open.request('/api/auth/register', { json: { email: 'weak@example.com', password: 'short' } });
      expect(weak.status).toBe(400);
    } finally {
      await open.stop();
    }
  });
});

describe('users (admin)', () => {
  it('are managed by administrators only', async () => {
    const plain = await t.createUser('plain@example.com');
    expect((await t.request('/api/users', { token: plain.token })).status).toBe(403);
    expect((await t.request('/api/users', { token: plain.token, json: { email: 'x@example.com', password: 'password1' } })).status).toBe(403);
    const list = (await (await t.request('/api/users', { token: await t.adminToken() })).json()) as { email: string }[];
    expect(list.map((u) => u.email)).toContain('plain@example.com');
    expect(JSON.stringify(list)).not.toContain('password');
  });

  it('refuses a duplicate email with 409 and an unknown id with 404', async () => {
    const admin = await t.adminToken();
    const dup = await t.request('/api/users', { token: admin, json: { email: ADMIN.email.toUpperCase(), password: 'password1' } });
    expect(dup.status).toBe(409);
    expect(await errorCode(dup)).toBe('HUB_ERR_EMAIL_TAKEN');
    const missing = await t.request(`/api/users/${crypto.randomUUID()}`, { method: 'PATCH', token: admin, json: { name: 'x' } });
    expect(missing.status).toBe(404);
  });

  it('keeps at least one active administrator', async () => {
    const admin = await t.adminToken();
    const me = (await (await t.request('/api/auth/me', { token: admin })).json()) as { user: { id: string } };
    const res = await t.request(`/api/users/${me.user.id}`, { method: 'PATCH', token: admin, json: { is_admin: false } });
    expect(res.status).toBe(409);
    expect(await errorCode(res)).toBe('HUB_ERR_LAST_ADMIN');
  });

  it('ends sessions when the password is reset', async () => {
    const user = await t.createUser('reset@example.com');
    await t.request(`/api/users/${user.id}`, { method: 'PATCH', token: await t.adminToken(), json: { password: 'brand-new-pass' } });
    expect((await t.request('/api/auth/me', { token: user.token })).status).toBe(401);
    await t.login('reset@example.com', 'brand-new-pass');
  });
});
