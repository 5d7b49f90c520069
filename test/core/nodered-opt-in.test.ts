/**
 * Node-RED with what an operator may switch on: node types that reach the host
 * (`HUB_NODERED_UNSAFE_NODES`) and a hub-token check on flows' HTTP endpoints
 * (`HUB_NODERED_HTTP_AUTH`). Its own file: Node-RED runs once per process.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, type TestHub } from '../harness/index.js';
import { until } from '../harness/wait.js';
import { EXEC_FLOW } from './fixtures/nodered-echo-flow.js';

describe('Node-RED with the operator opt-ins', () => {
  let t: TestHub;
  let url: string;
  let dataDir: string;
  let admin: string;
  let owner: { id: string; token: string };
  let ownHome: string;
  let otherHome: string;
  let apiToken: string;

  const flow = (route: string, headers: Record<string, string> = {}) => fetch(`${url}/red/api${route}`, { headers });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-nodered-opt-in-'));
    t = await createTestHub({ HUB_NODERED: 'true', HUB_DATA_DIR: dataDir, HUB_NODERED_UNSAFE_NODES: 'true', HUB_NODERED_HTTP_AUTH: 'true' });
    ({ url } = await t.hub.listen());
    admin = await t.adminToken();
    owner = await t.createUser('owner@example.com');
    ownHome = await t.createHome(owner.token, { name: 'Own' });
    otherHome = await t.createHome(admin, { name: 'Other' });
    const created = await t.request('/api/tokens', { token: owner.token, json: { name: 'page', home_id: ownHome, role: 'owner' } });
    ({ token: apiToken } = (await created.json()) as { token: string });

    const deployed = await fetch(`${url}/red/flows`, {
      method: 'POST',
      headers: { ...bearer(admin), 'content-type': 'application/json', 'node-red-deployment-type': 'full' },
      body: JSON.stringify(EXEC_FLOW),
    });
    expect(deployed.status).toBe(204);
    await until(async () => (await flow('/echo', bearer(apiToken))).status, (status) => status === 200);
  });
  afterAll(async () => {
    await t?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('offers exec when the operator enables the node types that reach the host', async () => {
    const nodes = (await (await fetch(`${url}/red/nodes`, { headers: { ...bearer(admin), accept: 'application/json' } })).json()) as { types: string[] }[];
    expect(nodes.flatMap((set) => set.types)).toEqual(expect.arrayContaining(['exec', 'file', 'file in', 'watch', 'tcp in', 'udp out']));
    expect(await (await flow('/exec', bearer(apiToken))).text()).toBe('ran-on-the-host\n');
  });

  it('answers 401 at flow endpoints without a hub bearer token', async () => {
    for (const headers of [{}, bearer('not-a-token'), { cookie: `hub_session=${admin}` }] as Record<string, string>[]) {
      const refused = await flow('/echo', headers);
      expect(refused.status).toBe(401);
      expect(await refused.json()).toMatchObject({ error: { code: 'HUB_ERR_UNAUTHENTICATED' } });
    }
  });

  it('hands the flow who called, never the token', async () => {
    const seen = await flow('/echo', bearer(apiToken));
    const echoed = await seen.text();
    expect(echoed).not.toContain(apiToken);
    expect(JSON.parse(echoed)).toMatchObject({ hub: { user_id: owner.id, email: 'owner@example.com', admin: false, homes: { [ownHome]: 'owner' } } });
    expect(JSON.parse(echoed).headers).not.toHaveProperty('authorization');
  });

  it('requires a role in the home a /homes/<id>/ path names', async () => {
    expect((await flow(`/homes/${ownHome}/echo`, bearer(apiToken))).status).toBe(200);
    for (const route of [`/homes/${otherHome}/echo`, `/HOMES/${otherHome}/echo`]) {
      const refused = await flow(route, bearer(apiToken));
      expect(refused.status).toBe(404);
      expect(await refused.json()).toMatchObject({ error: { code: 'HUB_ERR_HOME_NOT_FOUND' } });
    }
    expect((await flow(`/homes/${otherHome}/echo`, bearer(admin))).status).toBe(200); // an administrator's session reaches every home
  });
});
