/**
 * The planner on synthetic layouts with exact answers (SPEC §2.9 unit tests, §2.7 edge cases):
 * roads drawn in metres on a plane centred at 10°E 48°N, the same plane the model uses.
 */
import type { Feature, FeatureCollection, LineString } from 'geojson';
import { describe, expect, it } from 'vitest';
import { buildRoadModel, LocalPlane, Planner, RoadDataError, UnknownHomeError, type BBox, type HomeInput, type PlannerConfig } from '../../../plugins/cluster/planner/index.js';
import { nodeLines } from '../../../plugins/cluster/planner/noding.js';

const plane = new LocalPlane([10, 48]);
const at = (x: number, y: number) => plane.toLonLat([x, y]);
/** A square extent of half-size `h` metres, centred on the plane's origin (so the model's plane is this one). */
const extent = (h = 200): BBox => [...at(-h, -h), ...at(h, h)] as BBox;

function road(points: [number, number][], tags: Record<string, string> = {}): Feature<LineString> {
  return { type: 'Feature', properties: { highway: 'residential', ...tags }, geometry: { type: 'LineString', coordinates: points.map(([x, y]) => at(x, y)) } };
}
const roads = (...features: Feature<LineString>[]): FeatureCollection => ({ type: 'FeatureCollection', features });
const home = (id: string, x: number, y: number, extra: Partial<HomeInput> = {}): HomeInput => {
  const [lon, lat] = at(x, y);
  return { id, lat, lon, ...extra };
};

function planner(network: FeatureCollection, homes: HomeInput[], config: Partial<PlannerConfig> = {}, half = 200): Planner {
  const p = new Planner(buildRoadModel(network, { extent: extent(half) }), { coverageMarginM: 0, ...config });
  p.setHomes(homes);
  return p;
}

/** A 100 × 100 m square of roads, with a 60 m dead-end stub from the top edge down into it (SPEC §2.9). */
const squareWithStub = roads(
  road([[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]),
  road([[50, 100], [50, 40]]),
);

describe('noding', () => {
  const line = (points: [number, number][], way = 0) => ({ way, coordinates: points.map(([x, y]) => at(x, y)) });

  it('an X crossing without a shared node becomes four segments meeting at one point', () => {
    const segments = nodeLines([line([[-10, 0], [10, 0]]), line([[0, -10], [0, 10]], 1)]);
    expect(segments).toHaveLength(4);
    const shared = segments.flatMap((s) => [s.a, s.b]).filter((p, _, all) => all.filter((q) => q === p).length === 4);
    expect(shared.length).toBe(4); // the same coordinate object, four times
  });

  it('a T-junction splits the through road: three segments', () => {
    expect(nodeLines([line([[-10, 0], [10, 0]]), line([[0, 0], [0, 10]], 1)])).toHaveLength(3);
  });

  it('a way mapped twice (once reversed) and zero-length segments leave one copy', () => {
    expect(nodeLines([line([[0, 0], [10, 0]]), line([[10, 0], [0, 0]], 1), line([[5, 5], [5, 5]], 2)])).toHaveLength(1);
  });

  it('a collinear overlap is split at the overlapping ends', () => {
    expect(nodeLines([line([[0, 0], [20, 0]]), line([[10, 0], [30, 0]], 1)])).toHaveLength(3);
  });
});

describe('blocks (polygonize)', () => {
  it('a 2 × 1 grid gives two blocks', () => {
    const grid = roads(road([[-100, -50], [100, -50], [100, 50], [-100, 50], [-100, -50]]), road([[0, -50], [0, 50]]));
    const model = buildRoadModel(grid, { extent: [...at(-100, -50), ...at(100, 50)] as BBox });
    expect(model.stats.faces).toBe(2);
    expect(model.blockAt(at(-50, 0))).not.toBe(model.blockAt(at(50, 0)));
  });

  it('a dangle (dead end) inside a block does not split it', () => {
    const model = buildRoadModel(squareWithStub, { extent: [...at(0, 0), ...at(100, 100)] as BBox });
    expect(model.stats.faces).toBe(1);
    expect(model.blockAt(at(30, 70))).toBe(model.blockAt(at(70, 70)));
  });

  it('a ring inside a bigger block: the smallest face containing the point wins', () => {
    const nested = roads(road([[-40, -40], [40, -40], [40, 40], [-40, 40], [-40, -40]]));
    const model = buildRoadModel(nested, { extent: extent(100) });
    const inner = model.blockAt(at(0, 0));
    const outer = model.blockAt(at(80, 80));
    expect(inner).toBeGreaterThanOrEqual(0);
    expect(outer).toBeGreaterThanOrEqual(0);
    expect(inner).not.toBe(outer);
  });

  it('a bridge crossing a street without a shared node still cuts the blocks', () => {
    const crossing = roads(road([[-200, 0], [200, 0]]), road([[0, -200], [0, 200]], { bridge: 'yes' }));
    const model = buildRoadModel(crossing, { extent: extent() });
    expect(model.stats.faces).toBe(4);
  });

  it('a road cut by the extract edge is closed by the extent ring: not a dead end to walk round', () => {
    const clipped = roads(road([[0, -100], [0, 400]]), road([[-200, -100], [200, -100]]));
    const p = planner(clipped, [home('a', -20, 150), home('b', 20, 150)], { maxDetourFactor: 3 });
    expect(p.plan('a').rejected).toMatchObject([{ candidateId: 'b', reason: 'different_block' }]);
  });

  it('a tunnel is not a barrier: the street above it does not exist for the mower', () => {
    const tunnel = roads(road([[-200, 0], [200, 0]], { tunnel: 'yes' }));
    const p = planner(tunnel, [home('a', 0, 30), home('b', 0, -30)]);
    expect(p.plan('a').members.map((m) => [m.candidateId, m.reason])).toEqual([['b', 'direct']]);
  });

  it('no line features at all: no model (the planner fails closed)', () => {
    expect(() => buildRoadModel(roads())).toThrow(RoadDataError);
  });
});

describe('clearance', () => {
  const model = buildRoadModel(roads(road([[-100, 0], [100, 0]])), { extent: extent() });

  it('a segment 4.9 m from a road is blocked, one 5.1 m from it is clear', () => {
    expect(model.isClear(-10, 4.9, 10, 4.9, 5)).toBe(false);
    expect(model.isClear(-10, 5.1, 10, 5.1, 5)).toBe(true);
  });

  it('a segment that ends on the road is blocked', () => {
    expect(model.isClear(0, 30, 0, 0, 5)).toBe(false);
  });
});

describe('pairs', () => {
  it('detour round a dead end: ≈ 82.6 m (exact clear geodesic), rejected at factor 1.5, accepted at 2.5', () => {
    const homes = [home('a', 30, 70), home('b', 70, 70)];
    expect(planner(squareWithStub, homes, { maxDetourFactor: 1.5 }).plan('a').rejected).toMatchObject([{ candidateId: 'b', reason: 'detour_too_long', sameBlock: true, lineClear: false }]);
    const [member] = planner(squareWithStub, homes, { maxDetourFactor: 2.5 }).plan('a').members;
    expect(member).toMatchObject({ candidateId: 'b', reason: 'detour', distM: 40 });
    expect(Math.abs(member!.pathM! - 82.6) / 82.6).toBeLessThan(0.02);
  });

  it('line-of-sight mode rejects the pair across the stub, as the original did', () => {
    const p = planner(squareWithStub, [home('a', 30, 70), home('b', 70, 70)], { maxDetourFactor: 2.5, adjacency: 'line-of-sight' });
    expect(p.plan('a').rejected).toMatchObject([{ candidateId: 'b', reason: 'crosses_road' }]);
  });

  it('homes across a through street are in different blocks', () => {
    const p = planner(roads(road([[-200, 0], [200, 0]])), [home('a', 0, 20), home('b', 0, -20)]);
    expect(p.plan('a').rejected).toMatchObject([{ candidateId: 'b', reason: 'different_block', sameBlock: false }]);
  });

  it('radius is inclusive: 79.9 m in, 80.1 m out', () => {
    const p = planner(roads(road([[-200, -150], [200, -150]])), [home('h', 0, 0), home('in', 79.9, 0), home('out', -80.1, 0)]);
    expect(p.plan('h').members.map((m) => m.candidateId)).toEqual(['in']);
    expect(p.plan('h').rejected).toEqual([]); // further than the radius: not a candidate at all
    expect(p.hostsFor('out', ['h'])).toEqual([]);
  });

  it('footpaths, driveways and tracks never block nor cause a detour', () => {
    const paths = roads(
      road([[-200, 0], [200, 0]], { highway: 'footway' }),
      road([[10, -200], [10, 200]], { highway: 'service', service: 'driveway', access: 'private' }),
      road([[-200, 10], [200, -10]], { highway: 'track' }),
    );
    const [member] = planner(paths, [home('a', -20, 30), home('b', 30, -30)]).plan('a').members;
    expect(member).toMatchObject({ candidateId: 'b', reason: 'direct', lineClear: true });
  });

  it('alleys follow the switch', () => {
    const alley = roads(road([[-200, 0], [200, 0]], { highway: 'service', service: 'alley' }));
    const homes = [home('a', 0, 20), home('b', 0, -20)];
    expect(planner(alley, homes).plan('a').members).toHaveLength(1);
    const strict = new Planner(buildRoadModel(alley, { extent: extent(), barriers: { serviceAlleysAreBarriers: true } }), { coverageMarginM: 0 });
    strict.setHomes(homes);
    expect(strict.plan('a').rejected[0]!.reason).toBe('different_block');
  });
});

describe('home status', () => {
  const network = roads(road([[-200, -100], [200, -100]]));

  it('on_road (a point on a centreline vertex) never qualifies; as a host it gets host_on_road', () => {
    const p = planner(network, [home('road', 0, -100), home('h', 0, -60), home('near', 0, -95.1)]);
    expect(p.home('road')!.status).toBe('on_road');
    expect(p.home('near')!.status).toBe('on_road'); // 4.9 m from the centreline
    expect(p.plan('h').rejected.map((r) => [r.candidateId, r.reason])).toEqual([
      ['near', 'on_road'],
      ['road', 'on_road'],
    ]);
    expect(p.plan('road')).toMatchObject({ hostStatus: 'on_road', members: [], route: null, warnings: ['host_on_road'] });
  });

  it('no_geocode: a missing or non-finite coordinate, never a placeholder', () => {
    const p = planner(network, [{ id: 'none' }, home('nan', Number.NaN, 0), { id: 'far', lat: 91, lon: 10 }]);
    expect(p.homes().map((h) => [h.id, h.status, h.lonLat])).toEqual([
      ['far', 'no_geocode', null],
      ['nan', 'no_geocode', null],
      ['none', 'no_geocode', null],
    ]);
    expect(p.plan('none').warnings).toEqual(['host_no_geocode']);
  });

  it('outside_coverage within the margin of the extent', () => {
    const p = new Planner(buildRoadModel(network, { extent: extent() }), { coverageMarginM: 150 });
    p.setHomes([home('edge', 0, 180), home('middle', 0, 0)]);
    expect(p.home('edge')!.status).toBe('outside_coverage');
    expect(p.home('middle')!.status).toBe('ok');
  });

  it('the same address in other casing is one home (duplicate); the host is never its own neighbour', () => {
    const p = planner(network, [
      home('mapbox', 0.9, 0, { address: '931 Stone Slope Ln SW', city: 'Rochester', geocodeQuality: 'point' }),
      home('county', 0, 0, { address: '931 STONE SLOPE LN SW', city: 'ROCHESTER', geocodeQuality: 'rooftop' }),
      home('next', 0, 30, { address: '925 STONE SLOPE LN SW', city: 'ROCHESTER' }),
    ]);
    expect(p.home('mapbox')).toMatchObject({ status: 'duplicate', canonicalId: 'county' });
    const plan = p.plan('county');
    expect(plan.members.map((m) => m.candidateId)).toEqual(['next']);
    expect(plan.rejected).toMatchObject([{ candidateId: 'mapbox', reason: 'duplicate_of_host' }]);
    // Asking for the duplicate resolves to the canonical record.
    expect(p.plan('mapbox')).toMatchObject({ hostStatus: 'duplicate', members: [{ candidateId: 'next' }], warnings: ['host_duplicate_of:county'] });
  });

  it('an interpolated or street-level geocode is flagged on the home and in plans it joins', () => {
    const p = planner(network, [home('h', 0, 0), home('guess', 20, 0, { geocodeQuality: 'interpolated' })]);
    expect(p.home('guess')!.warnings).toEqual(['geocode_imprecise']);
    expect(p.plan('h').warnings).toEqual(['member_geocode_imprecise:guess']);
  });

  it('merged duplicates far apart are a geocode conflict', () => {
    const p = planner(network, [home('a', 0, 0, { address: '1 Main St', city: 'X', geocodeQuality: 'rooftop' }), home('b', 60, 0, { address: '1 MAIN STREET', city: 'x' })]);
    expect(p.home('a')!.warnings).toEqual(['geocode_conflict:b']);
  });

  it('co-located distinct addresses (a duplex) qualify as colocated and count against the cap', () => {
    const p = planner(network, [home('116', 0, 0, { address: '116 21 ST SW', city: 'R' }), home('116½', 0.5, 0, { address: '116 1/2 21 ST SW', city: 'R' })]);
    expect(p.plan('116').members).toMatchObject([{ candidateId: '116½', reason: 'colocated', pathM: 0.5 }]);
  });

  it('an unknown id is an error, not an empty plan', () => {
    expect(() => planner(network, []).plan('nope')).toThrow(UnknownHomeError);
  });
});

describe('clusters', () => {
  const open = roads(road([[-300, -290], [300, -290]]));

  it('the cap: the host and four members by path, the rest rejected as capacity', () => {
    const homes = [home('h', 0, 0), ...[10, 20, 30, 40, 50, 60].map((d) => home(`m${d}`, d, 0))];
    const plan = planner(open, homes, {}, 300).plan('h');
    expect(plan.members.map((m) => m.candidateId)).toEqual(['m10', 'm20', 'm30', 'm40']);
    expect(plan.rejected.map((r) => [r.candidateId, r.reason])).toEqual([
      ['m50', 'capacity'],
      ['m60', 'capacity'],
    ]);
  });

  it('competing hosts: each candidate goes to the nearest host with room; a host never joins another', () => {
    const homes = [home('h1', 0, 0), home('h2', 60, 0), home('c1', 20, 0), home('c2', 45, 0)];
    const plans = planner(open, homes, {}, 300).planAll(['h2', 'h1']);
    expect(plans.map((p) => [p.hostId, p.members.map((m) => m.candidateId)])).toEqual([
      ['h1', ['c1']],
      ['h2', ['c2']],
    ]);
    expect(plans[0]!.rejected.map((r) => [r.candidateId, r.reason])).toEqual([
      ['c2', 'assigned_to_other_host'],
      ['h2', 'is_host'],
    ]);
  });

  it('route: points on a circle are visited round the circle, starting with the nearer neighbour', () => {
    const points = [0, 1, 2, 3, 4, 5].map((k) => [30 * Math.cos((k * Math.PI) / 3), 30 * Math.sin((k * Math.PI) / 3)] as const);
    const homes = points.map(([x, y], k) => home(`p${k}`, x, y));
    for (const routeExactMaxN of [9, 1]) {
      const plan = planner(open, homes, { maxClusterSize: 6, routeExactMaxN }, 300).plan('p0');
      expect(plan.route!.order).toEqual(['p1', 'p2', 'p3', 'p4', 'p5']);
      expect(plan.route!.lengthM).toBeCloseTo(180, 1);
    }
  });

  it('same input in another order gives byte-identical plans', () => {
    const network = roads(road([[-300, 0], [300, 0]]), road([[0, -300], [0, 0]]), road([[100, 0], [100, 120]]));
    const homes = Array.from({ length: 60 }, (_, k) => home(`h${String(k).padStart(2, '0')}`, ((k * 37) % 260) - 130, ((k * 53) % 260) - 130));
    const ids = homes.map((h) => h.id);
    const a = planner(network, homes, {}, 300).planAll(ids.slice(0, 20));
    const shuffled = roads(...[...network.features].reverse() as Feature<LineString>[]);
    const b = planner(shuffled, [...homes].reverse(), {}, 300).planAll(ids.slice(0, 20).reverse());
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });

  it('adding or moving one home changes only its neighbourhood, and plans match a full rebuild', () => {
    const homes = [home('a', 0, 0), home('b', 30, 0), home('far', 250, 250)];
    const p = planner(open, homes, {}, 300);
    expect(p.upsertHome(home('c', 0, 40))).toEqual(['a', 'b', 'c']);
    expect(p.upsertHome(home('c', 240, 250))).toEqual(['a', 'b', 'c', 'far']);
    const rebuilt = planner(open, [...homes, home('c', 240, 250)], {}, 300);
    expect(p.plan('far')).toEqual(rebuilt.plan('far'));
    expect(p.removeHome('c')).toEqual(['far']);
    expect(p.plan('far').members).toEqual([]);
  });
});
