/**
 * The cluster plugin's Node-RED node (`cluster-plan`, plugins/cluster/nodes) and the
 * `cluster-relay` example flow, on a hub with Node-RED embedded. A stand-in for the Mammotion
 * plugin (stand-in-mower.ts) records what it is asked, and the test ends the mowing sessions
 * itself, so the walk runs in milliseconds; the real mower is tested in schedule.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HubEvent } from '../../../core/bus/index.js';
import { hubError } from '../../../core/errors/index.js';
import { definePlugin } from '../../../core/plugin.js';
import type { RunView } from '../../../plugins/cluster/runs.js';
import { clusterMowing } from '../../../plugins/cluster/schedule.js';
import type { ClusterTables } from '../../../plugins/cluster/tables.js';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { until } from '../../harness/wait.js';
import { standInMower } from './stand-in-mower.js';

const CLUSTER_DIR = fileURLToPath(new URL('../../../plugins/cluster', import.meta.url));
const ADDRESS = 'address:6f1d4c2e-8a51-4a0f-9d6b-2f7a0c9e3b11';

describe('cluster Node-RED nodes and the cluster-relay flow', () => {
  let t: TestHub;
  let url: string;
  let admin: string;
  let dataDir: string;
  let hostHome: string;
  let homeB: string;
  let clusterId: string;
  const mower = standInMower();
  const events: HubEvent[] = [];
  const plan = (hostId: string) => ({ hostId, hostStatus: 'ok', members: [{ candidateId: 'x', distM: 12, pathM: 14, reason: 'direct', qualified: true, sameBlock: true, lineClear: true }], rejected: [], route: { order: ['x'], lengthM: 28 }, warnings: [] });

  const red = (route: string, init: { method?: string; body?: unknown } = {}) =>
    fetch(`${url}/red${route}`, {
      method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
      headers: {
        authorization: `Bearer ${admin}`,
        accept: 'application/json',
        ...(init.body === undefined ? {} : { 'content-type': 'application/json', 'node-red-deployment-type': 'full' }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    });
  const flowApi = (route: string, body: unknown) => fetch(`${url}/red/api${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const fired = (type: string) => events.filter((e) => e.event_type === type);
  const db = () => t.hub.database.db.withTables<ClusterTables>();
  const openRun = async () => (await db().selectFrom('cluster_runs').select('id').where('status', '=', 'running').executeTakeFirst())?.id;
  /** Ends the mower's session as the Mammotion plugin would. */
  const sessionEnded = (area: number, outcome: 'finished' | 'interrupted' = 'finished') => mower.endSession(hostHome, { area, outcome });

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'hub-cluster-nodes-'));
    const cluster = definePlugin({
      id: 'cluster',
      version: '0.0.0',
      hub: '*',
      async setup(ctx) {
        await clusterMowing(ctx, {
          positionChanged: async () => {},
          // The test runs the job itself (runNow).
          tickMs: 3_600_000,
          plan: async (hostHomeId) => {
            if (hostHomeId !== hostHome) throw hubError('HUB_ERR_HOME_NOT_FOUND');
            return plan(hostHomeId);
          },
        });
      },
    });
    t = await createTestHub({ HUB_NODERED: 'true', HUB_DATA_DIR: dataDir }, { plugins: [{ definition: cluster, dir: CLUSTER_DIR }, mower.source] });
    ({ url } = await t.hub.listen());
    admin = await t.adminToken();
    hostHome = await t.createHome(admin, { name: 'Host' });
    homeB = await t.createHome(admin, { name: 'B' });
    await mower.addMower(hostHome);
    const row = await db().insertInto('cluster_clusters').values({ host_home_id: hostHome, plan: sql`'{}'::jsonb`, extract_id: null, created_by: null }).returning('id').executeTakeFirstOrThrow();
    clusterId = String(row.id);
    expect(clusterId).toBe('1'); // the example flow names cluster 1
    for (const [candidate, home, position, zones] of [
      [hostHome, hostHome, 0, '{1001}'],
      [homeB, homeB, 1, '{1002}'],
      [ADDRESS, null, 2, '{1003}'],
    ] as const) {
      await sql`insert into cluster_members (cluster_id, candidate_id, home_id, position, consent, zones) values (${clusterId}, ${candidate}, ${home}, ${position}, 'accepted', ${zones}::text[])`.execute(db());
    }
    t.hub.bus.on('*', (event) => void events.push(event));
  });
  afterAll(async () => {
    await t?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('cluster-relay: a round started from the flow notifies each mowed yard’s home, and the host when a round fails', async () => {
    expect((await t.request('/api/nodered/flows/import', { token: admin, json: { name: 'cluster-relay' } })).status).toBe(200);
    const flows = (await (await red('/flows')).json()) as { id: string; type: string; name?: string }[];
    const go = flows.find((n) => n.type === 'inject' && n.name === 'mow cluster 1 now')!;
    const press = () => until(async () => (await red(`/inject/${go.id}`, { method: 'POST' })).status, (s) => s === 200);

    await press();
    await until(() => mower.starts.length, (n) => n === 1);
    expect(mower.starts[0]).toEqual(['1001']);
    // Each yard takes a while in the field: its notification is out before the next one ends.
    const notified = (n: number) => until(() => fired('mowthos_notification'), (all) => all.length === n);
    await sessionEnded(120.5);
    await until(() => mower.starts.length, (n) => n === 2);
    expect(mower.starts[1]).toEqual(['1002']);
    await notified(1);
    await sessionEnded(80);
    await until(() => mower.starts.length, (n) => n === 3);
    await notified(2);
    await sessionEnded(40);
    const notes = await notified(3);
    expect(notes.map((n) => [n.home_id, n.data.area_m2])).toEqual([
      [hostHome, 120.5],
      [homeB, 80],
      [hostHome, 40], // a yard without a hub account: its host hears of it
    ]);
    expect(notes[0]!.data).toMatchObject({ severity: 'info', title: 'Lawn mowed', message: expect.stringContaining(`120.5 m² of the yard ${hostHome}; next: yard ${homeB}`) });
    expect(notes[2]!.data.message).toMatch(/the round is done$/);
    expect(fired('cluster_run_ended').at(-1)?.data).toMatchObject({ status: 'finished' });

    // A round that stops early: the host is told why.
    await press();
    await until(() => mower.starts.length, (n) => n === 4);
    await sessionEnded(3, 'interrupted');
    const warned = await until(() => fired('mowthos_notification'), (n) => n.length === 5);
    expect(warned.find((n) => n.data.severity === 'warning')).toMatchObject({ home_id: hostHome, data: { severity: 'warning', title: 'Cluster round failed', message: expect.stringMatching(/stopped before it finished/) } });
    expect(await openRun()).toBeUndefined();
  });

  it('loads the cluster-plan node; plans a host’s cluster and tells a cluster’s next yard', async () => {
    const sets = (await (await red('/nodes')).json()) as { types: string[]; enabled: boolean; err?: string }[];
    expect(sets.flatMap((s) => (s.enabled && !s.err ? s.types : []))).toContain('cluster-plan');

    const current = (await (await red('/flows')).json()) as Record<string, unknown>[];
    const server = current.find((n) => n.type === 'hub-server')!;
    const node = (id: string, extra: Record<string, unknown>) => ({ id, z: 'cp_tab', x: 100, y: 100, wires: [], ...extra });
    const nodes = [
      { id: 'cp_tab', type: 'tab', label: 'cluster-plan' },
      node('cp_in_plan', { type: 'http in', url: '/plan', method: 'post', wires: [['cp_plan']] }),
      node('cp_plan', { type: 'cluster-plan', server: server.id, mode: 'plan', hostHomeId: '', clusterId: '', wires: [['cp_out']] }),
      node('cp_in_next', { type: 'http in', url: '/next', method: 'post', wires: [['cp_next']] }),
      node('cp_next', { type: 'cluster-plan', server: server.id, mode: 'next-yard', hostHomeId: '', clusterId: clusterId, wires: [['cp_out']] }),
      node('cp_catch', { type: 'catch', scope: ['cp_plan', 'cp_next'], uncaught: false, wires: [['cp_why']] }),
      node('cp_why', { type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'error.message', tot: 'msg' }, { t: 'set', p: 'statusCode', pt: 'msg', to: '400', tot: 'num' }], wires: [['cp_out']] }),
      node('cp_out', { type: 'http response', statusCode: '', headers: {} }),
    ];
    expect((await red('/flows', { body: [...current, ...nodes] })).status).toBe(204);
    const post = (route: string, body: unknown) => until(() => flowApi(route, body), (res) => res.status !== 404);

    const planned = await post('/plan', { hostHomeId: hostHome });
    expect(planned.status).toBe(200);
    expect(await planned.json()).toEqual(plan(hostHome));
    for (const [body, reason] of [
      [{ hostHomeId: 'not-a-home' }, 'set the host home'],
      [{}, 'set the host home'],
      [{ host_home_id: homeB }, 'HUB_ERR_HOME_NOT_FOUND'],
    ] as const) {
      const res = await post('/plan', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await res.text()).toContain(reason);
    }

    // Between rounds the next yard is the host's own; a cluster id in the message wins over the node's.
    const next = await post('/next', {});
    expect(next.status).toBe(200);
    expect(await next.json()).toEqual({ cluster_id: clusterId, position: 0, candidate_id: hostHome, home_id: hostHome, consent: 'accepted', zones: ['1001'], run_id: null });
    const unknown = await post('/next', { clusterId: '424242' });
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain('HUB_ERR_CLUSTER_NOT_FOUND');
    expect(await (await post('/next', { cluster_id: 'x; drop table' })).text()).toContain('set the cluster');

    // During a round it follows the mower.
    const started = await t.request(`/api/plugins/cluster/clusters/${clusterId}/runs`, { token: admin, json: {} });
    const run = (await started.json()) as RunView;
    await sessionEnded(10);
    await until(() => mower.starts.length, (n) => n === 6);
    expect(await (await post('/next', {})).json()).toMatchObject({ position: 1, candidate_id: homeB, run_id: run.id });
    expect((await t.request(`/api/plugins/cluster/clusters/runs/${run.id}/cancel`, { token: admin, json: {} })).status).toBe(200);
  });
});
