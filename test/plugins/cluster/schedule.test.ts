/**
 * Cluster mowing (plugins/cluster/schedule.ts, runs.ts) on a real hub with the Mammotion plugin
 * and its simulator over loopback: one simulated mower in the host home walks a cluster's route,
 * yard by yard, and its real mowing sessions drive the walk. Clusters are written with SQL (the
 * planner's accept route is not part of this module); the cluster plugin here is a stand-in
 * that only calls `clusterMowing`.
 */
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HubEvent } from '../../../core/bus/index.js';
import { definePlugin } from '../../../core/plugin.js';
import { clusterMowing, latestSlot, nextSlot, type ClusterMowingHooks, type RunView } from '../../../plugins/cluster/schedule.js';
import type { ClusterTables } from '../../../plugins/cluster/tables.js';
import mammotion from '../../../plugins/mammotion/index.js';
import { MammotionSimulator } from '../../../plugins/mammotion/simulator/index.js';
import { createTestHub, reusableDatabase, type TestHub } from '../../harness/index.js';
import { until } from '../../harness/wait.js';

const CLUSTER_DIR = fileURLToPath(new URL('../../../plugins/cluster', import.meta.url));
const MAMMOTION_DIR = fileURLToPath(new URL('../../../plugins/mammotion', import.meta.url));
const LUBA = 'lawn_mower.luba_vssim0001';
const WALK_MS = 30_000;

type Member = { candidate_id: string; home_id: string | null; position: number; consent: 'invited' | 'accepted' | 'declined'; zones: string[] };

/** The cluster plugin as far as this module goes: clusterMowing with the test's hooks. */
function clusterPlugin(hooks: Partial<ClusterMowingHooks>, positions: string[]) {
  const definition = definePlugin({
    id: 'cluster',
    version: '0.0.0',
    hub: '*',
    async setup(ctx) {
      await clusterMowing(ctx, { positionChanged: async (id) => void positions.push(id), ...hooks });
    },
  });
  return { definition, dir: CLUSTER_DIR };
}

describe('cluster mowing', () => {
  let simulator: MammotionSimulator;
  let env: Record<string, string>;
  let database: Awaited<ReturnType<typeof reusableDatabase>>;
  let t: TestHub;
  let owner: { id: string; token: string };
  let neighbour: { id: string; token: string };
  let stranger: { id: string; token: string };
  let viewerToken: string;
  let hostHome: string;
  let homeB: string;
  let homeC: string;
  let homeD: string;
  let clusterId: string;
  let offsetMs = 0;
  let frozen = false;
  const positions: string[] = [];
  const events: HubEvent[] = [];
  const hooks: Partial<ClusterMowingHooks> = { now: () => new Date(Date.now() + offsetMs) };

  const db = () => t.hub.database.db.withTables<ClusterTables>();
  const api = (path: string, init: { method?: string; token?: string; json?: unknown } = {}) =>
    t.request(`/api/plugins/cluster${path}`, { token: owner.token, ...init });
  const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
  const runs = async (id = clusterId) => (await (await api(`/clusters/${id}/runs`)).json()) as RunView[];
  const fired = (type: string) => events.filter((e) => e.event_type === type);
  const waitForRun = (runId: string, done: (run: RunView) => boolean, timeoutMs = WALK_MS) =>
    until(async () => (await runs()).find((r) => r.id === runId)!, done, timeoutMs);

  async function createCluster(host: string, members: Member[]): Promise<string> {
    const row = await db().insertInto('cluster_clusters').values({ host_home_id: host, plan: sql`'{}'::jsonb`, extract_id: null, created_by: null }).returning('id').executeTakeFirstOrThrow();
    const id = String(row.id);
    for (const m of members) {
      await sql`insert into cluster_members (cluster_id, candidate_id, home_id, position, consent, zones)
        values (${id}, ${m.candidate_id}, ${m.home_id}, ${m.position}, ${m.consent}, ${`{${m.zones.join(',')}}`}::text[])`.execute(db());
    }
    return id;
  }

  async function startHub() {
    const hub = await createTestHub(env, {
      database: database.handle(),
      plugins: [clusterPlugin(hooks, positions), { definition: mammotion, dir: MAMMOTION_DIR }],
    });
    hub.hub.bus.on('*', (event) => void events.push(event));
    return hub;
  }

  beforeAll(async () => {
    // A 2 m² yard at 30× takes about a second to mow.
    simulator = new MammotionSimulator({
      speedup: 30,
      tickMs: 100,
      mowers: [{ iotId: 'sim-iot-0001', deviceName: 'Luba-VSSIM0001', firmware: '1.30.25.8', yard: { width: 2, length: 1 }, zones: { '1001': 'Host lawn', '1002': 'B', '1004': 'C' } }],
    });
    // The restart test stops the mowers' clock while no hub watches them.
    const tick = simulator.tick.bind(simulator);
    simulator.tick = () => (frozen ? undefined : tick());
    const { httpUrl, account } = await simulator.start();
    env = {
      PLUGIN_MAMMOTION_CLIENT_ID: account.clientId,
      PLUGIN_MAMMOTION_CLIENT_SECRET: account.clientSecret,
      PLUGIN_MAMMOTION_ID_BASE_URL: httpUrl,
      PLUGIN_MAMMOTION_DOMESTIC_BASE_URL: httpUrl,
      PLUGIN_MAMMOTION_REPLY_TIMEOUT_MS: '1500',
      PLUGIN_MAMMOTION_CONFIRM_SECONDS: '10',
    };
    database = await reusableDatabase();
    t = await startHub();
    owner = await t.createUser('host@example.com');
    neighbour = await t.createUser('neighbour@example.com');
    stranger = await t.createUser('stranger@example.com');
    const viewer = await t.createUser('viewer@example.com');
    viewerToken = viewer.token;
    hostHome = await t.createHome(owner.token, { name: 'Host' });
    homeB = await t.createHome(neighbour.token, { name: 'B' });
    homeC = await t.createHome(neighbour.token, { name: 'C' });
    homeD = await t.createHome(neighbour.token, { name: 'D' });
    await t.createHome(stranger.token, { name: 'Elsewhere' });
    expect((await t.request(`/api/homes/${hostHome}/members`, { token: owner.token, json: { email: 'viewer@example.com', role: 'viewer' } })).status).toBe(201);
    const linked = await t.request('/api/plugins/mammotion/accounts', { token: owner.token, json: { home_id: hostHome, email: account.email, password: account.password } });
    expect(linked.status).toBe(201);
    await until(() => t.hub.states.get(LUBA)?.state, (s) => s === 'docked', 10_000);

    clusterId = await createCluster(hostHome, [
      { candidate_id: hostHome, home_id: hostHome, position: 0, consent: 'accepted', zones: ['1001'] },
      { candidate_id: homeB, home_id: homeB, position: 1, consent: 'accepted', zones: ['1002'] },
      { candidate_id: 'address:0b6c7c39-5f0c-4a55-9b3e-5d4c1c3f6a01', home_id: null, position: 2, consent: 'declined', zones: ['1003'] },
      { candidate_id: homeC, home_id: homeC, position: 3, consent: 'accepted', zones: ['1004'] },
      { candidate_id: homeD, home_id: homeD, position: 4, consent: 'accepted', zones: [] },
    ]);
  });
  afterAll(async () => {
    await t?.stop();
    await database?.close();
    await simulator?.stop();
  });

  it('validates the weekly plan, and keeps other homes out', async () => {
    const put = (json: unknown, id = clusterId, token = owner.token) => api(`/clusters/${id}/schedule`, { method: 'PUT', json, token });
    const good = { days: [6, 0], time: '09:30', timezone: 'Europe/Berlin' };
    for (const bad of [
      { ...good, days: [7] },
      { ...good, days: [] },
      { ...good, days: [1, 1] },
      { ...good, days: [0, 1, 2, 3, 4, 5, 6, 0] },
      { ...good, days: [1.5] },
      { ...good, time: '9:30' },
      { ...good, time: '24:00' },
      { ...good, time: '09:60' },
      { ...good, timezone: 'Mars/Olympus_Mons' },
      { ...good, extra: true },
      { days: [1] },
      'Saturdays',
    ]) {
      const res = await put(bad);
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(await code(res)).toBe('HUB_ERR_VALIDATION');
    }
    const malformed = await t.request(`/api/plugins/cluster/clusters/${clusterId}/schedule`, { method: 'PUT', token: owner.token, headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(400);

    // Ids: not digits, too long, unknown, someone else's.
    expect(await code(await put(good, 'abc'))).toBe('HUB_ERR_VALIDATION');
    expect(await code(await put(good, '1234567890123456789'))).toBe('HUB_ERR_VALIDATION');
    expect(await code(await put(good, '999999'))).toBe('HUB_ERR_CLUSTER_NOT_FOUND');
    expect(await code(await put(good, clusterId, stranger.token))).toBe('HUB_ERR_CLUSTER_NOT_FOUND');
    expect(await code(await put(good, clusterId, neighbour.token))).toBe('HUB_ERR_CLUSTER_NOT_FOUND'); // a member's home is not the host
    expect(await code(await put(good, clusterId, viewerToken))).toBe('HUB_ERR_FORBIDDEN');
    expect((await api(`/clusters/${clusterId}/schedule`, { token: stranger.token })).status).toBe(404);
    expect((await api(`/clusters/${clusterId}/runs`, { token: stranger.token })).status).toBe(404);
    expect((await api(`/clusters/${clusterId}/usage`, { token: stranger.token })).status).toBe(404);

    const saved = await put(good);
    expect(saved.status).toBe(200);
    const view = (await saved.json()) as { schedule: unknown; next_start: string };
    expect(view).toMatchObject({ cluster_id: clusterId, schedule: { days: [6, 0], time: '09:30', timezone: 'Europe/Berlin' } });
    const start = new Date(view.next_start);
    expect(['Sat', 'Sun']).toContain(new Intl.DateTimeFormat('en', { timeZone: 'Europe/Berlin', weekday: 'short' }).format(start));
    expect(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit' }).format(start)).toBe('09:30');
    expect(await (await api(`/clusters/${clusterId}/schedule`, { token: viewerToken })).json()).toMatchObject({ schedule: good });
    expect(await (await api('/clusters/999999/schedule')).json()).toMatchObject({ error: { code: 'HUB_ERR_CLUSTER_NOT_FOUND' } });

    expect((await api(`/clusters/${clusterId}/schedule`, { method: 'DELETE' })).status).toBe(204);
    expect(await (await api(`/clusters/${clusterId}/schedule`)).json()).toMatchObject({ schedule: null, next_start: null });
    expect(await (await put(null)).json()).toMatchObject({ schedule: null });
  });

  it('computes slots in the plan’s time zone', () => {
    const plan = { days: [6], time: '09:00', timezone: 'America/New_York' };
    // Saturday 2025-06-07 09:00 in New York is 13:00 UTC (daylight saving time).
    expect(latestSlot(plan, new Date('2025-06-07T13:00:00Z')).toISOString()).toBe('2025-06-07T13:00:00.000Z');
    expect(latestSlot(plan, new Date('2025-06-07T12:59:00Z')).toISOString()).toBe('2025-05-31T13:00:00.000Z');
    expect(nextSlot(plan, new Date('2025-06-07T13:00:00Z')).toISOString()).toBe('2025-06-14T13:00:00.000Z');
    expect(nextSlot(plan, new Date('2025-12-01T00:00:00Z')).toISOString()).toBe('2025-12-06T14:00:00.000Z'); // standard time
  });

  it('starts a due weekly slot once, and cancelling keeps what was mowed', async () => {
    const jobId = 'plugin:cluster:runs';
    const hhmm = (d: Date) => d.toISOString().slice(11, 16);
    const before = (await runs()).length;

    // A slot from before the plan was saved is not owed.
    offsetMs = 0;
    await api(`/clusters/${clusterId}/schedule`, { method: 'PUT', json: { days: [0, 1, 2, 3, 4, 5, 6], time: hhmm(new Date(Date.now() - 5 * 60_000)), timezone: 'UTC' } });
    await t.hub.scheduler.runNow(jobId);
    expect(await runs()).toHaveLength(before);

    // Two minutes ahead, then the clock passes it: one run, however often the job ticks.
    const slotTime = new Date(Date.now() + 2 * 60_000);
    await api(`/clusters/${clusterId}/schedule`, { method: 'PUT', json: { days: [0, 1, 2, 3, 4, 5, 6], time: hhmm(slotTime), timezone: 'UTC' } });
    await t.hub.scheduler.runNow(jobId);
    expect(await runs()).toHaveLength(before);
    offsetMs = 3 * 60_000;
    await t.hub.scheduler.runNow(jobId);
    await t.hub.scheduler.runNow(jobId);
    offsetMs = 4 * 60_000;
    await t.hub.scheduler.runNow(jobId);
    const started = await runs();
    expect(started).toHaveLength(before + 1);
    const run = started[0]!;
    expect(run).toMatchObject({ status: 'running', entity_id: LUBA, position: 0 });
    expect(new Date(run.slot!).toISOString().slice(11, 16)).toBe(hhmm(slotTime));
    expect(fired('cluster_run_started').at(-1)?.data).toMatchObject({ cluster_id: clusterId, run_id: run.id });
    await until(() => t.hub.states.get(LUBA)?.state, (s) => s === 'mowing', 10_000);
    expect((await api(`/clusters/${clusterId}/runs`, { method: 'POST' })).status).toBe(409);

    // Cancel: only the host's owner, once; the mower goes home and the area it mowed counts.
    expect(await code(await api(`/clusters/runs/${run.id}/cancel`, { method: 'POST', token: stranger.token }))).toBe('HUB_ERR_CLUSTER_RUN_NOT_FOUND');
    expect(await code(await api(`/clusters/runs/${run.id}/cancel`, { method: 'POST', token: viewerToken }))).toBe('HUB_ERR_FORBIDDEN');
    expect(await code(await api(`/clusters/runs/not-a-uuid/cancel`, { method: 'POST' }))).toBe('HUB_ERR_VALIDATION');
    const cancelled = await api(`/clusters/runs/${run.id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    expect(await cancelled.json()).toMatchObject({ status: 'cancelled', detail: expect.stringContaining('host@example.com') });
    expect(await code(await api(`/clusters/runs/${run.id}/cancel`, { method: 'POST' }))).toBe('HUB_ERR_CLUSTER_RUN_ENDED');
    const closed = await waitForRun(run.id, (r) => r.visits[0]?.ended_at !== null);
    expect(closed.visits).toEqual([expect.objectContaining({ candidate_id: hostHome, outcome: 'interrupted', session_id: expect.any(String) })]);
    const mowed = await until(() => fired('cluster_yard_mowed').find((e) => e.data.run_id === run.id), Boolean);
    expect(mowed?.data).toMatchObject({ candidate_id: hostHome, home_id: hostHome, outcome: 'interrupted' });
    expect(fired('cluster_run_ended').at(-1)?.data).toMatchObject({ run_id: run.id, status: 'cancelled' });

    // Long after the slot (the hub was down), it does not start again.
    offsetMs = 3 * 3_600_000;
    await t.hub.scheduler.runNow(jobId);
    expect(await runs()).toHaveLength(before + 1);
    offsetMs = 0;
    expect((await api(`/clusters/${clusterId}/schedule`, { method: 'DELETE' })).status).toBe(204);
    await until(() => t.hub.states.get(LUBA)?.state, (s) => s === 'docked', 15_000);
  });

  it('walks the route: host, then members in order, skipping declined and zone-less yards, with m² per yard', async () => {
    const sessions: HubEvent[] = [];
    const from = new Date().toISOString();
    const positionsBefore = positions.length;
    t.hub.bus.on('mowing_session_ended', (e) => void sessions.push(e));

    const res = await api(`/clusters/${clusterId}/runs`, { method: 'POST', json: {} });
    expect(res.status).toBe(201);
    const run = (await res.json()) as RunView;
    expect(run).toMatchObject({ status: 'running', position: 0, visits: [{ candidate_id: hostHome, outcome: null }] });

    const done = await waitForRun(run.id, (r) => r.status !== 'running');
    expect(done.status).toBe('finished');
    expect(done.visits.map((v) => [v.candidate_id, v.outcome])).toEqual([
      [hostHome, 'finished'],
      [homeB, 'finished'],
      ['address:0b6c7c39-5f0c-4a55-9b3e-5d4c1c3f6a01', 'skipped'],
      [homeC, 'finished'],
      [homeD, 'skipped'],
    ]);
    expect(done.visits[2]!.detail).toMatch(/consent is declined/);
    expect(done.visits[4]!.detail).toMatch(/no zones/);
    for (const visit of done.visits.filter((v) => v.outcome === 'finished')) expect(visit.area_m2).toBe(2);
    // The mower got each yard's own zones, in route order.
    expect(sessions.map((s) => s.data.zones)).toEqual([['1001'], ['1002'], ['1004']]);
    expect(done.visits.filter((v) => v.session_id).map((v) => v.session_id)).toEqual(sessions.map((s) => s.data.session_id));

    const mowed = await until(() => fired('cluster_yard_mowed').filter((e) => e.data.run_id === run.id), (all) => all.length === 3);
    expect(mowed.map((e) => [e.data.home_id, e.home_id, e.data.area_m2, e.data.outcome])).toEqual([
      [hostHome, hostHome, 2, 'finished'],
      [homeB, homeB, 2, 'finished'],
      [homeC, homeC, 2, 'finished'],
    ]);
    expect(mowed[0]!.data).toMatchObject({ cluster_id: clusterId, run_id: run.id, candidate_id: hostHome, session_id: expect.any(String) });
    expect(positions.slice(positionsBefore).every((id) => id === clusterId)).toBe(true);
    expect(positions.length - positionsBefore).toBeGreaterThanOrEqual(5);
    const cluster = await db().selectFrom('cluster_clusters').select('next_position').where('id', '=', clusterId).executeTakeFirstOrThrow();
    expect(cluster.next_position).toBe(0);

    // Billing's view: m² per home in the period.
    const usage = await api(`/clusters/${clusterId}/usage?from=${encodeURIComponent(from)}`, { token: viewerToken });
    expect(usage.status).toBe(200);
    const body = (await usage.json()) as { total_m2: number; homes: { home_id: string | null; area_m2: number; visits: number }[] };
    expect(body.total_m2).toBe(6);
    expect(Object.fromEntries(body.homes.map((h) => [h.home_id, h.area_m2]))).toEqual({ [hostHome]: 2, [homeB]: 2, [homeC]: 2 });
    expect((await api(`/clusters/${clusterId}/usage?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z`)).status).toBe(400);
    expect((await api(`/clusters/${clusterId}/usage?from=yesterday`)).status).toBe(400);
  });

  it('fails a run when the mower stops early, or cannot start; refuses a host without a mower', async () => {
    const res = await api(`/clusters/${clusterId}/runs`, { method: 'POST' });
    expect(res.status).toBe(201);
    const run = (await res.json()) as RunView;
    await until(() => t.hub.states.get(LUBA)?.state, (s) => s === 'mowing', 10_000);
    expect((await t.request('/api/services/lawn_mower/dock', { token: owner.token, json: { entity_id: LUBA } })).status).toBe(200);
    const failed = await waitForRun(run.id, (r) => r.status !== 'running');
    expect(failed).toMatchObject({ status: 'failed', detail: expect.stringMatching(/stopped before it finished/) });
    expect(failed.visits).toEqual([expect.objectContaining({ candidate_id: hostHome, outcome: 'interrupted' })]);
    expect((await until(() => fired('cluster_run_ended').find((e) => e.data.run_id === run.id), Boolean))?.data).toMatchObject({ status: 'failed' });
    await until(() => t.hub.states.get(LUBA)?.state, (s) => s === 'docked', 15_000);

    // Zones the mower refuses: the start fails, and so does the run, at once.
    await sql`update cluster_members set zones = '{not-a-hash}' where cluster_id = ${clusterId} and position = 0`.execute(db());
    const refused = (await (await api(`/clusters/${clusterId}/runs`, { method: 'POST' })).json()) as RunView;
    expect(refused).toMatchObject({ status: 'failed', detail: expect.stringMatching(/did not start/), visits: [{ outcome: 'failed' }] });
    await sql`update cluster_members set zones = '{1001}' where cluster_id = ${clusterId} and position = 0`.execute(db());

    const strangerHome = ((await (await t.request('/api/homes', { token: stranger.token })).json()) as { id: string }[])[0]!.id;
    const lonely = await createCluster(strangerHome, [{ candidate_id: strangerHome, home_id: strangerHome, position: 0, consent: 'accepted', zones: ['1'] }]);
    expect(await code(await api(`/clusters/${lonely}/runs`, { method: 'POST', token: stranger.token }))).toBe('HUB_ERR_CLUSTER_NO_MOWER');
    expect(await code(await api(`/clusters/${clusterId}/runs`, { method: 'POST', json: { entity_id: 'lawn_mower.not_mine' } }))).toBe('HUB_ERR_VALIDATION');
    expect(await code(await api(`/clusters/${clusterId}/runs`, { method: 'POST', json: { entity_id: 5 } }))).toBe('HUB_ERR_VALIDATION');

    // A session someone fired through the API bills nothing.
    const visits = await db().selectFrom('cluster_yard_visits').select('id').execute();
    const faked = await t.request('/api/events/mowing_session_ended', {
      token: owner.token,
      json: { home_id: hostHome, session_id: crypto.randomUUID(), entity_id: LUBA, area_m2: 1e6, outcome: 'finished' },
    });
    expect(faked.status).toBe(200);
    expect(await db().selectFrom('cluster_yard_visits').select('id').execute()).toHaveLength(visits.length);
  });

  it('carries on an open run after a restart of the hub', async () => {
    const res = await api(`/clusters/${clusterId}/runs`, { method: 'POST' });
    const run = (await res.json()) as RunView;
    // Stop the hub while the mower is on the second yard.
    await waitForRun(run.id, (r) => r.visits.some((v) => v.candidate_id === homeB && v.ended_at === null));
    await until(() => t.hub.states.get(LUBA)?.state, (s) => s === 'mowing', 10_000);
    frozen = true;
    await t.stop();

    t = await startHub();
    owner.token = await t.login('host@example.com', 'user-password-1');
    await until(() => t.hub.states.get(LUBA)?.attributes.cloud_status, (s) => s === 'connected', 10_000);
    frozen = false;
    const done = await waitForRun(run.id, (r) => r.status !== 'running');
    expect(done.status).toBe('finished');
    expect(done.visits.map((v) => [v.candidate_id, v.outcome])).toEqual([
      [hostHome, 'finished'],
      [homeB, 'finished'],
      ['address:0b6c7c39-5f0c-4a55-9b3e-5d4c1c3f6a01', 'skipped'],
      [homeC, 'finished'],
      [homeD, 'skipped'],
    ]);
    const areas = done.visits.filter((v) => v.outcome === 'finished').map((v) => v.area_m2);
    expect(areas).toEqual([2, 2, 2]);
  });
});
