/**
 * The original Mowthos-Cluster-Logic API served by the cluster plugin (SPEC §1.2): its paths,
 * bodies and FastAPI response shapes, answered by the planner on the Rochester roads (ODbL)
 * with the original's own homes. Geocoding goes to a local server speaking Nominatim's JSON.
 * Clients ask with an API token; registering (which writes the shared address pool) takes an
 * administrator's session.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContext, type HubEvent } from '../../../core/bus/index.js';
import cluster from '../../../plugins/cluster/index.js';
import { createTestHub, type TestHub } from '../../harness/index.js';
import { until } from '../../harness/wait.js';

const PLUGIN_DIR = fileURLToPath(new URL('../../../plugins/cluster', import.meta.url));
const VIEWBOX = '-92.55,43.99,-92.45,44.05';
/** The geocoder's spacing here; Nominatim's own policy is 1000 ms (the default). */
const GEOCODER_SPACING_MS = 250;

/** What the fake Nominatim knows, by query; `type: house` is a house match, anything else coarser. */
const PLACES: Record<string, { lat: string; lon: string; category: string; type: string; addresstype: string }> = {
  '925 Stone Slope Ln SW, Rochester, MN': { lat: '44.012024', lon: '-92.506588', category: 'place', type: 'house', addresstype: 'place' },
  '941 Stone Slope Ln SW, Rochester, MN': { lat: '44.01165', lon: '-92.50705', category: 'building', type: 'house', addresstype: 'building' },
  'Stone Slope Ln SW, Rochester, MN': { lat: '44.0116', lon: '-92.5068', category: 'highway', type: 'residential', addresstype: 'road' },
  // A wrong-country match, like the original's Medicine Hat cache file.
  '1 Main St, Medicine Hat, AB': { lat: '50.018', lon: '-110.717', category: 'place', type: 'house', addresstype: 'place' },
};

describe('the original cluster API', () => {
  let t: TestHub;
  let nominatim: Server;
  const searches: { query: URLSearchParams; headers: IncomingHttpHeaders; at: number }[] = [];
  let token: string;
  let admin: string;

  const post = (path: string, json: unknown, as = token) => t.request(`/api/plugins/cluster/clusters/${path}`, { token: as, json });
  const register = (path: 'register_host_home_csv' | 'register_neighbor_home_csv', json: unknown) => post(path, json, admin);
  const postRaw = (path: string, body: string, as = token) =>
    t.hub.app.request(`/api/plugins/cluster/clusters/${path}`, { method: 'POST', headers: { authorization: `Bearer ${as}`, 'content-type': 'application/json' }, body });
  const qualified = async (path: string, address: string) => {
    const res = await post(path, { address, city: 'Rochester', state: 'MN' });
    expect(res.status).toBe(200);
    return ((await res.json()) as { qualified_addresses: string[] }).qualified_addresses;
  };

  beforeAll(async () => {
    nominatim = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://nominatim');
      searches.push({ query: url.searchParams, headers: req.headers, at: performance.now() });
      const q = url.searchParams.get('q') ?? '';
      if (q.startsWith('Broken')) return void res.writeHead(503).end('overloaded');
      const place = PLACES[q];
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(place ? [{ place_id: 1, licence: 'Data © OpenStreetMap contributors, ODbL 1.0.', osm_type: 'node', display_name: q, place_rank: 30, importance: 0.1, ...place }] : []));
    });
    await new Promise<void>((resolve) => nominatim.listen(0, '127.0.0.1', resolve));
    t = await createTestHub(
      {
        PLUGIN_CLUSTER_GEOCODER_URL: `http://127.0.0.1:${(nominatim.address() as AddressInfo).port}/search`,
        PLUGIN_CLUSTER_GEOCODER_COUNTRY_CODES: 'us',
        PLUGIN_CLUSTER_GEOCODER_VIEWBOX: VIEWBOX,
        PLUGIN_CLUSTER_GEOCODER_MIN_INTERVAL_MS: String(GEOCODER_SPACING_MS),
      },
      { plugins: [{ definition: cluster, dir: PLUGIN_DIR }] },
    );
    admin = await t.adminToken();
    const roads = JSON.parse(readFileSync(new URL('./data/rochester-roads.geojson', import.meta.url), 'utf8')) as unknown;
    expect((await t.request('/api/plugins/cluster/roads', { token: admin, json: { name: 'Rochester SW', roads } })).status).toBe(201);
    // An API token, as a client of the original API uses (README: "Authorization: Bearer …").
    const created = await t.request('/api/tokens', { token: admin, json: { name: 'mowthos-cli', home_id: await t.createHome(admin, { name: 'Ops' }), role: 'owner' } });
    token = ((await created.json()) as { token: string }).token;
  });
  afterAll(async () => {
    await t?.stop();
    await new Promise((resolve) => nominatim?.close(resolve));
  });

  it('GET /health answers as the original did, to authenticated callers', async () => {
    const res = await t.request('/api/plugins/cluster/health', { token });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'healthy', service: 'mowthos-cluster-logic' });
    expect((await t.request('/api/plugins/cluster/health')).status).toBe(401);
  });

  it('answers an empty list, not a 500, while no host is registered', async () => {
    expect(await qualified('discover_neighbors_for_host_csv', '931 Stone Slope Ln SW')).toEqual([]);
    expect(await qualified('find_qualified_host_for_neighbor_csv', '925 Stone Slope Ln SW')).toEqual([]);
  });

  it('registers for administrators only: the pool it writes competes in the hub\'s clusters', async () => {
    const body = { address: '931 STONE SLOPE LN SW', city: 'ROCHESTER', state: 'MN', latitude: 44.0119495, longitude: -92.5069581 };
    for (const path of ['register_host_home_csv', 'register_neighbor_home_csv']) {
      const refused = await post(path, body);
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('HUB_ERR_FORBIDDEN');
      // Refused before the body is read: no FastAPI 422 for a caller who may not register.
      expect((await postRaw(path, '{"address": ')).status).toBe(403);
    }
    expect(await t.hub.database.db.selectFrom('cluster_addresses' as never).select('id' as never).execute()).toEqual([]);
  });

  it('registers a host, and the same address typed differently is the same record', async () => {
    const first = await register('register_host_home_csv', { address: '931 STONE SLOPE LN SW', city: 'ROCHESTER', state: 'MN', latitude: 44.0119495, longitude: -92.5069581 });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ success: true, full_address: '931 STONE SLOPE LN SW, ROCHESTER, MN', latitude: 44.0119495, longitude: -92.5069581, message: null });

    // The original's own second row: the Mapbox point for the same house, 0.9 m away.
    const again = await register('register_host_home_csv', { address: '931 Stone Slope Lane S.W.', city: 'Rochester', state: 'Minnesota', latitude: 44.011942, longitude: -92.506961 });
    expect(await again.json()).toEqual({
      success: true,
      full_address: '931 STONE SLOPE LN SW, ROCHESTER, MN',
      latitude: 44.0119495,
      longitude: -92.5069581,
      message: expect.stringMatching(/already registered/i),
    });
    const rows = await t.hub.database.db.selectFrom('cluster_addresses' as never).select('id' as never).execute();
    expect(rows).toHaveLength(1);
  });

  it('registers neighbours, geocoding those without a position', async () => {
    const neighbours = [
      ['937 STONE SLOPE LN SW', 44.0117071, -92.507216],
      ['943 STONE SLOPE LN SW', 44.0114115, -92.5070947],
      ['949 STONE SLOPE LN SW', 44.0114648, -92.5066084],
      ['955 STONE SLOPE LN SW', 44.0115888, -92.5063015],
      ['1001 FOX CROFT CIR SW', 44.0109638, -92.5063933],
    ] as const;
    for (const [address, latitude, longitude] of neighbours) {
      expect(await (await register('register_neighbor_home_csv', { address, city: 'ROCHESTER', state: 'MN', latitude, longitude })).json()).toMatchObject({ success: true });
    }
    const geocoded = await register('register_neighbor_home_csv', { address: '925 Stone Slope Ln SW', city: 'Rochester', state: 'MN' });
    expect(await geocoded.json()).toEqual({ success: true, full_address: '925 Stone Slope Ln SW, Rochester, MN', latitude: 44.012024, longitude: -92.506588, message: null });
    const search = searches.at(-1)!;
    expect(Object.fromEntries(search.query)).toEqual({ q: '925 Stone Slope Ln SW, Rochester, MN', format: 'jsonv2', limit: '1', countrycodes: 'us', viewbox: VIEWBOX, bounded: '1' });
    expect(search.headers['user-agent']).toMatch(/mowthos/);

    const unknown = await register('register_neighbor_home_csv', { address: '12 Nowhere Rd', city: 'Rochester', state: 'MN' });
    expect(await unknown.json()).toEqual({ success: false, full_address: null, latitude: null, longitude: null, message: 'Could not geocode address.' });
    // Outside every road extract: a wrong-country answer counts as not found.
    const wrong = await register('register_neighbor_home_csv', { address: '1 Main St', city: 'Medicine Hat', state: 'AB' });
    expect(await wrong.json()).toMatchObject({ success: false, message: 'Could not geocode address.' });
  });

  it("discovers the host's neighbours with the planner: never the host itself, no cap", async () => {
    // A hub home nearby stays private: the original API sees the address pool only.
    await t.createHome(await t.adminToken(), { name: 'Private', address: '933 Stone Slope Ln SW, Rochester, MN', latitude: 44.0118, longitude: -92.50685 });
    const found = await qualified('discover_neighbors_for_host_csv', '931 stone slope lane sw');
    // By path length; 949 round the Stone Slope Ct tip (the original rejected it), and five of them: no cap.
    expect(found).toEqual([
      '925 Stone Slope Ln SW, Rochester, MN',
      '937 STONE SLOPE LN SW, ROCHESTER, MN',
      '943 STONE SLOPE LN SW, ROCHESTER, MN',
      '949 STONE SLOPE LN SW, ROCHESTER, MN',
      '955 STONE SLOPE LN SW, ROCHESTER, MN',
    ]);
    // Not the host (nor its Mapbox twin), not the private hub home at 933, not 1001 Fox Croft 110 m away.
    // Only registered hosts are hosts (as in the original).
    expect(await qualified('discover_neighbors_for_host_csv', '937 STONE SLOPE LN SW')).toEqual([]);
  });

  it('finds the registered hosts that can take a neighbour, registered or only geocoded', async () => {
    expect(await qualified('find_qualified_host_for_neighbor_csv', '937 Stone Slope Ln SW')).toEqual(['931 STONE SLOPE LN SW, ROCHESTER, MN']);
    expect(await qualified('find_qualified_host_for_neighbor_csv', '931 Stone Slope Ln SW')).toEqual([]);
    expect(await qualified('find_qualified_host_for_neighbor_csv', '941 Stone Slope Ln SW')).toEqual(['931 STONE SLOPE LN SW, ROCHESTER, MN']);
    expect(await qualified('find_qualified_host_for_neighbor_csv', '12 Nowhere Rd')).toEqual([]);
    // The geocoded query point was only borrowed: it is nobody's neighbour afterwards.
    expect((await qualified('discover_neighbors_for_host_csv', '931 Stone Slope Ln SW')).join()).not.toContain('941');
  });

  it('geocodes from the pool, then the HTTP geocoder, caching its answers', async () => {
    const pooled = await post('geocode', { address: '937 Stone Slope Ln SW, Rochester, MN' });
    expect(await pooled.json()).toEqual({ latitude: 44.0117071, longitude: -92.507216, address: '937 Stone Slope Ln SW, Rochester, MN' });

    const before = searches.length;
    const remote = await post('geocode', { address: 'Stone Slope Ln SW, Rochester, MN' });
    expect(await remote.json()).toEqual({ latitude: 44.0116, longitude: -92.5068, address: 'Stone Slope Ln SW, Rochester, MN' });
    expect((await post('geocode', { address: 'Stone Slope Ln SW, Rochester, MN' })).status).toBe(200);
    expect(searches.length).toBe(before + 1);
    expect(t.logs.some((l) => l.msg === 'geocode outside every road extract ignored')).toBe(true);

    const missing = await post('geocode', { address: '1 Main St, Medicine Hat, AB' });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ detail: 'Address not found' });

    // A failing geocoder is a miss, and is asked again next time.
    const broken = searches.length;
    expect((await post('geocode', { address: 'Broken Rd, Rochester, MN' })).status).toBe(404);
    expect((await post('geocode', { address: 'Broken Rd, Rochester, MN' })).status).toBe(404);
    expect(searches.length).toBe(broken + 2);
  });

  it("refuses wrong input in FastAPI's 422 shape", async () => {
    const missing = await register('register_host_home_csv', { address: '1 Main St', state: 'MN' });
    expect(missing.status).toBe(422);
    expect(await missing.json()).toEqual({
      detail: [expect.objectContaining({ type: 'missing', loc: ['body', 'city'], msg: 'Field required' })],
    });
    const types = await register('register_neighbor_home_csv', { address: 931, city: 'Rochester', state: 'MN', latitude: 'north' });
    expect(((await types.json()) as { detail: { type: string; loc: unknown[] }[] }).detail.map((d) => [d.type, d.loc])).toEqual([
      ['string_type', ['body', 'address']],
      ['float_parsing', ['body', 'latitude']],
    ]);
    const lax = await register('register_neighbor_home_csv', { address: '937 STONE SLOPE LN SW', city: 'ROCHESTER', state: 'MN', latitude: '44.0117071', longitude: '-92.507216' });
    expect(await lax.json()).toMatchObject({ success: true }); // pydantic takes numeric strings for floats
    const malformed = await postRaw('discover_neighbors_for_host_csv', '{"address": ');
    expect(malformed.status).toBe(422);
    expect(((await malformed.json()) as { detail: { type: string }[] }).detail[0]!.type).toBe('json_invalid');
    expect(((await (await postRaw('geocode', '[1, 2]')).json()) as { detail: { type: string }[] }).detail[0]!.type).toBe('model_attributes_type');
    const range = await register('register_host_home_csv', { address: '1 Pole Rd', city: 'North', state: 'NP', latitude: 91, longitude: 0 });
    expect(await range.json()).toMatchObject({ success: false, full_address: null });
  });

  it('keeps a host outside the road data registered, and plans nothing for it (fail closed)', async () => {
    // The original's placeholder row, 30 km east of Rochester.
    expect(await (await register('register_host_home_csv', { address: '123 Main St', city: 'Rochester', state: 'MN', latitude: 44.0123, longitude: -92.1234 })).json()).toMatchObject({ success: true });
    expect(await qualified('discover_neighbors_for_host_csv', '123 Main St')).toEqual([]);
  });

  it('asks the HTTP geocoder one request at a time, spaced, and the same address once', async () => {
    const spaced = ['1 Spaced Rd, Rochester, MN', '2 Spaced Rd, Rochester, MN'];
    const answers = await Promise.all(spaced.map((address) => post('geocode', { address })));
    expect(answers.map((r) => r.status)).toEqual([404, 404]);
    const [first, second] = spaced.map((q) => searches.find((s) => s.query.get('q') === q)!.at).sort((a, b) => a - b);
    expect(second! - first!).toBeGreaterThanOrEqual(GEOCODER_SPACING_MS);

    const before = searches.length;
    await Promise.all([post('geocode', { address: '3 Twice Rd, Rochester, MN' }), post('geocode', { address: '3 Twice Rd, Rochester, MN' })]);
    expect(searches.length).toBe(before + 1);
  });

  it('answers an empty list, not a 500, where the stored roads do not build', async () => {
    // Another instance stored an extract whose roads cannot make a model; this one hears of it.
    let deliver: ((event: HubEvent) => void) | undefined;
    t.hub.bus.setRelay({ publish: () => {}, subscribe: (d) => ((deliver = d), () => (deliver = undefined)) });
    try {
      const { rows } = await sql<{ id: string }>`
        insert into cluster_road_extracts (name, source, bbox, features, way_count, barrier_count)
        values ('Broken', 'geojson', ${'{-93.0,42.0,-92.9,42.1}'}::double precision[], ${'{"type": "FeatureCollection"}'}::jsonb, 0, 0)
        returning id`.execute(t.hub.database.db);
      deliver!({ event_type: 'cluster_data_changed', data: { what: 'extract', extract_id: rows[0]!.id }, origin: 'LOCAL', time_fired: new Date().toISOString(), context: createContext(), home_id: null });
      await until(async () => ((await (await t.request('/api/plugins/cluster/roads', { token })).json()) as { name: string }[]).map((e) => e.name), (names) => names.includes('Broken'));
    } finally {
      t.hub.bus.setRelay(undefined);
    }
    expect(await (await register('register_host_home_csv', { address: '1 Broken Rd', city: 'Nowhere', state: 'IA', latitude: 42.05, longitude: -92.95 })).json()).toMatchObject({ success: true });
    expect(await (await register('register_neighbor_home_csv', { address: '3 Broken Rd', city: 'Nowhere', state: 'IA', latitude: 42.0501, longitude: -92.95 })).json()).toMatchObject({ success: true });
    for (const [path, address] of [['discover_neighbors_for_host_csv', '1 Broken Rd'], ['find_qualified_host_for_neighbor_csv', '3 Broken Rd']] as const) {
      const res = await post(path, { address, city: 'Nowhere', state: 'IA' });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ qualified_addresses: [] });
    }
  });
});
