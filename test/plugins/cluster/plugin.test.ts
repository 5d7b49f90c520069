/**
 * The cluster plugin end to end on a real hub: road extracts (import, Overpass with its cache),
 * the address pool, plans for homes with a mower, accepting a plan, consent, zones, the map and
 * the cluster entities. Roads are the committed OSM extracts (test/plugins/cluster/data, ODbL);
 * homes stand on the Rochester county points the research names (SPEC §1.8). Overpass is a local
 * HTTP server speaking its wire format; nothing leaves the machine.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Feature, FeatureCollection, LineString, Polygon } from 'geojson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe('cluster plugin', () => {
  let t: TestHub;
  let overpass: Server;
  const overpassQueries: string[] = [];
  let overpassMode: 'ok' | 'fail' = 'ok';
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
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(overpassAnswer(load('german-street.geojson'))));
        }
      });
    });
    await new Promise<void>((resolve) => overpass.listen(0, '127.0.0.1', resolve));
    const fakeMowers = definePlugin({ id: 'fake_mowers', version: '1.0.0', hub: '*', setup: (ctx) => void (mowerPlugin = ctx) });
    t = await createTestHub(
      {
        PLUGIN_CLUSTER_OVERPASS_URL: `http://127.0.0.1:${(overpass.address() as AddressInfo).port}/api/interpreter`,
        PLUGIN_CLUSTER_MAX_IMPORT_MB: '2',
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
    await mowerPlugin!.entities.register({ entity_id: 'lawn_mower.host_mower', home_id: homes.h931, initial: { state: 'docked' } });
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
      expect(body).toMatchObject({ name: 'Rochester SW', source: 'geojson', ways: 291, cached: false });
      expect(body.barrierWays).toBe(291);
      expect(body.segments).toEqual(expect.any(Number));
      expect(body.faces).toBeGreaterThan(10);
      expect(body.bbox).toEqual([expect.closeTo(-92.5319, 3), expect.closeTo(44.0028, 3), expect.closeTo(-92.4866, 3), expect.closeTo(44.0325, 3)]);
      rochesterId = body.id as string;

      const german = await api('/roads', { json: { name: 'Kirchberg', source: 'osm-xml', bbox: GERMAN_BOUNDS, roads: load('german-street.geojson') } });
      expect(german.status).toBe(201);
      const built = (await german.json()) as Record<string, unknown>;
      // Every line with a highway tag counts as a way; only the four residential streets are roads.
      expect(built).toMatchObject({ source: 'osm-xml', bbox: GERMAN_BOUNDS, barrierWays: 4 });
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
      expect((await raw('/plan', JSON.stringify({ hostHomeId: homes.h931 }) + ' '.repeat(1536 * 1024))).status).toBe(413);

      expect((await api(`/roads/${padded}`, { method: 'DELETE', token: owner.token })).status).toBe(403);
      expect((await api(`/roads/${padded}`, { method: 'DELETE' })).status).toBe(204);
      expect(await code(await api(`/roads/${padded}`, { method: 'DELETE' }))).toBe('HUB_ERR_ROAD_EXTRACT_NOT_FOUND');
    });
  });

  describe('Overpass', () => {
    const bbox = [10.0675, 48.1345, 10.0715, 48.1375];

    it('fetches a box once, serves the stored extract after that, and fetches again on refresh', async () => {
      const first = await api('/roads/overpass', { json: { bbox } });
      expect(first.status).toBe(201);
      const fetched = (await first.json()) as { id: string; source: string; query: string; barrierWays: number; cached: boolean };
      expect(fetched).toMatchObject({ source: 'overpass', barrierWays: 4, cached: false });
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
    it("plans a home's cluster: neighbours by street line only, in route order", async () => {
      // The county's point for 937 is in the address pool too, with its building: the hub home is still the one invited.
      const [lon, lat] = [ROCHESTER.h937.longitude, ROCHESTER.h937.latitude];
      const d = 0.00005;
      const footprint = { type: 'Polygon', coordinates: [[[lon - d, lat - d], [lon + d, lat - d], [lon + d, lat + d], [lon - d, lat + d], [lon - d, lat - d]]] };
      expect((await api('/addresses', { json: { addresses: [{ address: '937 STONE SLOPE LN SW', city: 'ROCHESTER', state: 'MN', footprint }] } })).status).toBe(201);

      const res = await api('/plan', { token: owner.token, json: { hostHomeId: homes.h931 } });
      expect(res.status).toBe(200);
      const plan = (await res.json()) as {
        planId: string;
        hostId: string;
        hostStatus: string;
        extractId: string;
        warnings: string[];
        members: { candidateId: string; address: string; reason: string }[];
        rejected: { candidateId: string; reason: string }[];
        route: { order: string[]; lengthM: number };
      };
      expect(plan).toMatchObject({ hostId: homes.h931, hostStatus: 'ok', extractId: rochesterId, warnings: [] });
      const members = Object.fromEntries(plan.members.map((m) => [m.candidateId, m]));
      expect(members[homes.h925]).toMatchObject({ address: '925 Stone Slope Ln SW', reason: 'direct' });
      expect(members[homes.h949]).toMatchObject({ address: '949 Stone Slope Ln SW', reason: 'detour' }); // round the cul-de-sac tip
      expect(members[homes.h937]).toMatchObject({ address: '937 Stone Slope Ln SW', reason: 'direct' });
      expect(plan.rejected.find((r) => r.candidateId.startsWith('address:'))).toMatchObject({ reason: 'duplicate' });
      expect(plan.members.length).toBeLessThanOrEqual(4);
      expect([...plan.route.order].sort()).toEqual(plan.members.map((m) => m.candidateId).sort());
      expect(plan.members.map((m) => m.candidateId)).not.toContain(homes.h1001); // 110 m away
      // Other homes show as ids and street lines: never their names, owners or members.
      const text = JSON.stringify(plan);
      for (const secret of ['Secret Garden', 'Round the Corner', 'neighbour@example.com', 'Rochester, MN']) expect(text).not.toContain(secret);
      planId = plan.planId;
    });

    it("answers 404 for another user's home and for no home, 422 without coordinates or road data", async () => {
      const other = await api('/plan', { token: owner.token, json: { hostHomeId: homes.h937 } });
      expect(other.status).toBe(404);
      expect(await code(other)).toBe('HUB_ERR_HOME_NOT_FOUND');
      expect(await code(await api('/plan', { json: { hostHomeId: crypto.randomUUID() } }))).toBe('HUB_ERR_HOME_NOT_FOUND');
      expect(await code(await api('/plan', { token: owner.token, json: { hostHomeId: 'not-a-uuid' } }))).toBe('HUB_ERR_VALIDATION');

      const cabin = await t.createHome(owner.token, { name: 'Cabin' });
      const noPoint = await api('/plan', { token: owner.token, json: { hostHomeId: cabin } });
      expect(noPoint.status).toBe(422);
      expect(await code(noPoint)).toBe('HUB_ERR_HOME_NO_LOCATION');

      // The original's placeholder row, 30 km east of the road data: the planner fails closed.
      const far = await t.createHome(owner.token, { name: 'Far', latitude: 44.0123, longitude: -92.1234 });
      const noRoads = await api('/plan', { token: owner.token, json: { hostHomeId: far } });
      expect(noRoads.status).toBe(422);
      expect(await code(noRoads)).toBe('HUB_ERR_CLUSTER_NO_ROAD_DATA');
      const withoutMower = (await (await api('/plan', { token: neighbour.token, json: { hostHomeId: homes.h937 } })).json()) as { warnings: string[] };
      expect(withoutMower.warnings).toContain('host_has_no_mower');
    });

    it('follows homes as they move, without rebuilding the roads', async () => {
      const memberIds = async () =>
        ((await (await api('/plan', { token: owner.token, json: { hostHomeId: homes.h931 } })).json()) as { members: { candidateId: string }[]; rejected: { candidateId: string }[] });
      const moved = await t.request(`/api/homes/${homes.h925}`, { method: 'PATCH', token: admin, json: { latitude: 44.02, longitude: -92.52 } });
      expect(moved.status).toBe(200);
      const away = await memberIds();
      expect([...away.members, ...away.rejected].map((p) => p.candidateId)).not.toContain(homes.h925);
      await t.request(`/api/homes/${homes.h925}`, { method: 'PATCH', token: admin, json: ROCHESTER.h925 });
      expect((await memberIds()).members.map((m) => m.candidateId)).toContain(homes.h925);
      expect(t.logs.filter((l) => l.msg === 'road model built' && l.extract === rochesterId)).toHaveLength(0); // built at import, kept since
    });

    it('plans every host at once (admin)', async () => {
      expect((await api('/plan-all', { method: 'POST', token: owner.token })).status).toBe(403);
      const res = await api('/plan-all', { method: 'POST' });
      expect(res.status).toBe(200);
      const all = (await res.json()) as { clusters: { hostId: string; members: unknown[] }[]; stats: { hosts: number; assigned: number; ms: number } };
      expect(all.clusters.map((c) => c.hostId)).toEqual([homes.h931]);
      expect(all.stats).toMatchObject({ hosts: 1, assigned: all.clusters[0]!.members.length });
    });
  });

  describe('clusters', () => {
    it('a plan is accepted by its host owner only; the cluster keeps the route order and invites the members', async () => {
      expect(await code(await api(`/clusters/${planId}/accept`, { method: 'POST', token: stranger.token }))).toBe('HUB_ERR_CLUSTER_PLAN_NOT_FOUND');
      expect(await code(await api(`/clusters/${crypto.randomUUID()}/accept`, { method: 'POST', token: owner.token }))).toBe('HUB_ERR_CLUSTER_PLAN_NOT_FOUND');
      const notInPlan = await api(`/clusters/${planId}/accept`, { token: owner.token, json: { members: [homes.h1001] } });
      expect(await code(notInPlan)).toBe('HUB_ERR_VALIDATION');

      const res = await api(`/clusters/${planId}/accept`, { method: 'POST', token: owner.token });
      expect(res.status).toBe(201);
      const created = (await res.json()) as { id: string; hostHomeId: string; members: { candidateId: string; position: number; consent: string; address: string }[]; route: { order: string[] } };
      clusterId = created.id;
      expect(created.hostHomeId).toBe(homes.h931);
      expect(created.members[0]).toMatchObject({ candidateId: homes.h931, position: 0, consent: 'accepted', address: '931 Stone Slope Ln SW' });
      expect(created.members.slice(1).map((m) => m.candidateId)).toEqual(created.route.order);
      expect(created.members.slice(1).every((m) => m.consent === 'invited')).toBe(true);

      const twice = await api('/clusters/accept', { token: owner.token, json: { hostHomeId: homes.h931 } });
      expect(twice.status).toBe(409);
      expect(await code(twice)).toBe('HUB_ERR_CLUSTER_EXISTS');
    });

    it('shows as entities of the host home', async () => {
      const members = t.hub.states.get(`sensor.cluster_${clusterId}_members`);
      expect(members?.state).toBe('1'); // only the host has agreed so far
      expect(members?.attributes.members).toEqual(expect.arrayContaining([expect.objectContaining({ candidateId: homes.h937, consent: 'invited' })]));
      expect(t.hub.states.get(`sensor.cluster_${clusterId}_next_yard`)).toMatchObject({
        state: '931 Stone Slope Ln SW',
        attributes: { position: 0, candidateId: homes.h931, homeId: homes.h931 },
      });
      const visible = await t.request(`/api/states/sensor.cluster_${clusterId}_members`, { token: stranger.token });
      expect(visible.status).toBe(404);
    });

    it("a member home's owner answers the invitation; nobody else can", async () => {
      const path = `/clusters/${clusterId}/members/${homes.h937}/consent`;
      expect(await code(await api(path, { token: stranger.token, json: { state: 'accepted' } }))).toBe('HUB_ERR_CLUSTER_NOT_FOUND');
      expect(await code(await api(path, { token: owner.token, json: { state: 'accepted' } }))).toBe('HUB_ERR_FORBIDDEN');
      expect(await code(await api(`/clusters/${clusterId}/members/${homes.h931}/consent`, { token: owner.token, json: { state: 'declined' } }))).toBe('HUB_ERR_CLUSTER_HOST_YARD');
      expect(await code(await api(`/clusters/${clusterId}/members/${homes.h1001}/consent`, { token: neighbour.token, json: { state: 'accepted' } }))).toBe('HUB_ERR_CLUSTER_MEMBER_NOT_FOUND');
      expect(await code(await api(path, { token: neighbour.token, json: { state: 'maybe' } }))).toBe('HUB_ERR_VALIDATION');

      const res = await api(path, { token: neighbour.token, json: { state: 'accepted' } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ candidateId: homes.h937, consent: 'accepted', address: '937 Stone Slope Ln SW' });
      await until(() => t.hub.states.get(`sensor.cluster_${clusterId}_members`)?.state, (s) => s === '2');
    });

    it('the host home sets the mower zones of each yard', async () => {
      const path = `/clusters/${clusterId}/members/${homes.h937}/zones`;
      expect(await code(await api(path, { method: 'PUT', token: neighbour.token, json: { zones: ['1'] } }))).toBe('HUB_ERR_FORBIDDEN');
      expect((await api(path, { method: 'PUT', token: owner.token, json: { zones: ['12; drop table'] } })).status).toBe(400);
      const res = await api(path, { method: 'PUT', token: owner.token, json: { zones: ['1234567890', '-42'] } });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ zones: ['1234567890', '-42'] });
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

    it('draws the cluster: host, members, route, block and nearby roads, with the OSM attribution', async () => {
      const res = await api(`/clusters/${clusterId}/geojson`, { token: neighbour.token });
      expect(res.status).toBe(200);
      const map = (await res.json()) as FeatureCollection & { attribution: string };
      expect(map.attribution).toMatch(/OpenStreetMap contributors.*ODbL/);
      const kinds = (kind: string) => map.features.filter((f) => f.properties?.kind === kind);
      expect(kinds('host')).toHaveLength(1);
      expect(kinds('host')[0]!.geometry).toEqual({ type: 'Point', coordinates: [ROCHESTER.h931.longitude, ROCHESTER.h931.latitude] });
      const members = kinds('member');
      expect(members.length).toBeGreaterThan(0);
      expect(members.find((f) => f.properties!.candidateId === homes.h937)!.properties).toMatchObject({ consent: 'accepted', position: expect.any(Number) });
      const route = kinds('route')[0]!.geometry as LineString;
      expect(route.coordinates[0]).toEqual(route.coordinates.at(-1)); // back to the host
      expect(route.coordinates).toHaveLength(members.length + 2);
      expect(kinds('block').length).toBeGreaterThan(0);
      expect((kinds('block')[0]!.geometry as Polygon).type).toBe('Polygon');
      expect(kinds('barrier').length).toBeGreaterThan(0);
      expect(kinds('barrier').every((f) => typeof f.properties!.highway === 'string')).toBe(true);
      expect((await api(`/clusters/${clusterId}/geojson`, { token: stranger.token })).status).toBe(404);
    });

    it('is dissolved by the host owner; its entities go with it', async () => {
      expect(await code(await api(`/clusters/${clusterId}`, { method: 'DELETE', token: neighbour.token }))).toBe('HUB_ERR_FORBIDDEN');
      expect((await api(`/clusters/${clusterId}`, { method: 'DELETE', token: owner.token })).status).toBe(204);
      expect(t.hub.states.get(`sensor.cluster_${clusterId}_members`)).toBeUndefined();
      expect(t.hub.states.get(`sensor.cluster_${clusterId}_next_yard`)).toBeUndefined();
      expect((await api(`/clusters/${clusterId}`, { method: 'DELETE', token: owner.token })).status).toBe(404);
    });

    it('accepts a fresh plan with a subset of its members in one call', async () => {
      const res = await api('/clusters/accept', { token: owner.token, json: { hostHomeId: homes.h931, members: [homes.h925, homes.h937] } });
      expect(res.status).toBe(201);
      const created = (await res.json()) as { id: string; members: { candidateId: string }[]; route: { order: string[]; lengthM: number } };
      expect(created.members.map((m) => m.candidateId).sort()).toEqual([homes.h931, homes.h925, homes.h937].sort());
      expect(created.route.order.sort()).toEqual([homes.h925, homes.h937].sort());
      expect(created.route.lengthM).toBeGreaterThan(0);
      expect(await code(await api('/clusters/accept', { token: neighbour.token, json: { hostHomeId: homes.h931 } }))).toBe('HUB_ERR_HOME_NOT_FOUND');
      clusterId = created.id;
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

      const near = (await (await api('/addresses?near=48.1360,10.0698&radius=40')).json()) as { address: string; candidateId: string; geocodeQuality: string }[];
      expect(near.length).toBeGreaterThan(0);
      expect(near[0]!.candidateId).toMatch(/^address:/);
      expect(near.every((a) => a.geocodeQuality === 'rooftop')).toBe(true);
      expect((await api('/addresses', { json: { addresses: [{ address: '1 Main St', latitude: 91, longitude: 0 }] } })).status).toBe(400);
      expect((await api('/addresses', { json: { addresses: [{ address: '1 Main St', latitude: 45 }] } })).status).toBe(400);
    });

    it('imported addresses become candidates of the planner at once', async () => {
      const haydn6 = load('german-street.geojson').features.find((f) => f.id === 'way/275490756') as Feature<Polygon>;
      const [lon, lat] = haydn6.geometry.coordinates[0]![0]!;
      const host = await t.createHome(stranger.token, { name: 'Kirchberg', address: 'Haydnstraße 6a, Kirchberg an der Iller', latitude: lat! - 0.00003, longitude: lon! - 0.00003 });
      const plan = (await (await api('/plan', { token: stranger.token, json: { hostHomeId: host } })).json()) as { extractId: string; members: { candidateId: string; address: string }[] };
      expect(plan.extractId).toBe(germanId);
      expect(plan.members.length).toBeGreaterThan(0);
      expect(plan.members.every((m) => m.candidateId.startsWith('address:'))).toBe(true);
      expect(plan.members.map((m) => m.address)).toContain('6 Haydnstraße'); // the building next to the pin
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
