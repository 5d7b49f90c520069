import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type TestHub } from '../../harness/index.js';

let t: TestHub;
let token: string;
beforeAll(async () => {
  t = await createTestHub();
  token = await t.adminToken();
});
afterAll(() => t.stop());

async function error(res: Response) {
  return ((await res.json()) as { error: { code: string; message: string; details?: unknown } }).error;
}

describe('public routes', () => {
  it('GET /api/health reports version, database and uptime without authentication', async () => {
    const res = await t.request('/api/health');
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ status: 'ok', version: expect.any(String), db: { ok: true, latency_ms: expect.any(Number) } });
    expect(body.uptime_s).toBeGreaterThanOrEqual(0);
  });

  it('GET /api/openapi.json documents the routes', async () => {
    const doc = await (await t.request('/api/openapi.json')).json();
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/health',
        '/api/auth/login',
        '/api/homes',
        '/api/homes/{id}/members/{user_id}',
        '/api/tokens/{id}',
        '/api/users',
        '/api/states/{entity_id}',
        '/api/services/{domain}/{service}',
        '/api/events/{event_type}',
        '/api/history/period/{start}',
        '/api/jobs/{id}/run',
        '/api/plugins/{id}/enable',
      ]),
    );
  });

  it('GET /api/docs is a page over the OpenAPI document, with its script in a file of its own', async () => {
    const res = await t.request('/api/docs');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const page = await res.text();
    expect(page).not.toMatch(/<script>|<style>|\son\w+=/); // nothing inline: the CSP allows only the hub's files
    for (const asset of page.matchAll(/(?:src|href)="(\/api\/docs\/[^"]+)"/g)) {
      const file = await t.request(asset[1]!);
      expect(file.status, asset[1]).toBe(200);
      if (asset[1]!.endsWith('.js')) expect(await file.text()).toContain("fetch('/api/openapi.json')");
    }
  });
});

describe('every other route needs a caller', () => {
  it.each([
    ['GET', '/api/homes'],
    ['POST', '/api/homes'],
    ['GET', '/api/auth/me'],
    ['GET', '/api/users'],
    ['GET', '/api/no-such-route'],
  ])('%s %s → 401', async (method, path) => {
    const res = await t.request(path, { method });
    expect(res.status).toBe(401);
    expect((await error(res)).code).toBe('HUB_ERR_UNAUTHENTICATED');
  });

  it('rejects a malformed Authorization header and an unknown token', async () => {
    expect((await t.request('/api/homes', { headers: { authorization: 'Basic YTpi' } })).status).toBe(401);
    expect((await t.request('/api/homes', { token: 'not-a-real-session' })).status).toBe(401);
    expect((await t.request('/api/homes', { token: 'mhub_notarealtoken' })).status).toBe(401);
  });
});

describe('bad input gets a coded 4xx', () => {
  it('malformed JSON → 400 HUB_ERR_MALFORMED_JSON', async () => {
    const res = await t.hub.app.request('/api/homes', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{"name": "half',
    });
    expect(res.status).toBe(400);
    expect((await error(res)).code).toBe('HUB_ERR_MALFORMED_JSON');
  });

  it('a body that is not JSON → 415', async () => {
    const res = await t.hub.app.request('/api/homes', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' },
      body: 'name=x',
    });
    expect(res.status).toBe(415);
    expect((await error(res)).code).toBe('HUB_ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it('a missing body → 400 with the missing fields', async () => {
    const res = await t.request('/api/homes', { method: 'POST', token });
    expect(res.status).toBe(400);
    expect((await error(res)).code).toBe('HUB_ERR_VALIDATION');
  });

  it('a JSON value of the wrong type → 400', async () => {
    for (const json of [[], 'name', 42, null]) {
      const res = await t.request('/api/homes', { token, json });
      expect(res.status, JSON.stringify(json)).toBe(400);
    }
  });

  it('a body over the limit → 413, with or without Content-Length', async () => {
    const big = JSON.stringify({ name: 'x', address: 'a'.repeat(1024 * 1024) });
    const res = await t.request('/api/homes', { token, json: JSON.parse(big) });
    expect(res.status).toBe(413);
    expect((await error(res)).code).toBe('HUB_ERR_PAYLOAD_TOO_LARGE');

    const chunk = new TextEncoder().encode('a'.repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 20) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const streamed = await t.hub.app.request('/api/homes', {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
  });

  // Found by the REST fuzz: each of these answered 500 (PostgreSQL refused the text; the echo overflowed the stack).
  it('a NUL in the URL → 400, not a database error', async () => {
    const res = await t.request('/api/jobs/%00/run', { method: 'POST', token });
    expect(res.status).toBe(400);
    expect((await error(res)).code).toBe('HUB_ERR_VALIDATION');
  });

  it('text PostgreSQL cannot store, anywhere in a JSON body → 400 with where it is', async () => {
    for (const name of ['nul\u0000byte', 'lone \ud800 surrogate']) {
      const res = await t.request('/api/homes', { token, json: { name: 'ok', address: name } });
      expect(res.status, JSON.stringify(name)).toBe(400);
      expect(await error(res)).toMatchObject({ code: 'HUB_ERR_VALIDATION', details: [{ path: ['address'], code: 'unstorable_text' }] });
    }
    const key = await t.request('/api/states/sensor.nul_key', { token, json: { state: 'on', attributes: { 'a\u0000': 1 } } });
    expect(key.status).toBe(400);
  });

  it('JSON nested deeper than 64 levels → 400, whatever the declared type', async () => {
    const deep = '['.repeat(20_000) + ']'.repeat(20_000);
    for (const contentType of ['application/json', 'text/plain']) {
      const res = await t.hub.app.request('/api/events/fuzz_deep', {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
        body: `{"a":${deep}}`,
      });
      expect(res.status, contentType).toBe(400);
      expect(await error(res)).toMatchObject({ code: 'HUB_ERR_VALIDATION', details: [{ code: 'too_deep' }] });
    }
    // An emoji (a surrogate pair) and 64 levels are fine.
    const fine = await t.request('/api/events/fuzz_fine', { token, json: { note: '🌱', nested: JSON.parse('['.repeat(60) + ']'.repeat(60)) } });
    expect(fine.status).toBe(200);
  });

  it('an unknown route of a signed-in caller → 404', async () => {
    const res = await t.request('/api/no-such-route', { token });
    expect(res.status).toBe(404);
    expect((await error(res)).code).toBe('HUB_ERR_NOT_FOUND');
  });
});

describe('responses', () => {
  it('carry a request id, echoing a sane one from the client', async () => {
    const res = await t.request('/api/health', { headers: { 'x-request-id': 'trace-123' } });
    expect(res.headers.get('x-request-id')).toBe('trace-123');
    const generated = await t.request('/api/health', { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('log requests without secrets', async () => {
    await t.request('/api/auth/login', { json: { email: 'admin@example.com', password: 'admin-password-1' } });
    const text = JSON.stringify(t.logs);
    expect(text).not.toContain('admin-password-1');
    expect(text).not.toContain(token);
    expect(t.logs.some((l) => l.msg === 'request' && l.path === '/api/auth/login' && l.status === 200)).toBe(true);
  });
});

describe('when the database is gone', () => {
  it('answers 500 without internals, and health says 503', async () => {
    const broken = await createTestHub();
    try {
      const adminToken = await broken.adminToken();
      await broken.hub.database.close();
      const res = await broken.request('/api/homes', { token: adminToken });
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: { code: 'HUB_ERR_INTERNAL', message: 'Internal error' } });
      const health = await broken.request('/api/health');
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'degraded', db: { ok: false } });
      expect(broken.logs.some((l) => l.msg === 'unhandled error')).toBe(true);
    } finally {
      await broken.stop();
    }
  });
});

describe('graceful stop', () => {
  it('finishes a request in flight, then refuses new connections', async () => {
    const live = await createTestHub();
    const { url } = await live.hub.listen();
    const login = fetch(`${url}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'admin@example.com', password: 'admin-password-1' }),
    });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the login is now hashing
    const stopped = live.stop();
    const res = await login;
    expect(res.status).toBe(200);
    await stopped;
    await expect(fetch(`${url}/api/health`)).rejects.toThrow();
  });
});

describe('security headers', () => {
  const dataPolicy = { 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY' };
  const expectHeaders = (res: Response, label: string) => {
    for (const [name, value] of Object.entries(dataPolicy)) expect(res.headers.get(name), `${label}: ${name}`).toBe(value);
    expect(res.headers.get('content-security-policy'), label).toContain("frame-ancestors 'none'");
    expect(res.headers.get('strict-transport-security'), `${label}: no HSTS over plain HTTP`).toBeNull();
  };

  it('are on JSON answers, errors, misses, metrics and the docs page', async () => {
    const answers: [string, Response][] = [
      ['health', await t.request('/api/health')],
      ['401', await t.request('/api/homes')],
      ['404', await t.request('/api/no-such-route', { token })],
      ['400', await t.request('/api/homes', { token, json: [] })],
      ['metrics', await t.request('/metrics', { token })],
      ['outside /api', await t.request('/favicon.ico')],
    ];
    for (const [label, res] of answers) {
      expectHeaders(res, label);
      expect(res.headers.get('content-security-policy'), label).toMatch(/^default-src 'none'/);
    }
    const docs = await t.request('/api/docs');
    expectHeaders(docs, 'docs');
    const csp = docs.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain('unsafe-inline');
  });

  it("are on Node-RED's answers too, with its editor's allowance for inline scripts", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-red-headers-'));
    const red = await createTestHub({ HUB_NODERED: 'true', HUB_DATA_DIR: dataDir });
    try {
      const { url } = await red.hub.listen();
      for (const pathname of ['/red/', '/red/settings']) {
        const res = await fetch(`${url}${pathname}`);
        expect(res.headers.get('x-content-type-options'), pathname).toBe('nosniff');
        expect(res.headers.get('content-security-policy'), pathname).toBe("frame-ancestors 'none'");
        expect(res.headers.get('referrer-policy'), pathname).toBe('no-referrer');
      }
      // A path no flow serves is the hub's coded miss, with the same headers.
      const miss = await fetch(`${url}/red/api/no-such-endpoint`);
      expect(miss.status).toBe(404);
      expect(await miss.json()).toMatchObject({ error: { code: 'HUB_ERR_NOT_FOUND' } });
      expect(miss.headers.get('x-content-type-options')).toBe('nosniff');
      expect(miss.headers.get('content-security-policy')).toBe("frame-ancestors 'none'");
    } finally {
      await red.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('announce HSTS only for requests that came over TLS through a trusted proxy', async () => {
    const proxied = await createTestHub({ HUB_TRUST_PROXY: 'true' });
    try {
      const tls = await proxied.request('/api/health', { headers: { 'x-forwarded-proto': 'https' } });
      expect(tls.headers.get('strict-transport-security')).toMatch(/^max-age=\d{7,}/);
      expect((await proxied.request('/api/health', { headers: { 'x-forwarded-proto': 'http' } })).headers.get('strict-transport-security')).toBeNull();
    } finally {
      await proxied.stop();
    }
    // Without HUB_TRUST_PROXY the header is anyone's say-so.
    expect((await t.request('/api/health', { headers: { 'x-forwarded-proto': 'https' } })).headers.get('strict-transport-security')).toBeNull();
  });
});

describe('CORS', () => {
  const preflight = (hub: TestHub, origin: string) =>
    hub.hub.app.request('/api/homes', {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });

  it('is off by default: preflights refused with a code, no Allow-Origin on answers', async () => {
    const res = await preflight(t, 'https://app.example.com');
    expect(res.status).toBe(403);
    expect((await error(res)).code).toBe('HUB_ERR_CORS_ORIGIN');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const get = await t.request('/api/homes', { token, headers: { origin: 'https://app.example.com' } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('allows the configured origins, for bearer calls without credentials', async () => {
    const open = await createTestHub({ HUB_CORS_ORIGINS: 'https://app.example.com, http://localhost:5173' });
    try {
      const ok = await preflight(open, 'https://app.example.com');
      expect(ok.status).toBe(204);
      expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
      expect(ok.headers.get('access-control-allow-headers')).toMatch(/Authorization/i);
      expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
      expect((await preflight(open, 'https://evil.example.com')).status).toBe(403);

      const adminToken = await open.adminToken();
      const get = await open.request('/api/homes', { token: adminToken, headers: { origin: 'http://localhost:5173' } });
      expect(get.status).toBe(200);
      expect(get.headers.get('access-control-allow-origin')).toBe('http://localhost:5173');
      expect(get.headers.get('vary')).toMatch(/Origin/);
      const other = await open.request('/api/homes', { token: adminToken, headers: { origin: 'https://evil.example.com' } });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await open.stop();
    }
  });
});
