/**
 * The cluster plugin end to end on a real hub: road extracts (import, Overpass with its cache),
 * the address pool, plans for homes with a mower, accepting a plan, consent, zones, the map and
 * the cluster entities, what each caller may see of other homes, and another instance's changes. Roads are the committed OSM extracts (test/plugins/cluster/data, ODbL);
 * homes stand on the Rochester county points the research names (SPEC §1.8). Overpass is a local
 * HTTP server speaking its wire format; nothing leaves the machine.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Feature, FeatureCollection, LineString, Polygon } from 'geojson';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext, type HubEvent } from '../../../core/bus/index.js';
import { definePlugin, type PluginContext } from '../../../core/plugin.js';
import cluster from '../../../plugins/cluster/index.js';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { until } from '../../harness/wait.js';

const PLUGIN_DIR = fileURLToPath(new URL('../../../plugins/cluster', import.meta.url));
const load = (name: string) => JSON.parse(readFileSync(new URL(`./data/${name}`, import.meta.url), 'utf8')) as FeatureCollection;
const GERMAN_BOUNDS = [10.068, 48.135, 10.071, 48.137];

/** The original's Rochester homes: county points (SPEC §1.8, data README). */
const ROCHESTER = {
  h931: { address: '931 Stone Slope Ln SW, Rochester, MN', latitude: 44.0119495, longitude: -92.5069581 },
  h937: { address: '937 Stone Slope Ln SW, Rochester, MN', latitude: 44.0117071, longitude: -92.507216 },
  h943: { address: '943 Stone Slope Ln SW, Rochester, MN', latitude: 44.0114115, longitude: -92.5070947 },
  h949: { address: '949 Stone Slope Ln SW, Rochester, MN', latitude: 44.0114648, longitude: -92.5066084 },
  h925: { address: '925 Stone Slope Ln SW, Rochester, MN', latitude: 44.012024, longitude: -92.506588 },
  h1001: { address: '1001 Fox Croft Cir SW, Rochester, MN', latitude: 44.0109638, longitude: -92.5063933 },
};

/** An Overpass `[out:json]` answer (ways, then their nodes) made from a GeoJSON extract's roads. */
function overpassAnswer(extract: FeatureCollection): unknown {
  const nodes = new Map<string, { id: number; lon: number; lat: number }>();
  const ways = extract.features
    .filter((f): f is Feature<LineString> => f.geometry.type === 'LineString' && Boolean(f.properties?.highway))
    .map((f) => {
      const refs = f.geometry.coordinates.map(([lon, lat]) => {
        const key = `${lon},${lat}`;
        if (!nodes.has(key)) nodes.set(key, { id: 1000 + nodes.size, lon: lon!, lat: lat! });
        return nodes.get(key)!.id;
      });
      const { id: _id, ...tags } = f.properties as Record<string, string>;
      return { type: 'way', id: Number(String(f.id).replace('way/', '')), nodes: refs, tags };
    });
  return {
    version: 0.6,
    generator: 'Overpass API (test)',
    osm3s: { copyright: 'The data included in this document is from www.openstreetmap.org. The data is made available under ODbL.' },
    elements: [...ways, ...[...nodes.values()].map((n) => ({ type: 'node', ...n }))],
  };
}

type Pair = { candidate_id: string; address: string | null; reason: string; dist_m: number | null; path_m: number | null; dist_band: string };
type PlanView = {
  plan_id: string;
  host_id: string;
  host_status: string;
  extract_id: string;
  warnings: string[];
  members: Pair[];
  rejected: Pair[];
  route: { order: string[]; length_m: number | null } | null;
};
type Member = { candidate_id: string; home_id: string | null; address: string | null; position: number; consent: string; zones: string[] };
type ClusterView = { id: string; host_home_id: string; members: Member[]; route: { order: string[]; length_m: number | null } };

describe('cluster plugin', () => {
  let t: TestHub;
  let overpass: Server;
  const overpassQueries: string[] = [];
  let overpassMode: 'ok' | 'fail' | 'slow' = 'ok';
  let mowerPlugin: PluginContext | undefined;
  let admin: string;
  let owner: { id: string; token: string };
  let neighbour: { id: string; token: string };
  let stranger: { id: string; token: string };
  let homes: Record<keyof typeof ROCHESTER, string>;
  let rochesterId: string;
  let germanId: string;
  let planId: string;
  let clusterId: string;

  const api = (path: string, init: { method?: string; token?: string; json?: unknown } = {}) => t.request(`/api/plugins/cluster${path}`, { token: admin, ...init });
  const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;
  const raw = (path: string, body: string, token = admin) =>
    t.hub.app.request(`/api/plugins/cluster${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
  const plan = async (hostHomeId: string, token = admin) => {
    const res = await api('/plan', { token, json: { host_home_id: hostHomeId } });
    expect(res.status).toBe(200);
    return (await res.json()) as PlanView;
  };
  const candidates = (p: PlanView) => [...p.members, ...p.rejected].map((c) => c.candidate_id);
  const clusterAs = async (token: string) => {
    const res = await api(`/clusters/${clusterId}`, { token });
    expect(res.status).toBe(200);
    return (await res.json()) as ClusterView;
  };
  const modelsBuilt = () => t.logs.filter((l) => l.msg === 'road model built').length;
  const giveMower = (homeId: string, name: string) => mowerPlugin!.entities.register({ entity_id: `lawn_mower.${name}`, home_id: homeId, initial: { state: 'docked' } });

  beforeAll(async () => {
    overpass = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const query = new URLSearchParams(body).get('data') ?? '';
        overpassQueries.push(query);
        if (req.method !== 'POST' || !req.headers['content-type']?.startsWith('application/x-www-form-urlencoded') || !query.includes('way["highway"]')) {
          res.writeHead(400).end('bad query');
        } else if (overpassMode === 'fail') {
          res.writeHead(504, { 'content-type': 'text/plain' }).end('Dispatcher_Client::request_read_and_idx::timeout');
        } else {
          // Slow: both of two identical requests are on their way before either is answered.
          setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(overpassAnswer(load('german-street.geojson')))), overpassMode === 'slow' ? 200 : 0);
        }
      });
    });
    await new Promise<void>((resolve) => overpass.listen(0, '127.0.0.1', resolve));
    const fakeMowers = definePlugin({ id: 'fake_mowers', version: '1.0.0', hub: '*', setup: (ctx) => void (mowerPlugin = ctx) });
    t = await createTestHub(
      {
        PLUGIN_CLUSTER_OVERPASS_URL: `http://127.0.0.1:${(overpass.address() as AddressInfo).port}/api/interpreter`,
        PLUGIN_CLUSTER_MAX_IMPORT_MB: '2',
        PLUGIN_CLUSTER_REPLAN_AFTER_MOVE_HOURS: '2',
        // The German test extract is 300 m across: no room for the default 150 m margin (SPEC §2.7-7).
        PLUGIN_CLUSTER_COVERAGE_MARGIN_M: '0',
      },
      { plugins: [{ definition: cluster, dir: PLUGIN_DIR }, { definition: fakeMowers }] },
    );
    admin = await t.adminToken();
    owner = await t.createUser('owner@example.com');
    neighbour = await t.createUser('neighbour@example.com');
    stranger = await t.createUser('stranger@example.com');
    const home = (token: string, name: string, spot: (typeof ROCHESTER)[keyof typeof ROCHESTER]) => t.createHome(token, { name, ...spot });
    homes = {
      h931: await home(owner.token, 'The Hosts', ROCHESTER.h931),
      h937: await home(neighbour.token, 'Secret Garden 937', ROCHESTER.h937),
      h943: await home(admin, 'Nine Four Three', ROCHESTER.h943),
      h949: await home(admin, 'Round the Corner', ROCHESTER.h949),
      h925: await home(admin, 'North Side', ROCHESTER.h925),
      h1001: await home(stranger.token, 'Stranger Place', ROCHESTER.h1001),
    };
    await giveMower(homes.h931, 'host_mower');
  });
  afterAll(async () => {
    await t?.stop();
    await new Promise((resolve) => overpass?.close(resolve));
  });

  it('runs', () => {
    expect(t.hub.plugins.get('cluster')).toMatchObject({ status: 'running', error: null });
  });

  describe('road extracts', () => {
    it('imports an extract, builds its model and reports it', async () => {
      const res = await api('/roads', { json: { name: 'Rochester SW', roads: load('rochester-roads.geojson') } });
      expect(res.status).toBe(201);
      const body = (await res.json()) as Record<string, unknown>;
      expect(body).toMatchObject({ name: 'Rochester SW', source: 'geojson', ways: 291, barrier_ways: 291, cached: false });
      expect(body.segments).toEqual(expect.any(Number));
      expect(body.build_ms).toEqual(expect.any(Number));
      expect(body.fetched_at).toEqual(expect.any(String));
      expect(body.faces).toBeGreaterThan(10);
      expect(body.bbox).toEqual([expect.closeTo(-92.5319, 3), expect.closeTo(44.0028, 3), expect.closeTo(-92.4866, 3), expect.closeTo(44.0325, 3)]);
      rochesterId = body.id as string;

      const german = await api('/roads', { json: { name: 'Kirchberg', source: 'osm-xml', bbox: GERMAN_BOUNDS, roads: load('german-street.geojson') } });
      expect(german.status).toBe(201);
      const built = (await german.json()) as Record<string, unknown>;
      // Every line with a highway tag counts as a way; only the four residential streets are roads.
      expect(built).toMatchObject({ source: 'osm-xml', bbox: GERMAN_BOUNDS, barrier_ways: 4 });
      expect(built.ways).toBe(15);
      germanId = built.id as string;
    });

    it('lists extracts without their features', async () => {
      const list = (await (await api('/roads', { token: stranger.token })).json()) as Record<string, unknown>[];
      expect(list.map((e) => e.name)).toEqual(['Kirchberg', 'Rochester SW']);
      expect(list[0]).not.toHaveProperty('features');
    });

    it('refuses bad input with coded errors, never a 500', async () => {
      expect(await code(await raw('/roads', '{"name": "x", "roads": {'))).toBe('HUB_ERR_MALFORMED_JSON');
      const wrongType = await api('/roads', { json: { name: 'x', roads: 'a road' } });
      expect(wrongType.status).toBe(400);
      expect(await code(wrongType)).toBe('HUB_ERR_VALIDATION');
      expect((await api('/roads', { json: { name: 'x', roads: { type: 'FeatureCollection', features: [{ type: 'Feature', geometry: null }] }, bbox: [1, 2, 0, 3] } })).status).toBe(400);
      const points = { type: 'FeatureCollection', features: [{ type: 'Feature', properties: { highway: 'turning_circle' }, geometry: { type: 'Point', coordinates: [10.07, 48.136] } }] };
      const noLines = await api('/roads', { json: { name: 'points', roads: points } });
      expect(noLines.status).toBe(422);
      expect(await code(noLines)).toBe('HUB_ERR_ROADS_UNUSABLE');
      const badLine = { type: 'FeatureCollection', features: [{ type: 'Feature', properties: { highway: 'residential' }, geometry: { type: 'LineString', coordinates: [[500, 1], [2, 'x']] } }] };
      const bad = await api('/roads', { json: { name: 'bad', roads: badLine } });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { details: { path: unknown[] }[] } }).error.details[0]!.path).toEqual(['roads', 'features', 0, 'geometry', 'coordinates']);
      expect((await api('/roads', { token: owner.token, json: { name: 'x', roads: load('german-street.geojson') } })).status).toBe(403);
      expect((await api('/roads', { method: 'DELETE', token: owner.token }).then((r) => r.status))).toBe(404); // no such route without an id
    });

    it('takes imports above the hub-wide body limit, up to its own (here 2 MiB)', async () => {
      const body = JSON.stringify({ name: 'padded', roads: load('german-street.geojson'), bbox: GERMAN_BOUNDS });
      const large = await raw('/roads', body + ' '.repeat(1536 * 1024)); // 1.5 MiB: over HUB_BODY_LIMIT (1 MiB)
      expect(large.status).toBe(201);
      const padded = ((await large.json()) as { id: string }).id;
      const tooLarge = await raw('/roads', body + ' '.repeat(2560 * 1024));
      expect(tooLarge.status).toBe(413);
      expect(await code(tooLarge)).toBe('HUB_ERR_PAYLOAD_TOO_LARGE');
      // Other routes keep the hub's limit.
      expect((await raw('/plan', JSON.stringify({ host_home_id: homes.h931 }) + ' '.repeat(1536 * 1024))).status).toBe(413);

      expect((await api(`/roads/${padded}`, { method: 'DELETE', token: owner.token })).status).toBe(403);
      expect((await api(`/roads/${padded}`, { method: 'DELETE' })).status).toBe(204);
      expect(await code(await api(`/roads/${padded}`, { method: 'DELETE' }))).toBe('HUB_ERR_ROAD_EXTRACT_NOT_FOUND');
    });

    it('refuses an import from anyone but an administrator before parsing it, and a large one before reading it', async () => {
      // Malformed JSON: a parsed body would answer 400 HUB_ERR_MALFORMED_JSON.
      const malformed = await raw('/roads', `{"name": ${' '.repeat(64 * 1024)}`, owner.token);
      expect(malformed.status).toBe(403);
      expect(await code(malformed)).toBe('HUB_ERR_FORBIDDEN');
      // Well-formed but invalid: a validated body would answer 400 HUB_ERR_VALIDATION.
      const invalid = await raw('/roads', JSON.stringify({ name: 'x', roads: 'a road' }), owner.token);
      expect(await code(invalid)).toBe('HUB_ERR_FORBIDDEN');
      // The raised import limit is an administrator's: for anyone else the hub's limit stands.
      const large = `{"name": ${' '.repeat(1536 * 1024)}`;
      expect(await code(await raw('/roads', large, owner.token))).toBe('HUB_ERR_PAYLOAD_TOO_LARGE');
      expect(await code(await raw('/roads', large, admin))).toBe('HUB_ERR_MALFORMED_JSON');
    });
  });

  describe('Overpass', () => {
    const bbox = [10.0675, 48.1345, 10.0715, 48.1375];

    it('fetches a box once, serves the stored extract after that, and fetches again on refresh', async () => {
      const first = await api('/roads/overpass', { json: { bbox } });
      expect(first.status).toBe(201);
      const fetched = (await first.json()) as { id: string; source: string; query: string; barrier_ways: number; cached: boolean };
      expect(fetched).toMatchObject({ source: 'overpass', barrier_ways: 4, cached: false });
      expect(fetched.query).toBe(overpassQueries[0]);
      expect(overpassQueries[0]).toContain('(48.1345,10.0675,48.1375,10.0715)');

      const again = await api('/roads/overpass', { json: { bbox } });
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ id: fetched.id, cached: true });
      expect(overpassQueries).toHaveLength(1);

      const refreshed = await api('/roads/overpass', { json: { bbox, refresh: true } });
      expect(refreshed.status).toBe(200);
      expect(await refreshed.json()).toMatchObject({ id: fetched.id, cached: false });
      expect(overpassQueries).toHaveLength(2);
      await api(`/roads/${fetched.id}`, { method: 'DELETE' });
    });

    it('stores two identical requests made at once once', async () => {
      const box = [10.0674, 48.1344, 10.0716, 48.1376];
      const asked = overpassQueries.length;
      overpassMode = 'slow';
      let answers: Response[];
      try {
        answers = await Promise.all([api('/roads/overpass', { json: { bbox: box } }), api('/roads/overpass', { json: { bbox: box } })]);
      } finally {
        overpassMode = 'ok';
      }
      expect(overpassQueries.length).toBe(asked + 2); // both went out: neither found the other's row in time
      const bodies = (await Promise.all(answers.map((r) => r.json()))) as { id: string; query: string; cached: boolean }[];
      expect(answers.map((r) => r.status).sort()).toEqual([200, 201]);
      expect(bodies[0]!.id).toBe(bodies[1]!.id);
      const rows = await sql<{ n: number }>`select count(*)::int as n from cluster_road_extracts where query = ${bodies[0]!.query}`.execute(t.hub.database.db);
      expect(rows.rows[0]!.n).toBe(1);
      expect((await (await api('/roads')).json()) as unknown[]).toHaveLength(3);
      await api(`/roads/${bodies[0]!.id}`, { method: 'DELETE' });
    });

    it('reports Overpass failures as upstream errors, and is for administrators only', async () => {
      overpassMode = 'fail';
      try {
        const failed = await api('/roads/overpass', { json: { bbox: [10.0676, 48.1345, 10.0715, 48.1375] } });
        expect(failed.status).toBe(502);
        expect(await code(failed)).toBe('HUB_ERR_UPSTREAM');
      } finally {
        overpassMode = 'ok';
      }
      expect((await api('/roads/overpass', { token: owner.token, json: { bbox } })).status).toBe(403);
      expect((await api('/roads/overpass', { json: { bbox: [10, 48, 11, 49] } })).status).toBe(400); // too big a box
    });
  });

  describe('plans', () => {
    it("plans a home's cluster: other people's homes as yard tokens, pool addresses by street line; admins see all", async () => {
      // The county's point for 937 is in the address pool too, with its building: the hub home is still the one invited.
      const [lon, lat] = [ROCHESTER.h937.longitude, ROCHESTER.h937.latitude];
      const d = 0.00005;
      const footprint = { type: 'Polygon', coordinates: [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]] };
      expect((await api('/addresses', { json: { addresses: [{ address: '937 STONE SLOPE LN SW', city: 'ROCHESTER', state: 'MN', footprint }] } })).status).toBe(201);

      const full = await plan(homes.h931);
      expect(full).toMatchObject({ host_id: homes.h931, host_status: 'ok', extract_id: rochesterId, warnings: [] });
      const members = Object.fromEntries(full.members.map((m) => [m.candidate_id, m]));
      expect(members[homes.h925]).toMatchObject({ address: '925 Stone Slope Ln SW', reason: 'direct' });
      expect(members[homes.h949]).toMatchObject({ address: '949 Stone Slope Ln SW', reason: 'detour' }); // round the cul-de-sac tip
      expect(members[homes.h937]).toMatchObject({ address: '937 Stone Slope Ln SW', reason: 'direct' });
      expect(full.rejected.find((r) => r.candidate_id.startsWith('address:'))).toMatchObject({ reason: 'duplicate' });
      expect(full.members.length).toBeLessThanOrEqual(4);
      expect([...full.route!.order].sort()).toEqual(full.members.map((m) => m.candidate_id).sort());
      expect(full.members.map((m) => m.candidate_id)).not.toContain(homes.h1001); // 110 m away

      // The host's owner: the neighbours' homes are yard-<n> in route order, with no address.
      const own = await plan(homes.h931, owner.token);
      expect(own).toMatchObject({ host_id: homes.h931, host_status: 'ok', extract_id: rochesterId });
      expect(own.route!.order).toEqual(full.route!.order.map((_, i) => `yard-${i + 1}`));
      expect(own.members.map((m) => m.candidate_id)).toEqual(own.route!.order); // listed in route order, not by distance
      expect(own.members.every((m) => /^yard-\d+$/.test(m.candidate_id) && m.address === null)).toBe(true);
      // Their distance is a band; the route's length, which their legs are part of, is not given.
      const band = (m: number) => (m < 50 ? '<50 m' : `${Math.floor(m / 50) * 50}–${Math.floor(m / 50) * 50 + 50} m`);
      const admins = new Map(full.members.map((m) => [m.candidate_id, m]));
      expect(own.members.map((m) => [m.dist_m, m.path_m, m.dist_band])).toEqual(full.route!.order.map((id) => [null, null, band(admins.get(id)!.dist_m!)]));
      expect(own.route!.length_m).toBeNull();
      expect(full.route!.length_m).toBeGreaterThan(0);
      // A pool address that is the same house as a hidden home is that home's address: hidden with it.
      expect(own.rejected.find((r) => r.reason === 'duplicate')).toMatchObject({ candidate_id: expect.stringMatching(/^yard-\d+$/), address: null, dist_m: null });
      const text = JSON.stringify(own);
      for (const secret of [homes.h925, homes.h937, homes.h943, homes.h949, homes.h1001, '925 Stone Slope', '937 STONE SLOPE', '949 Stone Slope', 'Secret Garden', 'neighbour@example.com', 'Rochester, MN']) {
        expect(text).not.toContain(secret);
      }
      planId = own.plan_id;
    });

    it('takes hostHomeId for host_home_id', async () => {
      const res = await api('/plan', { json: { hostHomeId: homes.h931 } });
      expect(((await res.json()) as PlanView).host_id).toBe(homes.h931);
      expect(await code(await api('/plan', { json: {} }))).toBe('HUB_ERR_VALIDATION');
    });

    it("answers 404 for another user's home, 409 without a mower, 422 without coordinates or road data", async () => {
      const other = await api('/plan', { token: owner.token, json: { host_home_id: homes.h937 } });
      expect(other.status).toBe(404);
      expect(await code(other)).toBe('HUB_ERR_HOME_NOT_FOUND');
      expect(await code(await api('/plan', { json: { host_home_id: crypto.randomUUID() } }))).toBe('HUB_ERR_HOME_NOT_FOUND');
      expect(await code(await api('/plan', { token: owner.token, json: { host_home_id: 'not-a-uuid' } }))).toBe('HUB_ERR_VALIDATION');

      // Without a mower a member cannot plan: a home placed anywhere must not sweep its neighbours.
      const noMower = await api('/plan', { token: neighbour.token, json: { host_home_id: homes.h937 } });
      expect(noMower.status).toBe(409);
      expect(await code(noMower)).toBe('HUB_ERR_CLUSTER_NO_MOWER');
      // An administrator may (prospecting), and is warned.
      expect((await plan(homes.h937)).warnings).toContain('host_has_no_mower');

      const cabin = await t.createHome(owner.token, { name: 'Cabin' });
      expect(await code(await api('/plan', { token: owner.token, json: { host_home_id: cabin } }))).toBe('HUB_ERR_CLUSTER_NO_MOWER');
      const noPoint = await api('/plan', { json: { host_home_id: cabin } });
      expect(noPoint.status).toBe(422);
      expect(await code(noPoint)).toBe('HUB_ERR_HOME_NO_LOCATION');

      // The original's placeholder row, 30 km east of the road data: the planner fails closed.
      const far = await t.createHome(owner.token, { name: 'Far', latitude: 44.0123, longitude: -92.1234 });
      const noRoads = await api('/plan', { json: { host_home_id: far } });
      expect(noRoads.status).toBe(422);
      expect(await code(noRoads)).toBe('HUB_ERR_CLUSTER_NO_ROAD_DATA');
    });

    it('follows homes as they move, without rebuilding the roads', async () => {
      const moved = await t.request(`/api/homes/${homes.h925}`, { method: 'PATCH', token: admin, json: { latitude: 44.02, longitude: -92.52 } });
      expect(moved.status).toBe(200);
      expect(candidates(await plan(homes.h931))).not.toContain(homes.h925);
      await t.request(`/api/homes/${homes.h925}`, { method: 'PATCH', token: admin, json: ROCHESTER.h925 });
      expect((await plan(homes.h931)).members.map((m) => m.candidate_id)).toContain(homes.h925);
      expect(t.logs.filter((l) => l.msg === 'road model built' && l.extract === rochesterId)).toHaveLength(0); // built at import, kept since
    });

    it('does not plan a home again when only its name changed', async () => {
      // The row moves behind the planner's back; a rename must not make the planner read it.
      await sql`update homes set latitude = 44.02, longitude = -92.52 where id = ${homes.h925}`.execute(t.hub.database.db);
      try {
        expect((await t.request(`/api/homes/${homes.h925}`, { method: 'PATCH', token: admin, json: { name: 'North Side, renamed' } })).status).toBe(200);
        expect((await plan(homes.h931)).members.map((m) => m.candidate_id)).toContain(homes.h925);
      } finally {
        await sql`update homes set latitude = ${ROCHESTER.h925.latitude}, longitude = ${ROCHESTER.h925.longitude} where id = ${homes.h925}`.execute(t.hub.database.db);
      }
    });

    it('plans every host at once (admin), and says why a host has no plan', async () => {
      expect((await api('/plan-all', { method: 'POST', token: owner.token })).status).toBe(403);
      // A host without a point, and one the planner has not seen (its row changed without an event).
      const nowhere = await t.createHome(admin, { name: 'Nowhere' });
      const unseen = await t.createHome(admin, { name: 'Unseen' });
      await sql`update homes set latitude = 44.02, longitude = -92.52 where id = ${unseen}`.execute(t.hub.database.db);
      const mowers = [await giveMower(nowhere, 'nowhere'), await giveMower(unseen, 'unseen')];
      try {
        const res = await api('/plan-all', { method: 'POST' });
        expect(res.status).toBe(200);
        const all = (await res.json()) as {
          clusters: { host_id: string; members: unknown[] }[];
          unplanned: { host_id: string; reason: string }[];
          stats: { hosts: number; assigned: number; ms: number };
        };
        expect(all.clusters.map((c) => c.host_id).sort()).toEqual([homes.h931, unseen].sort());
        expect(all.unplanned).toEqual([{ host_id: nowhere, reason: 'no_location' }]);
        expect(all.stats).toMatchObject({ hosts: 3, assigned: all.clusters.reduce((n, c) => n + c.members.length, 0) });
      } finally {
        for (const mower of mowers) mower.remove();
        for (const id of [nowhere, unseen]) await t.request(`/api/homes/${id}`, { method: 'DELETE', token: admin });
      }
    });
    describe('a host that moves', () => {
      // A second home of the owner's, moved step by step towards 937 to locate it from the plans.
      const towards937 = (f: number) => ({
        latitude: ROCHESTER.h931.latitude + f * (ROCHESTER.h937.latitude - ROCHESTER.h931.latitude),
        longitude: ROCHESTER.h931.longitude + f * (ROCHESTER.h937.longitude - ROCHESTER.h931.longitude),
      });
      const band = (m: number) => (m < 50 ? '<50 m' : `${Math.floor(m / 50) * 50}–${Math.floor(m / 50) * 50 + 50} m`);
      let prober: string;
      let mower: { remove(): void };
      const moveTo = async (f: number) => expect((await t.request(`/api/homes/${prober}`, { method: 'PATCH', token: owner.token, json: towards937(f) })).status).toBe(200);
      const planAsOwner = () => api('/plan', { token: owner.token, json: { host_home_id: prober } });
      /** The owner's plan, checked against an administrator's at the same point (the exact figures). */
      const plannedHere = async () => {
        const res = await planAsOwner();
        expect(res.status).toBe(200);
        const own = (await res.json()) as PlanView;
        const full = await plan(prober);
        const hiddenFromOwner = new Set([homes.h937, homes.h943, homes.h949, homes.h925, homes.h1001]);
        const hidden = [...own.members, ...own.rejected].filter((c) => c.candidate_id.startsWith('yard-'));
        // Other people's homes, and the pool's point for 937 (the same house as that home).
        const exact = [...full.members, ...full.rejected].filter((c) => hiddenFromOwner.has(c.candidate_id) || c.reason === 'duplicate');
        expect(hidden.length).toBe(exact.length);
        expect(exact.map((c) => c.candidate_id)).toContain(homes.h937);
        // No distance, path or route length that a few plans from known points could trilaterate.
        expect(hidden.every((c) => c.address === null && c.dist_m === null && c.path_m === null)).toBe(true);
        expect(hidden.map((c) => c.dist_band).sort()).toEqual(exact.map((c) => band(c.dist_m!)).sort());
        if (own.route?.order.some((id) => id.startsWith('yard-'))) expect(own.route.length_m).toBeNull();
        expect(JSON.stringify(hidden)).not.toMatch(/\d\.\d/);
      };

      beforeAll(async () => {
        prober = await t.createHome(owner.token, { name: 'Prober', ...towards937(0.15) });
        mower = await giveMower(prober, 'prober');
      });
      afterAll(async () => {
        mower.remove();
        await t.request(`/api/homes/${prober}`, { method: 'DELETE', token: owner.token });
      });

      it('shows a hidden home no finer than a band, before and after the host moves', async () => {
        await plannedHere();
        await moveTo(0.3);
        await plannedHere(); // the first plan after a move
      });

      it('plans a home at yet another point only once the window after its last move has passed', async () => {
        // Moved again within the window (PLUGIN_CLUSTER_REPLAN_AFTER_MOVE_HOURS = 2): refused, however it asks.
        await moveTo(0.45);
        const refused = await planAsOwner();
        expect(refused.status).toBe(429);
        expect(await code(refused)).toBe('HUB_ERR_RATE_LIMITED');
        expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(7000);
        expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(7200);
        expect((await api('/clusters/accept', { token: owner.token, json: { host_home_id: prober } })).status).toBe(429);
        expect((await t.request('/api/services/cluster/plan?return_response', { token: owner.token, json: { home_id: prober } })).status).toBe(429);
        expect((await api('/plan', { json: { host_home_id: prober } })).status).toBe(200); // administrators see every home anyway

        // Back where it was last planned: nothing new to learn, so no wait.
        await moveTo(0.3);
        expect((await planAsOwner()).status).toBe(200);
        // Once the window has passed, the next move may be planned.
        await sql`update cluster_plan_points set moved_plan_at = now() - interval '3 hours' where home_id = ${prober}`.execute(t.hub.database.db);
        await moveTo(0.45);
        await plannedHere();
      });
    });
  });

  describe('clusters', () => {
    it('a plan is accepted by its host owner only; the cluster keeps the route order and invites the members', async () => {
      expect(await code(await api(`/clusters/${planId}/accept`, { method: 'POST', token: stranger.token }))).toBe('HUB_ERR_CLUSTER_PLAN_NOT_FOUND');
      expect(await code(await api(`/clusters/${crypto.randomUUID()}/accept`, { method: 'POST', token: owner.token }))).toBe('HUB_ERR_CLUSTER_PLAN_NOT_FOUND');
      const notInPlan = await api(`/clusters/${planId}/accept`, { token: owner.token, json: { members: ['yard-99'] } });
      expect(await code(notInPlan)).toBe('HUB_ERR_VALIDATION');
      // A hidden home named by its id is not taken: accept must not tell who lives near.
      const byId = await api(`/clusters/${planId}/accept`, { token: owner.token, json: { members: [homes.h937] } });
      expect(await code(byId)).toBe('HUB_ERR_VALIDATION');

      const res = await api(`/clusters/${planId}/accept`, { method: 'POST', token: owner.token });
      expect(res.status).toBe(201);
      const created = (await res.json()) as ClusterView & { skipped: unknown[] };
      clusterId = created.id;
      expect(created.host_home_id).toBe(homes.h931);
      expect(created.skipped).toEqual([]);
      expect(created.members[0]).toMatchObject({ candidate_id: homes.h931, home_id: homes.h931, position: 0, consent: 'accepted', address: '931 Stone Slope Ln SW' });
      // The invited homes have not agreed to be seen: the host sees yard-<position>.
      const invited = created.members.slice(1);
      expect(invited.every((m) => m.consent === 'invited' && m.candidate_id === `yard-${m.position}` && m.home_id === null && m.address === null)).toBe(true);
      expect(invited.map((m) => m.candidate_id)).toEqual(created.route.order);
      // Admins see who they are, in the plan's route order.
      const full = (await (await api(`/clusters/${clusterId}`)).json()) as ClusterView;
      expect(full.members.slice(1).map((m) => m.candidate_id)).toEqual(full.route.order);
      expect(full.members.map((m) => m.candidate_id)).toContain(homes.h937);

      const twice = await api('/clusters/accept', { token: owner.token, json: { host_home_id: homes.h931 } });
      expect(twice.status).toBe(409);
      expect(await code(twice)).toBe('HUB_ERR_CLUSTER_EXISTS');
    });

    it('shows as entities of the host home, without the homes that have not agreed', async () => {
      const members = t.hub.states.get(`sensor.cluster_${clusterId}_members`);
      expect(members?.state).toBe('1'); // only the host has agreed so far
      const listed = members?.attributes.members as { candidate_id: string; address: string | null; position: number }[];
      expect(listed[0]).toMatchObject({ candidate_id: homes.h931, address: '931 Stone Slope Ln SW' });
      expect(listed.slice(1).every((m) => m.candidate_id === `yard-${m.position}` && m.address === null)).toBe(true);
      expect(JSON.stringify(members)).not.toContain(homes.h937);
      expect(t.hub.states.get(`sensor.cluster_${clusterId}_next_yard`)).toMatchObject({
        state: '931 Stone Slope Ln SW',
        attributes: { position: 0, candidate_id: homes.h931, home_id: homes.h931 },
      });
      const visible = await t.request(`/api/states/sensor.cluster_${clusterId}_members`, { token: stranger.token });
      expect(visible.status).toBe(404);
    });

    it('an invited home sees the host and its own yard only', async () => {
      const seen = await clusterAs(neighbour.token);
      expect(seen.members.map((m) => m.candidate_id)).toEqual([homes.h931, homes.h937]);
      expect(seen.route.order).toEqual([homes.h937]);
      const map = (await (await api(`/clusters/${clusterId}/geojson`, { token: neighbour.token })).json()) as FeatureCollection;
      const yards = map.features.filter((f) => f.properties?.kind === 'host' || f.properties?.kind === 'member').map((f) => f.properties!.candidate_id);
      expect(yards.sort()).toEqual([homes.h931, homes.h937].sort());
    });

    it("a member home's owner answers the invitation; nobody else can", async () => {
      const path = `/clusters/${clusterId}/members/${homes.h937}/consent`;
      expect(await code(await api(path, { token: stranger.token, json: { state: 'accepted' } }))).toBe('HUB_ERR_CLUSTER_NOT_FOUND');
      // The host names the yard as it sees it: by its token, and cannot answer for it.
      const token937 = `yard-${(await clusterAs(admin)).members.find((m) => m.candidate_id === homes.h937)!.position}`;
      expect(await code(await api(`/clusters/${clusterId}/members/${token937}/consent`, { token: owner.token, json: { state: 'accepted' } }))).toBe('HUB_ERR_FORBIDDEN');
      expect(await code(await api(path, { token: owner.token, json: { state: 'accepted' } }))).toBe('HUB_ERR_CLUSTER_MEMBER_NOT_FOUND');
      expect(await code(await api(`/clusters/${clusterId}/members/${homes.h931}/consent`, { token: owner.token, json: { state: 'declined' } }))).toBe('HUB_ERR_CLUSTER_HOST_YARD');
      expect(await code(await api(`/clusters/${clusterId}/members/${homes.h1001}/consent`, { token: neighbour.token, json: { state: 'accepted' } }))).toBe('HUB_ERR_CLUSTER_MEMBER_NOT_FOUND');
      expect(await code(await api(path, { token: neighbour.token, json: { state: 'maybe' } }))).toBe('HUB_ERR_VALIDATION');

      const res = await api(path, { token: neighbour.token, json: { state: 'accepted' } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ candidate_id: homes.h937, home_id: homes.h937, consent: 'accepted', address: '937 Stone Slope Ln SW' });
      await until(() => t.hub.states.get(`sensor.cluster_${clusterId}_members`)?.state, (s) => s === '2');
      expect(JSON.stringify(t.hub.states.get(`sensor.cluster_${clusterId}_members`))).toContain(homes.h937);
      // Having agreed, 937 is seen by the host; the others still are not, by the host nor by 937.
      for (const token of [owner.token, neighbour.token]) {
        const seen = await clusterAs(token);
        expect(seen.members.find((m) => m.candidate_id === homes.h937)).toMatchObject({ address: '937 Stone Slope Ln SW', consent: 'accepted' });
        expect(seen.members.filter((m) => m.consent === 'invited').every((m) => m.candidate_id === `yard-${m.position}` && m.address === null)).toBe(true);
      }
    });

    it('the host home sets the mower zones of each yard, also of one it cannot see yet', async () => {
      const path = `/clusters/${clusterId}/members/${homes.h937}/zones`;
      expect(await code(await api(path, { method: 'PUT', token: neighbour.token, json: { zones: ['1'] } }))).toBe('HUB_ERR_FORBIDDEN');
      expect((await api(path, { method: 'PUT', token: owner.token, json: { zones: ['12; drop table'] } })).status).toBe(400);
      const res = await api(path, { method: 'PUT', token: owner.token, json: { zones: ['1234567890', '-42'] } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ candidate_id: homes.h937, zones: ['1234567890', '-42'] });
      const hidden = (await clusterAs(owner.token)).members.find((m) => m.consent === 'invited')!;
      const byToken = await api(`/clusters/${clusterId}/members/${hidden.candidate_id}/zones`, { method: 'PUT', token: owner.token, json: { zones: ['7'] } });
      expect(await byToken.json()).toMatchObject({ candidate_id: hidden.candidate_id, home_id: null, address: null, zones: ['7'] });
      expect(await code(await api(`/clusters/${clusterId}`, { method: 'DELETE', token: neighbour.token }))).toBe('HUB_ERR_FORBIDDEN');
    });

    it('lists clusters to the homes in them', async () => {
      const ids = async (token: string) => ((await (await api('/clusters', { token })).json()) as { id: string }[]).map((c) => c.id);
      expect(await ids(owner.token)).toEqual([clusterId]);
      expect(await ids(neighbour.token)).toEqual([clusterId]);
      expect(await ids(stranger.token)).toEqual([]);
      expect(await ids(admin)).toEqual([clusterId]);
      expect(await code(await api(`/clusters/${clusterId}`, { token: stranger.token }))).toBe('HUB_ERR_CLUSTER_NOT_FOUND');
      expect((await api(`/clusters/${clusterId}`, { token: neighbour.token })).status).toBe(200);
    });

    it('draws the cluster: host, the members one may see, route, block and nearby roads, with the OSM attribution', async () => {
      const res = await api(`/clusters/${clusterId}/geojson`, { token: neighbour.token });
      expect(res.status).toBe(200);
      const map = (await res.json()) as FeatureCollection & { attribution: string };
      expect(map.attribution).toMatch(/OpenStreetMap contributors.*ODbL/);
      const kinds = (kind: string) => map.features.filter((f) => f.properties?.kind === kind);
      expect(kinds('host')).toHaveLength(1);
      expect(kinds('host')[0]!.geometry).toEqual({ type: 'Point', coordinates: [ROCHESTER.h931.longitude, ROCHESTER.h931.latitude] });
      const members = kinds('member');
      expect(members.map((f) => f.properties!.candidate_id)).toEqual([homes.h937]); // the others have not agreed
      expect(members[0]!.properties).toMatchObject({ consent: 'accepted', position: expect.any(Number), address: '937 Stone Slope Ln SW' });
      const route = kinds('route')[0]!.geometry as LineString;
      expect(route.coordinates[0]).toEqual(route.coordinates.at(-1)); // back to the host
      expect(kinds('route')[0]!.properties!.length_m).toBeNull(); // it passes yards the neighbour may not see
      expect(route.coordinates).toHaveLength(members.length + 2);
      expect(kinds('block').length).toBeGreaterThan(0);
      expect((kinds('block')[0]!.geometry as Polygon).type).toBe('Polygon');
      expect(kinds('barrier').length).toBeGreaterThan(0);
      expect(kinds('barrier').every((f) => typeof f.properties!.highway === 'string')).toBe(true);
      const all = (await (await api(`/clusters/${clusterId}/geojson`)).json()) as FeatureCollection;
      expect(all.features.filter((f) => f.properties?.kind === 'member').length).toBe((await clusterAs(admin)).members.length - 1);
      expect((await api(`/clusters/${clusterId}/geojson`, { token: stranger.token })).status).toBe(404);
    });

    it('refuses a host without a mower, and leaves out yards that host or are in another cluster', async () => {
      const noMower = await api('/clusters/accept', { json: { host_home_id: homes.h943 } });
      expect(noMower.status).toBe(409);
      expect(await code(noMower)).toBe('HUB_ERR_CLUSTER_NO_MOWER');

      const mower = await giveMower(homes.h943, 'mower_943');
      try {
        const planned = await plan(homes.h943);
        expect(planned.members.map((m) => m.candidate_id)).toEqual(expect.arrayContaining([homes.h931, homes.h937]));
        const res = await api('/clusters/accept', { json: { hostHomeId: homes.h943 } });
        const body = (await res.json()) as { id: string; skipped: unknown[]; error: { code: string; details: { skipped: unknown[] } } };
        const skipped = res.status === 201 ? body.skipped : body.error.details.skipped;
        expect(skipped).toEqual(
          expect.arrayContaining([
            { candidate_id: homes.h931, reason: 'hosts_a_cluster' },
            { candidate_id: homes.h937, reason: 'in_another_cluster' },
          ]),
        );
        if (res.status === 201) await api(`/clusters/${body.id}`, { method: 'DELETE' });
        else expect(body.error.code).toBe('HUB_ERR_CLUSTER_EMPTY');
      } finally {
        mower.remove();
      }
    });

    it('a home that declines loses sight of the cluster', async () => {
      const res = await api(`/clusters/${clusterId}/members/${homes.h937}/consent`, { token: neighbour.token, json: { state: 'declined' } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ candidate_id: homes.h937, consent: 'declined' });
      expect(await code(await api(`/clusters/${clusterId}`, { token: neighbour.token }))).toBe('HUB_ERR_CLUSTER_NOT_FOUND');
      expect((await api(`/clusters/${clusterId}/geojson`, { token: neighbour.token })).status).toBe(404);
      expect(await (await api('/clusters', { token: neighbour.token })).json()).toEqual([]);
      // The host no longer sees who it was.
      const declined = (await clusterAs(owner.token)).members.find((m) => m.consent === 'declined')!;
      expect(declined).toMatchObject({ candidate_id: `yard-${declined.position}`, home_id: null, address: null });
    });

    it('is dissolved by the host owner, not while its mower walks the route; its entities go with it', async () => {
      expect((await api(`/clusters/${clusterId}`, { method: 'DELETE', token: neighbour.token })).status).toBe(404);
      const running = await sql<{ id: string }>`insert into cluster_runs (cluster_id) values (${clusterId}) returning id`.execute(t.hub.database.db);
      expect(await code(await api(`/clusters/${clusterId}`, { method: 'DELETE', token: owner.token }))).toBe('HUB_ERR_CLUSTER_RUN_ACTIVE');
      await sql`update cluster_runs set status = 'cancelled', ended_at = now() where id = ${running.rows[0]!.id}`.execute(t.hub.database.db);
      expect((await api(`/clusters/${clusterId}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
      expect(t.hub.states.get(`sensor.cluster_${clusterId}_members`)).toBeUndefined();
      expect(t.hub.states.get(`sensor.cluster_${clusterId}_next_yard`)).toBeUndefined();
      expect((await api(`/clusters/${clusterId}`, { method: 'DELETE', token: owner.token })).status).toBe(404);
    });

    it('accepts a fresh plan with a subset of its members in one call, named by their tokens', async () => {
      const full = await plan(homes.h931);
      const tokenOf = (id: string) => `yard-${full.route!.order.indexOf(id) + 1}`;
      const res = await api('/clusters/accept', { token: owner.token, json: { host_home_id: homes.h931, members: [tokenOf(homes.h925), tokenOf(homes.h937)] } });
      expect(res.status).toBe(201);
      const created = (await res.json()) as ClusterView;
      clusterId = created.id;
      const seen = await clusterAs(admin);
      expect(seen.members.map((m) => m.candidate_id).sort()).toEqual([homes.h931, homes.h925, homes.h937].sort());
      expect(seen.route.order.sort()).toEqual([homes.h925, homes.h937].sort());
      // The host does not see the invited yards yet, so not the length of a route through them either.
      expect(created.route.length_m).toBeNull();
      expect(seen.route.length_m).toBeGreaterThan(0);
      expect(await code(await api('/clusters/accept', { token: neighbour.token, json: { host_home_id: homes.h931 } }))).toBe('HUB_ERR_HOME_NOT_FOUND');
    });

    it('drops a deleted member home, and the whole cluster with its host home', async () => {
      expect((await t.request(`/api/homes/${homes.h925}`, { method: 'DELETE', token: admin })).status).toBe(204);
      await until(async () => ((await (await api(`/clusters/${clusterId}`)).json()) as { members: unknown[] }).members.length, (n) => n === 2);
      expect((await t.request(`/api/homes/${homes.h931}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
      await until(() => t.hub.states.get(`sensor.cluster_${clusterId}_members`), (s) => s === undefined);
      expect((await api('/clusters')).status).toBe(200);
      expect(await (await api('/clusters')).json()).toEqual([]);
    });
  });

  describe('address pool', () => {
    it('imports address points once each, with footprints, and lists them near a point', async () => {
      const buildings = load('german-street.geojson').features.filter((f): f is Feature<Polygon> => Boolean(f.properties?.['addr:street']) && f.geometry.type === 'Polygon');
      const addresses = buildings.map((f) => ({
        address: `${String(f.properties!['addr:housenumber'])} ${String(f.properties!['addr:street'])}`,
        city: String(f.properties!['addr:city'] ?? ''),
        footprint: f.geometry,
      }));
      expect((await api('/addresses', { token: owner.token, json: { addresses } })).status).toBe(403);
      const res = await api('/addresses', { json: { source: 'import', addresses: [...addresses, addresses[0]] } });
      expect(res.status).toBe(201);
      expect(await res.json()).toEqual({ imported: addresses.length, duplicates: 1 });
      expect(await (await api('/addresses', { json: { addresses } })).json()).toEqual({ imported: 0, duplicates: addresses.length });

      const near = (await (await api('/addresses?near=48.1360,10.0698&radius=40')).json()) as { address: string; candidate_id: string; geocode_quality: string }[];
      expect(near.length).toBeGreaterThan(0);
      expect(near[0]!.candidate_id).toMatch(/^address:/);
      expect(near.every((a) => a.geocode_quality === 'rooftop')).toBe(true);
      expect((await api('/addresses', { json: { addresses: [{ address: '1 Main St', latitude: 91, longitude: 0 }] } })).status).toBe(400);
      expect((await api('/addresses', { json: { addresses: [{ address: '1 Main St', latitude: 45 }] } })).status).toBe(400);
    });

    it('imported addresses become candidates of the planner at once', async () => {
      const haydn6 = load('german-street.geojson').features.find((f) => f.id === 'way/275490756') as Feature<Polygon>;
      const [lon, lat] = haydn6.geometry.coordinates[0]![0]!;
      const host = await t.createHome(stranger.token, { name: 'Kirchberg', address: 'Haydnstraße 6a, Kirchberg an der Iller', latitude: lat! - 0.00003, longitude: lon! - 0.00003 });
      const mower = await giveMower(host, 'kirchberg');
      try {
        const planned = await plan(host, stranger.token);
        expect(planned.extract_id).toBe(germanId);
        expect(planned.members.length).toBeGreaterThan(0);
        expect(planned.members.every((m) => m.candidate_id.startsWith('address:'))).toBe(true);
        expect(planned.members.map((m) => m.address)).toContain('6 Haydnstraße'); // the building next to the pin
      } finally {
        mower.remove();
      }
    });
  });

  describe('several hub instances', () => {
    let deliver: ((event: HubEvent) => void) | undefined;
    /** `cluster_data_changed` as another instance fires it (through the relay: REMOTE). */
    const fromElsewhere = (data: Record<string, unknown>) =>
      deliver!({ event_type: 'cluster_data_changed', data, origin: 'LOCAL', time_fired: new Date().toISOString(), context: createContext(), home_id: null });

    beforeAll(() => t.hub.bus.setRelay({ publish: () => {}, subscribe: (d) => ((deliver = d), () => (deliver = undefined)) }));
    afterAll(() => t.hub.bus.setRelay(undefined));

    it('takes in the addresses another instance added, without rebuilding any road model', async () => {
      const built = modelsBuilt();
      const { rows } = await sql<{ id: string }>`
        insert into cluster_addresses (role, address, city, state, latitude, longitude, geocode_quality, source, address_key)
        values ('prospect', '945 Stone Slope Ln SW', 'Rochester', 'MN', ${ROCHESTER.h943.latitude + 0.00004}, ${ROCHESTER.h943.longitude}, 'point', 'import', 'remote-945')
        returning id`.execute(t.hub.database.db);
      const candidate = `address:${rows[0]!.id}`;
      expect(candidates(await plan(homes.h943))).not.toContain(candidate);
      fromElsewhere({ what: 'addresses', address_ids: [rows[0]!.id] });
      await until(async () => candidates(await plan(homes.h943)), (ids) => ids.includes(candidate));
      expect(modelsBuilt()).toBe(built);
    });

    it('reads only the extract another instance stored; roads that do not build answer 422, never 500', async () => {
      const built = modelsBuilt();
      const { rows } = await sql<{ id: string }>`
        insert into cluster_road_extracts (name, source, bbox, features, way_count, barrier_count)
        values ('Broken', 'geojson', ${'{-93.0,42.0,-92.9,42.1}'}::double precision[], ${'{"type": "FeatureCollection"}'}::jsonb, 0, 0)
        returning id`.execute(t.hub.database.db);
      const broken = rows[0]!.id;
      const names = async () => ((await (await api('/roads')).json()) as { name: string }[]).map((e) => e.name);
      fromElsewhere({ what: 'extract', extract_id: broken });
      await until(names, (list) => list.includes('Broken'));

      const spot = await t.createHome(admin, { name: 'On broken roads', latitude: 42.05, longitude: -92.95 });
      const res = await api('/plan', { json: { host_home_id: spot } });
      expect(res.status).toBe(422);
      expect(await code(res)).toBe('HUB_ERR_CLUSTER_NO_ROAD_DATA');
      expect(t.logs.some((l) => l.msg === 'road model not built' && l.extract === broken)).toBe(true);
      // The other extracts' models were kept.
      expect((await plan(homes.h943)).extract_id).toBe(rochesterId);
      expect(modelsBuilt()).toBe(built);

      await sql`delete from cluster_road_extracts where id = ${broken}`.execute(t.hub.database.db);
      fromElsewhere({ what: 'extract', extract_id: broken });
      await until(names, (list) => !list.includes('Broken'));
      await t.request(`/api/homes/${spot}`, { method: 'DELETE', token: admin });
    });

    it('ignores an event it cannot read', async () => {
      fromElsewhere({ what: 'extract', extract_id: 'not-an-id' });
      await until(() => t.logs.some((l) => l.msg === 'cluster_data_changed with unexpected data; ignored'), Boolean);
    });
  });
});

describe('cluster plugin without Overpass', () => {
  it('refuses Overpass requests with a coded 409 until overpassUrl is set', async () => {
    const t = await createTestHub({}, { plugins: [{ definition: cluster, dir: PLUGIN_DIR }] });
    try {
      const res = await t.request('/api/plugins/cluster/roads/overpass', { token: await t.adminToken(), json: { bbox: [10.068, 48.135, 10.071, 48.137] } });
      expect(res.status).toBe(409);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_PLUGIN_NOT_CONFIGURED');
      expect((await t.request('/api/plugins/cluster/roads/overpass', { json: { bbox: [10.068, 48.135, 10.071, 48.137] } })).status).toBe(401);
    } finally {
      await t.stop();
    }
  });
});
