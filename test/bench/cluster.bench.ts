/**
 * The cluster planner at scale (issue 7): a synthetic 10,000-home suburb with cul-de-sacs, and
 * Monaco (the OSRM test extract: 10,000 building points against its barrier ways). Road model
 * build, home preparation, a full re-plan, single-host plans and heap. One thread (the planner
 * is synchronous), so "one core" is what is measured.
 */
import { readFileSync } from 'node:fs';
import { pointOnFeature } from '@turf/turf';
import type { Feature, FeatureCollection, LineString } from 'geojson';
import { readOsmPbf } from '../../plugins/cluster/osm/index.js';
import { buildRoadModel, LocalPlane, Planner, type BBox, type HomeInput } from '../../plugins/cluster/planner/index.js';

const heap = () => Math.round(process.memoryUsage().heapUsed / 2 ** 20);
let peakHeap = 0;
const sampler = setInterval(() => (peakHeap = Math.max(peakHeap, heap())), 5);

function timed<T>(label: string, run: () => T, detail: (result: T) => string = () => ''): T {
  const started = performance.now();
  const result = run();
  const ms = performance.now() - started;
  peakHeap = Math.max(peakHeap, heap());
  console.log(`  ${label.padEnd(34)} ${ms.toFixed(0).padStart(6)} ms  ${detail(result)}`);
  return result;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function run(name: string, roads: FeatureCollection, extent: BBox | undefined, homes: HomeInput[]): void {
  peakHeap = heap();
  const startHeap = heap();
  console.log(`\n${name}: ${homes.length} homes, ${roads.features.length} ways`);
  const model = timed('road model (noding + polygonize)', () => buildRoadModel(roads, { extent }), (m) => `${m.stats.barrierWays} barrier ways → ${m.stats.segments} segments, ${m.stats.faces} blocks`);
  const planner = new Planner(model, { coverageMarginM: 0 });
  timed('home preparation', () => planner.setHomes(homes), () => `${planner.homes().filter((h) => h.status === 'ok').length} ok`);
  const ids = homes.map((h) => h.id);
  const hosts = ids.filter((_, i) => i % 10 === 0);
  timed('full re-plan: planAll, 1 host in 10', () => planner.planAll(hosts), (plans) => `${plans.reduce((n, p) => n + p.members.length, 0)} homes assigned to ${plans.length} hosts`);
  const everyone = timed('every home as a host: planAll', () => planner.planAll(ids), (plans) => `${plans.reduce((n, p) => n + p.members.length + p.rejected.length, 0)} pairs judged`);
  const detours = everyone.reduce((n, p) => n + p.rejected.filter((r) => r.reason === 'detour_too_long').length, 0);
  console.log(`  ${''.padEnd(34)}           (${detours} pairs failed a detour search)`);

  const times: number[] = [];
  let routes = 0;
  timed('plan() for each home (with route)', () => {
    for (const id of ids) {
      const started = performance.now();
      const plan = planner.plan(id);
      times.push(performance.now() - started);
      if (plan.route) routes++;
    }
  }, () => `${routes} routes`);
  times.sort((a, b) => a - b);
  console.log(`  single host's cluster: p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms, max ${times.at(-1)!.toFixed(2)} ms`);
  timed('move one home (upsertHome)', () => planner.upsertHome({ ...homes[0]!, id: homes[0]!.id }), (near) => `${near.length} neighbours to re-plan`);
  console.log(`  heap: ${startHeap} MiB at start, peak ${peakHeap} MiB (+${peakHeap - startHeap})`);
}

/**
 * A suburb: a grid of 120 × 100 m blocks of residential streets (one way per block edge), a
 * dead-end stub into every third block, driveways and footways that are no barriers, and 16
 * homes round each block 12 m inside the kerb.
 */
function suburb(blocksPerSide: number): { roads: FeatureCollection; homes: HomeInput[]; extent: BBox } {
  const plane = new LocalPlane([-92.5, 44.0]);
  const W = 120;
  const H = 100;
  const at = (x: number, y: number) => plane.toLonLat([x, y]);
  const way = (points: [number, number][], tags: Record<string, string>): Feature<LineString> => ({
    type: 'Feature',
    properties: tags,
    geometry: { type: 'LineString', coordinates: points.map(([x, y]) => at(x, y)) },
  });
  const features: Feature<LineString>[] = [];
  const homes: HomeInput[] = [];
  const residential = { highway: 'residential' };
  for (let i = 0; i <= blocksPerSide; i++) {
    for (let j = 0; j < blocksPerSide; j++) {
      features.push(way([[i * W, j * H], [i * W, (j + 1) * H]], residential));
      features.push(way([[j * W, i * H], [(j + 1) * W, i * H]], residential));
    }
  }
  for (let i = 0; i < blocksPerSide; i++) {
    for (let j = 0; j < blocksPerSide; j++) {
      const [x0, y0] = [i * W, j * H];
      const n = i * blocksPerSide + j;
      if (n % 3 === 0) features.push(way([[x0 + W / 2, y0], [x0 + W / 2, y0 + 55]], { highway: 'residential', name: 'Court' }));
      features.push(way([[x0, y0 + H / 2], [x0 + 25, y0 + H / 2]], { highway: 'service', service: 'driveway', access: 'private' }));
      if (n % 5 === 0) features.push(way([[x0 + 10, y0 + 10], [x0 + W - 10, y0 + H - 10]], { highway: 'footway' }));
      for (let k = 0; k < 16; k++) {
        const side = k % 4;
        const t = (Math.floor(k / 4) + 0.5) / 4;
        const [x, y] = side === 0 ? [x0 + 12 + t * (W - 24), y0 + 12] : side === 1 ? [x0 + W - 12, y0 + 12 + t * (H - 24)] : side === 2 ? [x0 + 12 + t * (W - 24), y0 + H - 12] : [x0 + 12, y0 + 12 + t * (H - 24)];
        const [lon, lat] = at(x, y);
        homes.push({ id: `h${String(n * 16 + k).padStart(5, '0')}`, lat, lon, address: `${n * 16 + k} Suburb Way`, city: 'Bench' });
      }
    }
  }
  const size = blocksPerSide;
  return { roads: { type: 'FeatureCollection', features }, homes, extent: [...at(-1, -1), ...at(size * W + 1, size * H + 1)] as BBox };
}

const town = suburb(25);
run('synthetic suburb (25 × 25 blocks)', town.roads, town.extent, town.homes);

const monaco = readOsmPbf(readFileSync(new URL('./data/monaco.osm.pbf', import.meta.url)));
const buildings = monaco.buildings.slice(0, 10_000).map((b): HomeInput => {
  const [lon, lat] = pointOnFeature(b).geometry.coordinates as [number, number];
  return { id: String(b.properties['@id']), lat, lon };
});
run('Monaco (OSRM test extract, © OpenStreetMap contributors, ODbL)', monaco.roads, monaco.bbox ?? undefined, buildings);
clearInterval(sampler);
