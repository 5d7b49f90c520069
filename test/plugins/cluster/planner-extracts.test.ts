/**
 * The planner on real OpenStreetMap extracts (test/plugins/cluster/data, © OpenStreetMap
 * contributors, ODbL): the German street with its dead end and private driveways, the West
 * Oakland grid, and the Rochester roads around the original Mowthos test homes.
 */
import { readFileSync } from 'node:fs';
import { lineIntersect } from '@turf/turf';
import type { Feature, FeatureCollection, LineString, Polygon } from 'geojson';
import { describe, expect, it } from 'vitest';
import { buildRoadModel, Planner, type BBox, type HomeInput, type PlannerConfig } from '../../../plugins/cluster/planner/index.js';

const load = (name: string) => JSON.parse(readFileSync(new URL(`./data/${name}`, import.meta.url), 'utf8')) as FeatureCollection;

/** Homes from the extract's building footprints, with their addresses where OSM has them. */
function buildingHomes(extract: FeatureCollection): HomeInput[] {
  return extract.features
    .filter((f): f is Feature<Polygon> => Boolean(f.properties?.building) && f.geometry.type === 'Polygon')
    .map((f) => {
      const p = f.properties ?? {};
      const address = p['addr:street'] ? `${String(p['addr:housenumber'])} ${String(p['addr:street'])}` : undefined;
      return { id: String(f.id), footprint: f.geometry, address, city: p['addr:city'] as string | undefined };
    });
}

function plannerFor(extract: FeatureCollection, extent: BBox | undefined, homes: HomeInput[], config: Partial<PlannerConfig> = {}): Planner {
  const planner = new Planner(buildRoadModel(extract, { extent }), config);
  planner.setHomes(homes);
  return planner;
}

function pair(planner: Planner, host: string, candidate: string) {
  const plan = planner.plan(host);
  return [...plan.members, ...plan.rejected].find((p) => p.candidateId === candidate);
}

describe('German street (Kirchberg an der Iller)', () => {
  const extract = load('german-street.geojson');
  const bounds: BBox = [10.068, 48.135, 10.071, 48.137]; // the .osm file's <bounds>
  const homes = buildingHomes(extract);
  // A small test extract: no coverage margin (SPEC §2.7-7).
  const planner = plannerFor(extract, bounds, homes, { coverageMarginM: 0 });

  it('every building is a home; the ones 1.6 m and 3.6 m from the extract edge are not "on a road" (the ring is no road)', () => {
    expect(homes).toHaveLength(32);
    expect(planner.homes().every((h) => h.status === 'ok')).toBe(true);
  });

  it('a private driveway between two yards does not block them', () => {
    const haydn6 = 'way/275490756';
    const shed = 'way/277881324';
    const driveway = extract.features.find((f) => f.id === 'way/761947197') as Feature<LineString>;
    const line: LineString = { type: 'LineString', coordinates: [planner.home(haydn6)!.lonLat!, planner.home(shed)!.lonLat!] };
    expect(lineIntersect(line, driveway).features.length).toBeGreaterThan(0);
    expect(pair(planner, haydn6, shed)).toMatchObject({ reason: 'direct', qualified: true });
  });

  it('across the Haydnstraße dead end: round the turning circle in same-block, rejected in line-of-sight', () => {
    const haydn6 = 'way/275490756';
    const haydn4 = 'way/275490761';
    const around = pair(planner, haydn6, haydn4)!;
    expect(around).toMatchObject({ lineClear: false, sameBlock: true, pathM: expect.any(Number) });
    expect(['detour', 'capacity']).toContain(around.reason);
    expect(around.pathM! / around.distM).toBeLessThan(1.5);
    const strict = plannerFor(extract, bounds, homes, { coverageMarginM: 0, adjacency: 'line-of-sight' });
    expect(pair(strict, haydn6, haydn4)).toMatchObject({ reason: 'crosses_road', qualified: false });
  });

  it('tracks are no barriers either', () => {
    const track = extract.features.find((f) => f.id === 'way/123874631') as Feature<LineString>;
    const [a, b] = ['way/628913519', 'way/514001390'];
    const line: LineString = { type: 'LineString', coordinates: [planner.home(a)!.lonLat!, planner.home(b)!.lonLat!] };
    expect(lineIntersect(line, track).features.length).toBeGreaterThan(0);
    expect(pair(planner, a, b)!.lineClear).toBe(true);
  });
});

describe('West Oakland grid', () => {
  const extract = load('west-oakland.geojson');
  const bounds: BBox = [-122.30258, 37.80615, -122.29825, 37.80914];
  const homes = buildingHomes(extract);
  const planner = plannerFor(extract, bounds, homes, { coverageMarginM: 0 });

  it('the street grid makes blocks; buildings past the extract edge are outside coverage', () => {
    expect(planner.model.stats.faces).toBeGreaterThan(4);
    const outside = planner.homes().filter((h) => h.status === 'outside_coverage');
    expect(outside.map((h) => h.id)).toEqual(['way/395356581', 'way/52538639']);
  });

  it('homes in one block qualify; homes across a street are in different blocks; every plan is well-formed', () => {
    let qualified = 0;
    let differentBlock = 0;
    for (const host of planner.homes().filter((h) => h.status === 'ok')) {
      const plan = planner.plan(host.id);
      expect(plan.members.length).toBeLessThanOrEqual(4);
      for (const m of plan.members) expect(planner.home(m.candidateId)!.block).toBe(host.block);
      for (const r of plan.rejected.filter((r) => r.reason === 'different_block')) expect(planner.home(r.candidateId)!.block).not.toBe(host.block);
      qualified += plan.members.length;
      differentBlock += plan.rejected.filter((r) => r.reason === 'different_block').length;
    }
    expect(qualified).toBeGreaterThan(20);
    expect(differentBlock).toBeGreaterThan(5);
  });

  it('footways and parking aisles do not split blocks; the alley counts only with its switch', () => {
    const withAlleys = buildRoadModel(extract, { extent: bounds, barriers: { serviceAlleysAreBarriers: true } });
    expect(withAlleys.stats.barrierWays).toBe(planner.model.stats.barrierWays + 1);
  });
});

describe('Rochester (the original Mowthos homes)', () => {
  const extract = load('rochester-roads.geojson');
  // County points and the two Mapbox-geocoded rows the original committed (SPEC §1.8, data README).
  const homes: HomeInput[] = [
    { id: '931-county', address: '931 STONE SLOPE LN SW', city: 'ROCHESTER', state: 'MN', lat: 44.0119495, lon: -92.5069581, geocodeQuality: 'rooftop' },
    { id: '937', address: '937 STONE SLOPE LN SW', city: 'ROCHESTER', lat: 44.0117071, lon: -92.507216, geocodeQuality: 'rooftop' },
    { id: '943', address: '943 STONE SLOPE LN SW', city: 'ROCHESTER', lat: 44.0114115, lon: -92.5070947, geocodeQuality: 'rooftop' },
    { id: '949', address: '949 STONE SLOPE LN SW', city: 'ROCHESTER', lat: 44.0114648, lon: -92.5066084, geocodeQuality: 'rooftop' },
    { id: '955', address: '955 STONE SLOPE LN SW', city: 'ROCHESTER', lat: 44.0115888, lon: -92.5063015, geocodeQuality: 'rooftop' },
    { id: '931-mapbox', address: '931 Stone Slope Ln SW', city: 'Rochester', state: 'MN', lat: 44.011942, lon: -92.506961, geocodeQuality: 'point' },
    { id: '925-mapbox', address: '925 Stone Slope Ln SW', city: 'Rochester', state: 'Minnesota', lat: 44.012024, lon: -92.506588, geocodeQuality: 'point' },
    { id: 'golfview', address: '3110 GOLFVIEW LN SW', city: 'ROCHESTER', lat: 44.02191, lon: -92.51042 },
    { id: 'placeholder', address: '123 Main St', city: 'Rochester', lat: 44.0123, lon: -92.1234 },
  ];
  const planner = plannerFor(extract, undefined, homes);

  it('the self-duplicate is gone: the Mapbox 931 and the county 931 are one home, never each other\'s neighbour', () => {
    expect(planner.home('931-mapbox')).toMatchObject({ status: 'duplicate', canonicalId: '931-county' });
    const plan = planner.plan('931-mapbox');
    expect(plan.warnings).toContain('host_duplicate_of:931-county');
    expect(plan.members.map((m) => m.candidateId)).not.toContain('931-county');
    expect(plan.rejected.find((r) => r.candidateId === '931-mapbox')).toMatchObject({ reason: 'duplicate_of_host' });
  });

  it('the original pair (931 → 925 Stone Slope Ln SW) qualifies directly', () => {
    expect(pair(planner, '931-county', '925-mapbox')).toMatchObject({ reason: 'direct', qualified: true });
  });

  it('Stone Slope Ct: 931 → 949 round the cul-de-sac tip, about +11 % (the original rejected it)', () => {
    const around = pair(planner, '931-county', '949')!;
    expect(around).toMatchObject({ reason: 'detour', qualified: true, lineClear: false, sameBlock: true });
    expect(around.pathM! / around.distM).toBeGreaterThan(1.11 * 0.97);
    expect(around.pathM! / around.distM).toBeLessThan(1.11 * 1.03);
    const strict = plannerFor(extract, undefined, homes, { adjacency: 'line-of-sight' });
    expect(pair(strict, '931-county', '949')).toMatchObject({ reason: 'crosses_road' });
  });

  it('the cluster is capped at the host plus four, in a route that starts and ends at the host', () => {
    const plan = planner.plan('931-county');
    expect(plan.members).toHaveLength(4);
    expect(plan.rejected.filter((r) => r.reason === 'capacity').length).toBeGreaterThan(0);
    expect([...plan.route!.order].sort()).toEqual(plan.members.map((m) => m.candidateId).sort());
    expect(plan.route!.lengthM).toBeGreaterThan(2 * Math.max(...plan.members.map((m) => m.pathM!)) - 0.01);
  });

  it('the original\'s placeholder row, 30 km away, is outside the road data: never a host or a neighbour', () => {
    expect(planner.home('placeholder')!.status).toBe('outside_coverage');
    expect(planner.plan('placeholder')).toMatchObject({ members: [], warnings: ['host_outside_coverage'] });
  });

  it('a lone home far from the others has an empty cluster, not an error', () => {
    expect(planner.plan('golfview')).toMatchObject({ hostStatus: 'ok', members: [], route: null });
  });

  it('shuffled roads and homes give byte-identical plans', () => {
    const shuffled = { ...extract, features: [...extract.features].reverse() };
    const again = plannerFor(shuffled, undefined, [...homes].reverse());
    const ids = homes.map((h) => h.id);
    expect(JSON.stringify(again.planAll(ids))).toBe(JSON.stringify(planner.planAll(ids)));
  });
});
