/**
 * Node-RED really embedded: sign-on through hub sessions, deploys stored (and versioned) in the
 * hub's database, flows' HTTP endpoints, and flows that survive a restart of the hub process.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { definePlugin } from '../../core/plugin.js';
import { createTestHub, type TestHub } from '../harness/index.js';
import { startHub, waitForUrl } from '../harness/process.js';
import { until } from '../harness/wait.js';
import { ECHO_FLOW, EXEC_FLOW } from './fixtures/nodered-echo-flow.js';

const HELLO_FLOW = [
  { id: 'tab1', type: 'tab', label: 'Hello' },
  { id: 'in1', type: 'http in', z: 'tab1', url: '/hello', method: 'get', wires: [['fn1']] },
  { id: 'fn1', type: 'change', z: 'tab1', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'hello from a flow', tot: 'str' }], wires: [['out1']] },
  { id: 'out1', type: 'http response', z: 'tab1', statusCode: '200', wires: [] },
];

describe('Node-RED in the hub', () => {
  let t: TestHub;
  let url: string;
  let dataDir: string;
  let admin: string;

  const red = (route: string, init: { token?: string; cookie?: string; method?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
    fetch(`${url}/red${route}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        ...(init.token ? { authorization: `Bearer ${init.token}` } : {}),
        ...(init.cookie ? { cookie: `hub_session=${init.cookie}` } : {}),
        ...(init.body === undefined ? {} : { 'content-type': 'application/json', 'node-red-deployment-type': 'full' }),
        ...init.headers,
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-nodered-'));
    const echo = definePlugin({
      id: 'echo',
      version: '1.0.0',
      hub: '*',
      setup: (ctx) => ctx.nodeRed.nodes(fileURLToPath(new URL('./fixtures/nodered-plugin', import.meta.url))),
    });
    t = await createTestHub({ HUB_NODERED: 'true', HUB_DATA_DIR: dataDir }, { plugins: [{ definition: echo }] });
    ({ url } = await t.hub.listen());
    admin = await t.adminToken();
  });
  afterAll(async () => {
    await t?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('opens the editor to administrators and automation users, refuses others', async () => {
    expect((await red('/settings')).status).toBe(401);
    expect((await red('/')).status).toBe(200); // the editor page, which asks anonymous callers to sign in
    expect((await red('/settings', { token: admin })).status).toBe(200);
    expect((await red('/settings', { cookie: admin })).status).toBe(200); // the hub's own sign-in, no second login

    const viewer = await t.createUser('viewer@example.com');
    const refused = await red('/settings', { token: viewer.token });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: { code: 'HUB_ERR_FORBIDDEN' } });
    expect((await red('/flows', { token: 'not-a-session' })).status).toBe(401);

    const automator = await t.createUser('automator@example.com');
    const allow = await t.request(`/api/users/${automator.id}`, { method: 'PATCH', token: admin, json: { can_automate: true } });
    expect(await allow.json()).toMatchObject({ can_automate: true });
    expect((await red('/settings', { token: automator.token })).status).toBe(200);

    const apiToken = await t.request('/api/tokens', { token: admin, json: { name: 'tool', home_id: await t.createHome(admin), role: 'owner' } });
    const { token } = (await apiToken.json()) as { token: string };
    expect((await red('/settings', { token })).status).toBe(403); // API tokens are for tools, not the editor
  });

  it("shows a plugin's nodes in the palette while the plugin runs", async () => {
    const echoEnabled = async () => {
      const nodes = (await (await red('/nodes', { token: admin, headers: { accept: 'application/json' } })).json()) as { types: string[]; enabled: boolean }[];
      return nodes.find((set) => set.types.includes('test-echo'))?.enabled;
    };
    expect(await echoEnabled()).toBe(true);
    await t.request('/api/plugins/echo/disable', { method: 'POST', token: admin });
    await until(echoEnabled, (enabled) => enabled === false);
    await t.request('/api/plugins/echo/enable', { method: 'POST', token: admin });
    await until(echoEnabled, (enabled) => enabled === true);
  });

  it('refuses cookie-authenticated writes from other sites', async () => {
    const forged = await red('/flows', { cookie: admin, body: HELLO_FLOW, headers: { origin: 'https://evil.example' } });
    expect(forged.status).toBe(403);
    expect(await forged.json()).toMatchObject({ error: { code: 'HUB_ERR_CSRF' } });
  });

  it('stores each deploy as a version, serves the flow, and restores an earlier version', async () => {
    expect((await red('/flows', { token: admin, body: HELLO_FLOW })).status).toBe(204);
    // The deploy answers before the new flows have started.
    await until(async () => (await fetch(`${url}/red/api/hello`)).text(), (body) => body === 'hello from a flow');

    const second = [...HELLO_FLOW, { id: 'c1', type: 'comment', z: 'tab1', name: 'second version', wires: [] }];
    expect((await red('/flows', { token: admin, body: second })).status).toBe(204);
    const versions = (await (await t.request('/api/nodered/versions', { token: admin })).json()) as { id: string; nodes: number; deployed_by: { email: string } }[];
    expect(versions.slice(0, 2).map((v) => v.nodes)).toEqual([5, 4]);
    expect(versions[0]!.deployed_by.email).toBe('admin@example.com');

    const restored = await t.request(`/api/nodered/versions/${versions[1]!.id}/restore`, { method: 'POST', token: admin });
    expect(restored.status).toBe(200);
    expect(await restored.json()).toMatchObject({ nodes: 4, restored_from: versions[1]!.id });
    const running = (await (await red('/flows', { token: admin })).json()) as { id: string }[];
    expect(running.map((n) => n.id).sort()).toEqual(['fn1', 'in1', 'out1', 'tab1']);

    const viewer = await t.login('viewer@example.com', 'user-password-1');
    expect((await t.request('/api/nodered/versions', { token: viewer })).status).toBe(403);
    expect((await t.request('/api/nodered/versions/999999/restore', { method: 'POST', token: admin })).status).toBe(404);
  });

  it("keeps flow credentials encrypted under the hub's key", async () => {
    const withSecret = [...HELLO_FLOW, { id: 'broker1', type: 'mqtt-broker', name: 'b', broker: '127.0.0.1', port: '1', credentials: { user: 'u', password: 'flow-secret-123' } }];
    expect((await red('/flows', { token: admin, body: withSecret })).status).toBe(204);
    const row = await t.hub.database.db.selectFrom('nodered_deployments').select('credentials').orderBy('id', 'desc').executeTakeFirstOrThrow();
    expect(JSON.stringify(row.credentials)).not.toContain('flow-secret-123');
    expect(row.credentials).toHaveProperty('$');
  });

  it("keeps the hub's session from flows' HTTP endpoints", async () => {
    expect((await red('/flows', { token: admin, body: ECHO_FLOW })).status).toBe(204);
    await until(async () => (await fetch(`${url}/red/api/echo`)).status, (status) => status === 200);

    // An administrator's browser opens a page a flow serves: the flow's author must not get their session.
    const seen = await fetch(`${url}/red/api/echo`, { headers: { cookie: `theme=dark; hub_session=${admin}` } });
    expect(seen.status).toBe(200);
    const echoed = await seen.text();
    expect(echoed).not.toContain(admin);
    expect(JSON.parse(echoed)).toMatchObject({ headers: { cookie: 'theme=dark' }, distinct: { cookie: ['theme=dark'] }, cookies: { theme: 'dark' } });
    expect(JSON.parse(echoed).headers).not.toHaveProperty('authorization');
    // Express matches paths without regard to case: so must the hub.
    expect(await (await fetch(`${url}/red/API/echo`, { headers: { cookie: `hub_session=${admin}` } })).text()).not.toContain(admin);

    // Endpoints are anonymous: a signed-in viewer is not refused as if they had opened the editor.
    const reader = await t.createUser('reader@example.com');
    expect((await fetch(`${url}/red/api/echo`, { headers: { cookie: `hub_session=${reader.token}` } })).status).toBe(200);
    const unserved = await fetch(`${url}/red/api/settings`, { headers: { authorization: `Bearer ${reader.token}` } });
    expect(unserved.status).toBe(404); // the flows' root ends at the flows, never in the editor
    expect(await unserved.json()).toMatchObject({ error: { code: 'HUB_ERR_NOT_FOUND' } });
  });

  it('leaves out node types that reach the host unless the operator enables them', async () => {
    const nodes = (await (await red('/nodes', { token: admin, headers: { accept: 'application/json' } })).json()) as { id: string; types: string[] }[];
    const types = nodes.flatMap((set) => set.types);
    expect(types).toContain('http in');
    for (const type of ['exec', 'file', 'file in', 'watch', 'tcp in', 'tcp out', 'tcp request', 'udp in', 'udp out']) expect(types).not.toContain(type);
    const enable = await red('/nodes/node-red/exec', { token: admin, method: 'PUT', body: { enabled: true } });
    expect(await enable.json()).toMatchObject({ code: 'not_found' }); // the editor cannot switch it back on

    // A flow that uses one is stored but does not run (Node-RED waits for the missing type).
    expect((await red('/flows', { token: admin, body: EXEC_FLOW })).status).toBe(204);
    expect(await until(async () => (await fetch(`${url}/red/api/echo`)).status, (status) => status === 404)).toBe(404);
    expect((await fetch(`${url}/red/api/exec`)).status).toBe(404);
  });
});

describe('Node-RED across a restart of the hub process', () => {
  it('runs the deployed flows again after the hub restarts', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-nodered-restart-'));
    const env = { HUB_DATA_DIR: dataDir, HUB_ADMIN_EMAIL: 'admin@example.com', HUB_ADMIN_PASSWORD: 'admin-password-1', HUB_SECRET_KEY: 'restart-test-secret-key-0123456789abcd' };
    try {
      let hub = startHub(env);
      let url = await waitForUrl(hub);
      const login = await fetch(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin@example.com', password: 'admin-password-1' }) });
      const { token } = (await login.json()) as { token: string };
      const deployed = await fetch(`${url}/red/flows`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'node-red-deployment-type': 'full' },
        body: JSON.stringify(HELLO_FLOW),
      });
      expect(deployed.status).toBe(204);
      hub.child.kill('SIGTERM');
      expect(await hub.exited).toBe(0);

      hub = startHub(env);
      url = await waitForUrl(hub);
      await until(async () => (await fetch(`${url}/red/api/hello`)).text(), (body) => body === 'hello from a flow');
      hub.child.kill('SIGTERM');
      expect(await hub.exited).toBe(0);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
