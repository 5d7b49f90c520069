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
import { hasActiveRun, RUN_EVENTS, type NextYard, type RunView } from '../../../plugins/cluster/runs.js';
import { clusterMowing, latestSlot, nextSlot, type ClusterMowingHooks } from '../../../plugins/cluster/schedule.js';
import type { ClusterTables } from '../../../plugins/cluster/tables.js';
import { MammotionSimulator } from '../../../plugins/mammotion/simulator/index.js';
import { createTestHub, reusableDatabase, type TestHub } from '../../harness/index.js';
import { mammotionPlugin, startSimulatorEnv } from '../../harness/mammotion.js';
import { until } from '../../harness/wait.js';
import { standInMower } from './stand-in-mower.js';

const CLUSTER_DIR = fileURLToPath(new URL('../../../plugins/cluster', import.meta.url));
const LUBA = 'lawn_mower.luba_vssim0001';
const WALK_MS = 30_000;

type Member = { candidate_id: string; home_id: string | null; position: number; consent: 'invited' | 'accepted' | 'declined'; zones: string[] };

/** The cluster plugin as far as this module goes: clusterMowing with the test's hooks, and the run events reserved as the plugin does. */
function clusterPlugin(hooks: Partial<ClusterMowingHooks>, positions: string[]) {
  const definition = definePlugin({
    id: 'cluster',
    version: '0.0.0',
    hub: '*',
    reservedEvents: RUN_EVENTS,
    async setup(ctx) {
      await clusterMowing(ctx, { positionChanged: async (id) => void positions.push(id), plan: async () => ({}), ...hooks });
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
      plugins: [clusterPlugin(hooks, positions), mammotionPlugin],
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
    env = {
      ...(await startSimulatorEnv(simulator)),
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
    await t.addMember(owner.token, hostHome, viewer, 'viewer');
    const { account } = simulator.cloud;
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

  it('starts a due weekly slot once; a cancel sends the mower home and bills nothing of its yard', async () => {
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
    const sessionsBefore = fired('mowing_session_ended').length;
    const cancelled = await api(`/clusters/runs/${run.id}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    // Who cancelled is stored apart: the detail reaches every viewer of the host home and cluster_run_ended.
    const body = (await cancelled.json()) as RunView;
    expect(body).toMatchObject({ status: 'cancelled', detail: 'Cancelled by an owner of the host home' });
    expect(JSON.stringify(body)).not.toContain('host@example.com');
    expect(await db().selectFrom('cluster_runs').select('cancelled_by').where('id', '=', run.id).executeTakeFirstOrThrow()).toEqual({ cancelled_by: owner.id });
    expect(fired('cluster_run_ended').at(-1)?.data).toMatchObject({ run_id: run.id, status: 'cancelled', detail: 'Cancelled by an owner of the host home' });
    expect(await code(await api(`/clusters/runs/${run.id}/cancel`, { method: 'POST' }))).toBe('HUB_ERR_CLUSTER_RUN_ENDED');
    // The yard is closed at once and billed nothing: the session that ends after the cancel
    // could as well be the host mowing its own lawn.
    expect(body.visits).toEqual([expect.objectContaining({ candidate_id: hostHome, outcome: 'failed', session_id: null, area_m2: 0, detail: expect.stringMatching(/^Cancelled while the mower was on this yard; its mowing here is not billed/) })]);
    await until(() => fired('mowing_session_ended').length, (n) => n > sessionsBefore, 15_000);
    await until(() => t.logs.some((l) => l.msg === 'mowing session is no yard of a running cluster run; billed to no yard'), Boolean);
    expect(fired('cluster_yard_mowed').filter((e) => e.data.run_id === run.id)).toEqual([]);
    expect((await runs()).find((r) => r.id === run.id)?.visits).toEqual(body.visits);

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

    // A member home that accepted sees its own yards' visits and m², nothing of the others.
    const asNeighbour = (await (await api(`/clusters/${clusterId}/runs`, { token: neighbour.token })).json()) as RunView[];
    const theirs = asNeighbour.find((r) => r.id === run.id)!;
    expect(theirs).toMatchObject({ status: 'finished', entity_id: null, detail: null });
    expect(theirs.visits.map((v) => [v.home_id, v.outcome, v.area_m2])).toEqual([
      [homeB, 'finished', 2],
      [homeC, 'finished', 2],
      [homeD, 'skipped', 0],
    ]);
    expect(asNeighbour.flatMap((r) => r.visits).every((v) => [homeB, homeC, homeD].includes(v.home_id!))).toBe(true);
    const theirUsage = await api(`/clusters/${clusterId}/usage?from=${encodeURIComponent(from)}`, { token: neighbour.token });
    expect(await theirUsage.json()).toMatchObject({ total_m2: 4, homes: [{ home_id: expect.any(String), area_m2: 2 }, { home_id: expect.any(String), area_m2: 2 }] });
    // Not the plan, nor the runs (start, cancel): those are the host's.
    expect((await api(`/clusters/${clusterId}/schedule`, { token: neighbour.token })).status).toBe(404);
    expect(await code(await api(`/clusters/${clusterId}/runs`, { method: 'POST', token: neighbour.token }))).toBe('HUB_ERR_CLUSTER_NOT_FOUND');
    // A member that has not accepted is not let in.
    const strangerHome = ((await (await t.request('/api/homes', { token: stranger.token })).json()) as { id: string }[])[0]!.id;
    await sql`insert into cluster_members (cluster_id, candidate_id, home_id, position, consent) values (${clusterId}, ${strangerHome}, ${strangerHome}, 9, 'invited')`.execute(db());
    try {
      expect((await api(`/clusters/${clusterId}/runs`, { token: stranger.token })).status).toBe(404);
      expect((await api(`/clusters/${clusterId}/usage`, { token: stranger.token })).status).toBe(404);
    } finally {
      await sql`delete from cluster_members where cluster_id = ${clusterId} and candidate_id = ${strangerHome}`.execute(db());
    }
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

    // Nobody fires the events billing acts on but their plugins.
    for (const type of ['mowing_session_ended', 'cluster_yard_mowed', 'cluster_run_started', 'cluster_run_ended']) {
      const faked = await t.request(`/api/events/${type}`, {
        token: owner.token,
        json: { home_id: hostHome, session_id: crypto.randomUUID(), entity_id: LUBA, area_m2: 1e6, outcome: 'finished' },
      });
      expect(faked.status, type).toBe(403);
      expect(await code(faked)).toBe('HUB_ERR_FORBIDDEN');
    }
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

/**
 * The walk's rules on a stand-in for the Mammotion plugin (stand-in-mower.ts): the test ends
 * the sessions itself, with the times, zones and areas each rule is about, and holds the mower's
 * start to meet a cancel halfway.
 */
describe('cluster runs, with a stand-in mower', () => {
  const YARD_TIMEOUT_MS = 3000;
  const ADDRESS = 'address:6f1d4c2e-8a51-4a0f-9d6b-2f7a0c9e3b11';
  const mower = standInMower();
  const events: HubEvent[] = [];
  let t: TestHub;
  let admin: string;
  let host: { id: string; token: string };
  let hostHome: string;
  let homeB: string;
  let clusterId: string;

  const db = () => t.hub.database.db.withTables<ClusterTables>();
  const api = (path: string, init: { method?: string; json?: unknown } = {}) => t.request(`/api/plugins/cluster${path}`, { token: admin, ...init });
  const run = async (id: string) => ((await (await api(`/clusters/${clusterId}/runs`)).json()) as RunView[]).find((r) => r.id === id)!;
  const start = async (json: unknown = {}) => (await (await api(`/clusters/${clusterId}/runs`, { method: 'POST', json })).json()) as RunView;
  const fired = (type: string) => events.filter((e) => e.event_type === type);
  const UNSTORED = 'mowing_session_ended does not match a session the Mammotion plugin stored; ignored';
  const UNBILLED = 'mowing session is no yard of a running cluster run; billed to no yard';
  /** Does `act`, then waits for one more log line `msg`. */
  const loggedAfter = async (msg: string, act: () => Promise<unknown>) => {
    const count = () => t.logs.filter((l) => l.msg === msg).length;
    const before = count();
    await act();
    await until(count, (n) => n === before + 1);
  };
  /** The open yard's start, plus a little: when the mower's session there began. */
  const onTime = async (runId: string) => new Date(new Date((await run(runId)).visits.at(-1)!.started_at).getTime() + 100);

  beforeAll(async () => {
    const cluster = definePlugin({
      id: 'cluster',
      version: '0.0.0',
      hub: '*',
      async setup(ctx) {
        // The test runs the job itself (runNow).
        await clusterMowing(ctx, { positionChanged: async () => {}, plan: async () => ({}), tickMs: 3_600_000, yardTimeoutMs: YARD_TIMEOUT_MS });
      },
    });
    t = await createTestHub({}, { plugins: [{ definition: cluster, dir: CLUSTER_DIR }, mower.source] });
    admin = await t.adminToken();
    host = await t.createUser('host@example.com');
    hostHome = await t.createHome(host.token, { name: 'Host' });
    homeB = await t.createHome((await t.createUser('neighbour@example.com')).token, { name: 'B' });
    await mower.addMower(hostHome);
    const row = await db().insertInto('cluster_clusters').values({ host_home_id: hostHome, plan: sql`'{}'::jsonb`, extract_id: null, created_by: null }).returning('id').executeTakeFirstOrThrow();
    clusterId = String(row.id);
    for (const [candidate, home, position, zones] of [
      [hostHome, hostHome, 0, '{1001}'],
      [homeB, homeB, 1, '{1002}'],
      [ADDRESS, null, 2, '{1003}'],
    ] as const) {
      await sql`insert into cluster_members (cluster_id, candidate_id, home_id, position, consent, zones) values (${clusterId}, ${candidate}, ${home}, ${position}, 'accepted', ${zones}::text[])`.execute(db());
    }
    t.hub.bus.on('*', (event) => void events.push(event));
  });
  afterAll(() => t?.stop());

  it('bills a yard only with a session Mammotion stored, of that yard’s mower, time and zones', async () => {
    const started = await start();
    expect(mower.starts).toEqual([['1001']]);
    const at = await onTime(started.id);

    // Not stored by Mammotion, or stored with another area: the event's word is not enough.
    await loggedAfter(UNSTORED, () => mower.endSession(hostHome, { area: 5, startedAt: at, unstored: true }));
    await loggedAfter(UNSTORED, () => mower.endSession(hostHome, { area: 5, eventArea: 5000, startedAt: at }));

    // Stored, but begun long before the yard's turn, or on other zones: the host's own mowing.
    await loggedAfter(UNBILLED, () => mower.endSession(hostHome, { area: 5, startedAt: new Date(at.getTime() - 10 * 60_000) }));
    await loggedAfter(UNBILLED, () => mower.endSession(hostHome, { area: 5, startedAt: at, zones: ['1002'] }));
    expect((await run(started.id)).visits).toEqual([expect.objectContaining({ candidate_id: hostHome, outcome: null, area_m2: 0 })]);

    // Users cannot fire one at all.
    const forged = await t.request('/api/events/mowing_session_ended', { token: admin, json: { home_id: hostHome, session_id: crypto.randomUUID(), entity_id: mower.entityId, area_m2: 5, outcome: 'finished' } });
    expect(forged.status).toBe(403);

    const session = await mower.endSession(hostHome, { area: 7, startedAt: at });
    await until(() => mower.starts.length, (n) => n === 2);
    expect((await run(started.id)).visits[0]).toMatchObject({ candidate_id: hostHome, outcome: 'finished', area_m2: 7, session_id: session });
    expect(fired('cluster_yard_mowed').map((e) => e.data)).toEqual([expect.objectContaining({ run_id: started.id, candidate_id: hostHome, area_m2: 7, session_id: session })]);
  });

  it('a cancel waits for the step sending the mower on, then calls it back; the yard is not billed', async () => {
    const current = (await (await api(`/clusters/${clusterId}/runs?limit=1`)).json()) as RunView[];
    const runId = current[0]!.id;
    const hold = mower.hold();
    const effects = mower.effects.length;
    await mower.endSession(homeB, { area: 3, startedAt: await onTime(runId) });
    await hold.entered; // the step sends the mower to the next yard (1003), and the mower takes its time
    const cancelling = t.request(`/api/plugins/cluster/clusters/runs/${runId}/cancel`, { token: admin, json: {} });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(mower.effects.slice(effects)).toEqual([]); // not docked under the step's feet
    hold.release();
    const cancelled = await cancelling;
    expect(cancelled.status).toBe(200);
    // The mower ends at home: sent on by the step, then back by the cancel.
    expect(mower.effects.slice(effects)).toEqual(['start:1003', 'dock']);
    const view = (await cancelled.json()) as RunView;
    expect(view.visits.map((v) => [v.candidate_id, v.outcome, v.area_m2])).toEqual([
      [hostHome, 'finished', 7],
      [homeB, 'finished', 3],
      [ADDRESS, 'failed', 0],
    ]);
    expect(view.visits[2]!.detail).toMatch(/^Cancelled while the mower was on this yard; its mowing here is not billed/);

    // Its session, ending after the cancel, bills no one.
    const mowed = fired('cluster_yard_mowed').length;
    await loggedAfter(UNBILLED, () => mower.endSession(hostHome, { area: 4, startedAt: new Date(Date.now() - 500) }));
    expect(fired('cluster_yard_mowed').length).toBe(mowed);
  });

  it('fails a run whose yard takes too long; the late session bills no one, not even the next run', async () => {
    const started = await start();
    await t.hub.scheduler.runNow('plugin:cluster:runs');
    expect((await run(started.id)).status).toBe('running'); // not yet too long
    // Ten minutes on the yard: longer than any slack a session's start is given.
    await sql`update cluster_yard_visits set started_at = now() - interval '10 minutes' where run_id = ${started.id}`.execute(db());
    await t.hub.scheduler.runNow('plugin:cluster:runs');
    const failed = await run(started.id);
    expect(failed).toMatchObject({ status: 'failed', detail: expect.stringMatching(/^No mowing session ended at the yard at position 0 within/) });
    expect(failed.visits).toEqual([expect.objectContaining({ candidate_id: hostHome, outcome: 'failed', area_m2: 0, detail: expect.stringMatching(/its mowing here is not billed/) })]);

    // The next run's host yard is open when the late session of the last one ends.
    const next = await start();
    const mowed = fired('cluster_yard_mowed').length;
    await loggedAfter(UNBILLED, () => mower.endSession(hostHome, { area: 55, startedAt: new Date(new Date(failed.visits[0]!.started_at).getTime() + 100) }));
    expect(fired('cluster_yard_mowed').length).toBe(mowed);
    expect((await run(next.id)).visits).toEqual([expect.objectContaining({ candidate_id: hostHome, outcome: null })]);
    expect((await api(`/clusters/runs/${next.id}/cancel`, { method: 'POST', json: {} })).status).toBe(200);
  });

  it('fails a run at once, saying why, when its mower is not a Mammotion mower or Mammotion is not running', async () => {
    t.hub.states.set('lawn_mower.robomow', 'docked', {}, { homeId: hostHome, owner: 'test' });
    try {
      const other = await start({ entity_id: 'lawn_mower.robomow' });
      expect(other).toMatchObject({ status: 'failed', detail: expect.stringMatching(/lawn_mower\.robomow is not a Mammotion mower; a cluster run sends the mower zone by zone/) });

      await t.hub.plugins.disable('standin');
      try {
        const without = await start({ entity_id: 'lawn_mower.robomow' });
        expect(without).toMatchObject({ status: 'failed', detail: expect.stringMatching(/the Mammotion plugin is not running/) });
      } finally {
        await t.hub.plugins.enable('standin');
        await mower.addMower(hostHome);
      }
    } finally {
      t.hub.states.remove('lawn_mower.robomow');
    }
  });

  it('shows the host a member that has not accepted as its yard token, in runs, usage, next_yard and run events, until it accepts', async () => {
    const get = async <T>(path: string) => (await (await t.request(`/api/plugins/cluster${path}`, { token: host.token })).json()) as T;
    const hostsRun = async (id: string) => (await get<RunView[]>(`/clusters/${clusterId}/runs`)).find((r) => r.id === id)!;
    const hostsUsage = () => get<{ homes: { candidate_id: string | null; home_id: string | null }[] }>(`/clusters/${clusterId}/usage`);
    const nextYard = async () => {
      const res = await t.request('/api/services/cluster/next_yard?return_response', { token: host.token, json: { cluster_id: clusterId, home_id: hostHome } });
      return ((await res.json()) as { service_response: NextYard }).service_response;
    };
    const consent = (state: string) => sql`update cluster_members set consent = ${state} where cluster_id = ${clusterId} and candidate_id = ${homeB}`.execute(db());
    const cancel = (id: string) => api(`/clusters/runs/${id}/cancel`, { method: 'POST', json: {} });

    // Invited, not accepted: B's yard is skipped, and to the host it is yard-1, in every run so far.
    await consent('invited');
    const invited = await start();
    const starts = mower.starts.length;
    await mower.endSession(hostHome, { area: 6, startedAt: await onTime(invited.id) });
    await until(() => mower.starts.length, (n) => n === starts + 1);
    expect((await hostsRun(invited.id)).visits.map((v) => [v.candidate_id, v.home_id, v.outcome])).toEqual([
      [hostHome, hostHome, 'finished'],
      ['yard-1', null, 'skipped'],
      [ADDRESS, null, null],
    ]);
    expect((await run(invited.id)).visits[1]).toMatchObject({ candidate_id: homeB, home_id: homeB }); // an administrator sees it
    expect(JSON.stringify(await get(`/clusters/${clusterId}/runs`))).not.toContain(homeB);
    expect((await hostsUsage()).homes.map((h) => h.candidate_id)).toEqual([hostHome, 'yard-1']); // B's m² of earlier runs
    expect((await cancel(invited.id)).status).toBe(200);

    // Accepted: the mower goes there, and the host sees whose yard it is.
    await consent('accepted');
    const accepted = await start();
    await mower.endSession(hostHome, { area: 6, startedAt: await onTime(accepted.id) });
    expect(await until(nextYard, (yard) => yard.position === 1)).toMatchObject({ candidate_id: homeB, home_id: homeB, run_id: accepted.id });
    expect((await hostsRun(accepted.id)).visits[1]).toMatchObject({ candidate_id: homeB, home_id: homeB, outcome: null });

    // Taken back while the mower is there: yard-1 again, also in what the run says when that yard fails.
    await consent('declined');
    expect(await nextYard()).toMatchObject({ position: 1, candidate_id: 'yard-1', home_id: null });
    await sql`update cluster_yard_visits set started_at = now() - interval '10 minutes' where run_id = ${accepted.id} and ended_at is null`.execute(db());
    await t.hub.scheduler.runNow('plugin:cluster:runs');
    const ended = await until(() => fired('cluster_run_ended').find((e) => e.data.run_id === accepted.id), Boolean);
    expect(ended!.data.detail).toMatch(/^No mowing session ended at the yard at position 1 within/);
    const yardOf = async (runId: string) => (await hostsRun(runId)).visits.find((v) => v.position === 1);
    expect(await yardOf(accepted.id)).toMatchObject({ candidate_id: 'yard-1', home_id: null, outcome: 'failed' });
    const seen = JSON.stringify([ended, await get(`/clusters/${clusterId}/runs`), await hostsUsage()]);
    expect(seen).not.toContain(homeB);

    // Accepted once more: the host sees the real ids again.
    await consent('accepted');
    expect(await yardOf(accepted.id)).toMatchObject({ candidate_id: homeB, home_id: homeB });
    expect((await hostsUsage()).homes.map((h) => h.home_id)).toContain(homeB);
  });

  it('keeps runs and yard visits when the cluster or its host home is deleted, and ends a run whose cluster went', async () => {
    expect(await hasActiveRun(db(), clusterId)).toBe(false);
    const started = await start();
    expect(await hasActiveRun(db(), clusterId)).toBe(true);
    const runsDb = db();
    const before = await runsDb.selectFrom('cluster_yard_visits').select(['id', 'run_id', 'candidate_id', 'home_id', 'area_m2', 'started_at']).orderBy('started_at').execute();
    const billed = before.filter((v) => v.area_m2 > 0);
    expect(billed.length).toBeGreaterThan(0);

    // A cluster gone with its host home while its mower was out (the route refuses to delete it then).
    await sql`delete from cluster_clusters where id = ${clusterId}`.execute(db());
    const effects = mower.effects.length;
    await t.hub.scheduler.runNow('plugin:cluster:runs');
    const ended = await runsDb.selectFrom('cluster_runs').select(['status', 'detail', 'cluster_id']).where('id', '=', started.id).executeTakeFirstOrThrow();
    expect(ended).toEqual({ status: 'cancelled', detail: 'Cancelled: the cluster was deleted', cluster_id: null });
    expect(mower.effects.slice(effects)).toEqual(['dock']);
    expect(await hasActiveRun(db(), clusterId)).toBe(false);

    expect((await t.request(`/api/homes/${hostHome}`, { method: 'DELETE', token: admin })).status).toBe(204);
    const after = await runsDb.selectFrom('cluster_yard_visits').select(['id', 'run_id', 'cluster_id', 'candidate_id', 'home_id', 'area_m2', 'started_at']).orderBy('started_at').execute();
    expect(after.map((v) => [v.id, v.run_id, v.candidate_id, v.area_m2])).toEqual(
      [...before, ...after.slice(before.length)].map((v) => [v.id, v.run_id, v.candidate_id, v.area_m2]),
    );
    expect(after.every((v) => v.cluster_id === null)).toBe(true);
    // Billing still has the yard and its m²: the member's home stays, the host's candidate id names it.
    expect(after.filter((v) => v.area_m2 > 0).map((v) => [v.candidate_id, v.home_id, v.area_m2])).toEqual(
      billed.map((v) => [v.candidate_id, v.candidate_id === hostHome ? null : v.home_id, v.area_m2]),
    );
    expect(await runsDb.selectFrom('cluster_runs').select('id').where('cluster_id', 'is', null).execute()).not.toHaveLength(0);
  });
});
