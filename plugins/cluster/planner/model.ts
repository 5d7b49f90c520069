/**
 * The road model (SPEC §2.5 A): an extract's barrier ways, clipped to the extent and closed by
 * its ring, noded, polygonized into blocks, and indexed for the questions the planner asks —
 * which block is a point in, how far is the nearest road, is a segment clear of every road.
 * Built once per extract; everything after that is a query.
 *
 * @module
 */
import { bboxClip, booleanPointInPolygon, polygonize } from '@turf/turf';
import Flatbush from 'flatbush';
import KDBush from 'kdbush';
import type { Feature, FeatureCollection, LineString, MultiLineString, Polygon, Position } from 'geojson';
import { barrierWays, DEFAULT_BARRIER_OPTIONS, type BarrierOptions, type OsmTags } from './barriers.js';
import { pointSegmentDistance2 } from './geometry.js';
import { SegmentGrid } from './grid.js';
import { nodeLines, type BarrierLine } from './noding.js';
import { LocalPlane, type LonLat } from './plane.js';
import type { BBox } from './types.js';

export interface RoadModelStats {
  /** Line features in the input. */
  ways: number;
  /** Of those, the barriers (§2.4). */
  barrierWays: number;
  /** Noded segments, extent ring included. */
  segments: number;
  /** Blocks (polygonize faces). */
  faces: number;
  buildMs: number;
}

export interface BuildOptions {
  /** The data's extent; defaults to the bbox of the input lines. Its ring closes the blocks. */
  extent?: BBox;
  barriers?: Partial<BarrierOptions>;
}

/** Properties of the road features a model hands back (for maps). */
export interface RoadProperties {
  highway: string;
  name: string | null;
  osmId: string | null;
}

/** The input cannot make a model: no line features, or an extent that is not a box. */
export class RoadDataError extends Error {
  override name = 'RoadDataError';
}

const RING = -1;

/** Unit directions at k·45°: the octagon of detour waypoints round a barrier vertex. */
export const OCTAGON = Array.from({ length: 8 }, (_, k) => [Math.cos((k * Math.PI) / 4), Math.sin((k * Math.PI) / 4)] as const);

export function buildRoadModel(roads: FeatureCollection, options: BuildOptions = {}): RoadModel {
  const started = performance.now();
  const lines = roads.features.filter((f) => f.geometry?.type === 'LineString' || f.geometry?.type === 'MultiLineString');
  const extent = options.extent ?? linesBBox(lines);
  if (!extent) throw new RoadDataError('the road data has no line features');
  assertBox(extent);
  const ways = sortWays(barrierWays(roads, { ...DEFAULT_BARRIER_OPTIONS, ...options.barriers }));
  const segments = nodeLines([...ways.flatMap((way, index) => clippedLines(way, index, extent)), { way: RING, coordinates: ringOf(extent) }]);
  const faces = polygonize({ type: 'FeatureCollection', features: segments.map((s) => lineFeature([s.a, s.b], {})) }).features.map((f) => f.geometry);
  return new RoadModel(extent, segments, faces, ways.map(roadProperties), { ways: lines.length, barrierWays: ways.length, started });
}

export class RoadModel {
  readonly plane: LocalPlane;
  readonly stats: RoadModelStats;
  /** Segments in the plane: x1, y1, x2, y2 per segment. */
  readonly #xy: Float64Array;
  readonly #way: Int32Array;
  readonly #segmentIndex: Flatbush;
  readonly #grid: SegmentGrid;
  readonly #vertices: Float64Array;
  readonly #vertexIndex: KDBush;
  readonly #faces: { polygon: Polygon; area: number }[];
  readonly #faceIndex: Flatbush | null;
  readonly #ways: RoadProperties[];
  readonly #box: [number, number, number, number];
  readonly #waypointMasks = new Map<number, Int16Array>();
  /** Directions (radians) of the segments at each vertex. */
  readonly #incident: number[][];

  constructor(
    readonly bbox: BBox,
    segments: { a: LonLat; b: LonLat; way: number }[],
    faces: Polygon[],
    ways: RoadProperties[],
    counts: { ways: number; barrierWays: number; started: number },
  ) {
    this.plane = LocalPlane.around(bbox);
    this.#ways = ways;
    const [x0, y0] = this.plane.toXY([bbox[0], bbox[1]]);
    const [x1, y1] = this.plane.toXY([bbox[2], bbox[3]]);
    this.#box = [x0, y0, x1, y1];

    this.#xy = new Float64Array(segments.length * 4);
    this.#way = new Int32Array(segments.length);
    this.#segmentIndex = new Flatbush(Math.max(segments.length, 1));
    const vertices = new Map<LonLat, number>();
    segments.forEach((s, i) => {
      const [ax, ay] = this.plane.toXY(s.a);
      const [bx, by] = this.plane.toXY(s.b);
      this.#xy.set([ax, ay, bx, by], i * 4);
      this.#way[i] = s.way;
      this.#segmentIndex.add(Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by));
      if (!vertices.has(s.a)) vertices.set(s.a, vertices.size);
      if (!vertices.has(s.b)) vertices.set(s.b, vertices.size);
    });
    if (segments.length === 0) this.#segmentIndex.add(Infinity, Infinity, Infinity, Infinity);
    this.#segmentIndex.finish();
    this.#grid = new SegmentGrid(this.#xy, this.#box);

    this.#incident = Array.from({ length: vertices.size }, () => []);
    for (const s of segments) {
      const [a, b] = [vertices.get(s.a)!, vertices.get(s.b)!];
      const [ax, ay] = this.plane.toXY(s.a);
      const [bx, by] = this.plane.toXY(s.b);
      this.#incident[a]!.push(Math.atan2(by - ay, bx - ax));
      this.#incident[b]!.push(Math.atan2(ay - by, ax - bx));
    }
    this.#vertices = new Float64Array(vertices.size * 2);
    this.#vertexIndex = new KDBush(Math.max(vertices.size, 1));
    for (const [lonLat, i] of vertices) {
      const [x, y] = this.plane.toXY(lonLat);
      this.#vertices[i * 2] = x;
      this.#vertices[i * 2 + 1] = y;
      this.#vertexIndex.add(x, y);
    }
    if (vertices.size === 0) this.#vertexIndex.add(Infinity, Infinity);
    this.#vertexIndex.finish();

    this.#faces = faces.map((polygon) => ({ polygon, area: this.#planarArea(polygon.coordinates[0]!) }));
    this.#faceIndex = faces.length ? new Flatbush(faces.length) : null;
    for (const { polygon } of this.#faces) {
      const [w, s, e, n] = ringBBox(polygon.coordinates[0]!);
      this.#faceIndex!.add(w, s, e, n);
    }
    this.#faceIndex?.finish();
    const buildMs = Math.round(performance.now() - counts.started);
    this.stats = { ways: counts.ways, barrierWays: counts.barrierWays, segments: segments.length, faces: faces.length, buildMs };
  }

  /** The smallest block containing the point, or −1 (the unbounded face). */
  blockAt(lonLat: LonLat): number {
    if (!this.#faceIndex) return -1;
    let best = -1;
    for (const i of this.#faceIndex.search(lonLat[0], lonLat[1], lonLat[0], lonLat[1])) {
      const face = this.#faces[i]!;
      if (best >= 0 && (face.area > this.#faces[best]!.area || (face.area === this.#faces[best]!.area && i > best))) continue;
      if (booleanPointInPolygon(lonLat, face.polygon)) best = i;
    }
    return best;
  }

  blockPolygon(block: number): Polygon | null {
    return this.#faces[block]?.polygon ?? null;
  }

  /** Whether the segment a–b keeps at least `halfWidth` from every barrier segment (the extent ring included). */
  isClear(ax: number, ay: number, bx: number, by: number, halfWidth: number): boolean {
    return this.#grid.isClear(ax, ay, bx, by, halfWidth);
  }

  /** Whether the point keeps at least `halfWidth` from every barrier segment (the extent ring included). */
  isPointClear(x: number, y: number, halfWidth: number): boolean {
    return this.isClear(x, y, x, y, halfWidth);
  }

  /** Distance from a point to the nearest road centreline (the extent ring is not a road), Infinity without roads. */
  roadDistance(x: number, y: number): number {
    const [x0, y0, x1, y1] = this.#box;
    const reach = Math.hypot(x1 - x0, y1 - y0) + Math.hypot(x - (x0 + x1) / 2, y - (y0 + y1) / 2);
    for (let r = 16; ; r *= 4) {
      let best = Infinity;
      this.#segmentIndex.search(x - r, y - r, x + r, y + r, (i) => {
        if (this.#way[i] !== RING) best = Math.min(best, Math.sqrt(pointSegmentDistance2(x, y, this.#xy[i * 4]!, this.#xy[i * 4 + 1]!, this.#xy[i * 4 + 2]!, this.#xy[i * 4 + 3]!)));
        return false;
      });
      if (best <= r) return best;
      if (r > reach) return Infinity;
    }
  }

  /** How far a point is inside the extent (negative outside). */
  insideBy(x: number, y: number): number {
    const [x0, y0, x1, y1] = this.#box;
    return Math.min(x - x0, x1 - x, y - y0, y1 - y);
  }

  /** Barrier vertices (noded segment ends, ring corners included) in a box of the plane. */
  verticesIn(minX: number, minY: number, maxX: number, maxY: number): number[] {
    return this.#vertexIndex.range(minX, minY, maxX, maxY).sort((a, b) => a - b);
  }

  /** Vertex coordinates in the plane: x, y per vertex (read only). */
  get vertices(): Float64Array {
    return this.#vertices;
  }

  /**
   * Which of the eight waypoints round vertex `v` (at `radius`, k·45°) a shortest path can bend
   * at, as a bit mask: those that keep `halfWidth` from every barrier and lie on a reflex side of
   * the vertex (between two of its roads more than 180° apart, or anywhere round a dead-end tip).
   * A shortest path never bends into a concave corner, so the others only slow the search.
   * Cached: the same vertices serve many detour searches.
   */
  detourWaypoints(v: number, radius: number, halfWidth: number): number {
    let cache = this.#waypointMasks.get(radius);
    if (!cache) this.#waypointMasks.set(radius, (cache = new Int16Array(this.#vertices.length / 2).fill(-1)));
    if (cache[v]! >= 0) return cache[v]!;
    let mask = 0;
    const roads = this.#incident[v]!.sort((a, b) => a - b);
    for (let k = 0; k < 8; k++) {
      const [dx, dy] = OCTAGON[k]!;
      if (isReflex(roads, Math.atan2(dy, dx)) && this.isPointClear(this.#vertices[v * 2]! + dx * radius, this.#vertices[v * 2 + 1]! + dy * radius, halfWidth)) mask |= 1 << k;
    }
    cache[v] = mask;
    return mask;
  }

  /** The barrier road segments within `radiusM` of a point, as lon/lat lines with their way's tags (for maps). */
  barriersNear(lonLat: LonLat, radiusM: number): Feature<LineString, RoadProperties>[] {
    const [x, y] = this.plane.toXY(lonLat);
    const near: Feature<LineString, RoadProperties>[] = [];
    this.#segmentIndex.search(x - radiusM, y - radiusM, x + radiusM, y + radiusM, (i) => {
      const xy = this.#xy;
      const way = this.#way[i]!;
      if (way !== RING && pointSegmentDistance2(x, y, xy[i * 4]!, xy[i * 4 + 1]!, xy[i * 4 + 2]!, xy[i * 4 + 3]!) <= radiusM * radiusM) {
        near.push(lineFeature([this.plane.toLonLat([xy[i * 4]!, xy[i * 4 + 1]!]), this.plane.toLonLat([xy[i * 4 + 2]!, xy[i * 4 + 3]!])], this.#ways[way]!));
      }
      return false;
    });
    return near;
  }

  #planarArea(ring: Position[]): number {
    let twice = 0;
    for (let i = 1; i < ring.length; i++) {
      const [ax, ay] = this.plane.toXY(ring[i - 1] as LonLat);
      const [bx, by] = this.plane.toXY(ring[i] as LonLat);
      twice += ax * by - bx * ay;
    }
    return Math.abs(twice) / 2;
  }
}

/** Whether direction `angle` lies in a gap wider than 180° between the sorted road directions at a vertex. */
function isReflex(roads: number[], angle: number): boolean {
  if (roads.length < 2) return true;
  let after = roads.findIndex((r) => r > angle);
  if (after < 0) after = 0;
  const before = (after + roads.length - 1) % roads.length;
  const gap = (roads[after]! - roads[before]! + 2 * Math.PI) % (2 * Math.PI) || 2 * Math.PI;
  return gap > Math.PI;
}

type Way = Feature<LineString | MultiLineString, OsmTags>;

/** Ways in a fixed order whatever the input order, so a shuffled extract builds the same model. */
function sortWays(ways: Way[]): Way[] {
  const keyed = ways.map((way) => ({ way, key: `${osmId(way) ?? ''}|${JSON.stringify(way.geometry.coordinates)}` }));
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return keyed.map((k) => k.way);
}

function clippedLines(way: Way, index: number, extent: BBox): BarrierLine[] {
  const parts = way.geometry.type === 'LineString' ? [way.geometry.coordinates] : way.geometry.coordinates;
  return parts.flatMap((coordinates) => {
    if (coordinates.every(([lon, lat]) => lon! >= extent[0] && lon! <= extent[2] && lat! >= extent[1] && lat! <= extent[3])) {
      return [{ way: index, coordinates: coordinates as LonLat[] }];
    }
    const clipped = bboxClip({ type: 'LineString', coordinates }, extent).geometry;
    const pieces = clipped.type === 'LineString' ? [clipped.coordinates] : clipped.type === 'MultiLineString' ? clipped.coordinates : [];
    return pieces.filter((p) => p.length >= 2).map((p) => ({ way: index, coordinates: p as LonLat[] }));
  });
}

function ringOf([w, s, e, n]: BBox): LonLat[] {
  return [[w, s], [e, s], [e, n], [w, n], [w, s]];
}

function linesBBox(lines: Feature[]): BBox | null {
  const box: BBox = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of lines) {
    const geometry = f.geometry as LineString | MultiLineString;
    const parts = geometry.type === 'LineString' ? [geometry.coordinates] : geometry.coordinates;
    for (const [lon, lat] of parts.flat()) {
      box[0] = Math.min(box[0], lon!);
      box[1] = Math.min(box[1], lat!);
      box[2] = Math.max(box[2], lon!);
      box[3] = Math.max(box[3], lat!);
    }
  }
  return Number.isFinite(box[0]) ? box : null;
}

function assertBox([w, s, e, n]: BBox): void {
  const finite = [w, s, e, n].every(Number.isFinite);
  if (!finite || w >= e || s >= n || w < -180 || e > 180 || s < -90 || n > 90) throw new RoadDataError('the extent must be [west, south, east, north] with west < east and south < north');
}

function ringBBox(ring: Position[]): [number, number, number, number] {
  let w = Infinity, s = Infinity, e = -Infinity, n = -Infinity;
  for (const [lon, lat] of ring) {
    w = Math.min(w, lon!);
    s = Math.min(s, lat!);
    e = Math.max(e, lon!);
    n = Math.max(n, lat!);
  }
  return [w, s, e, n];
}

function osmId(way: Way): string | null {
  const p = way.properties ?? {};
  const id = p['@id'] ?? p.id ?? way.id;
  return id === undefined || id === null ? null : String(id);
}

function roadProperties(way: Way): RoadProperties {
  const name = way.properties?.name;
  return { highway: String(way.properties?.highway ?? ''), name: typeof name === 'string' ? name : null, osmId: osmId(way) };
}

function lineFeature<P>(coordinates: LonLat[], properties: P): Feature<LineString, P> {
  return { type: 'Feature', properties, geometry: { type: 'LineString', coordinates } };
}
