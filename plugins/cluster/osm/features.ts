/**
 * What every OSM reader produces (`OsmExtract`), and the one builder they all feed: nodes and
 * ways go in as they are read, in any order (Overpass prints ways before their nodes), and the
 * GeoJSON comes out at the end, sorted by OSM id so the same file always gives the same bytes.
 *
 * @module
 */
import type { Feature, FeatureCollection, LineString, Point, Polygon, Position } from 'geojson';

/** A way's or node's OSM tags, plus `'@id'` (`way/<id>` or `node/<id>`, as osmtogeojson writes it). */
export type OsmWayProps = { '@id': string } & Record<string, string>;

/** `[west, south, east, north]` in degrees. */
export type OsmBBox = [number, number, number, number];

export interface OsmExtract {
  /** The extract's declared bounds (`<bounds>`, the PBF HeaderBBox, a GeoJSON `bbox`), else null. */
  bbox: OsmBBox | null;
  /** Every way with a `highway` tag, as the LineString of its nodes; a way with missing nodes is one feature per unbroken run. */
  roads: FeatureCollection<LineString, OsmWayProps>;
  /** Closed ways tagged `building` (not `building=no`) with every node present: one outer ring of ≥ 4 positions, counterclockwise. */
  buildings: Feature<Polygon, OsmWayProps>[];
  /** Nodes tagged `addr:housenumber`. */
  addressPoints: Feature<Point, OsmWayProps>[];
  /**
   * `nodes` and `ways`: distinct elements read (all of them, not only those kept). `missingNodes`:
   * references from the roads and buildings above to nodes the file does not contain — the usual
   * sign of an extract clipped at its edge, or of an Overpass query without `>;`.
   */
  stats: { nodes: number; ways: number; missingNodes: number };
}

/** Input that is not what it claims to be: bad XML, bad protobuf, a truncated or oversized blob, a wrong JSON shape, an unknown file type. */
export class OsmFormatError extends Error {
  override readonly name = 'OsmFormatError';
}

/** Finite and on the globe. */
export function validLonLat(lon: number, lat: number): boolean {
  return lon >= -180 && lon <= 180 && lat >= -90 && lat <= 90;
}

/** Degrees from the readers are finite and on the globe, or the file is refused. */
export function checkLonLat(lon: number, lat: number, what: string): void {
  if (!validLonLat(lon, lat)) throw new OsmFormatError(`${what} has no valid coordinates (lon ${lon}, lat ${lat})`);
}

/** A JSON object (not an array, not null), for checking parsed input field by field. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** OSM ids are integers well inside 2^53; anything else is a damaged file. */
export function checkId(id: number, what: string): void {
  if (!Number.isSafeInteger(id)) throw new OsmFormatError(`${what} has an invalid id (${id})`);
}

/**
 * Rings wound as RFC 7946 asks (outer counterclockwise, holes clockwise), as osmtogeojson
 * writes them; OSM itself leaves the direction to the mapper.
 */
export function rfc7946Rings(rings: Position[][]): Position[][] {
  return rings.map((ring, index) => ((signedArea(ring) < 0) === (index === 0) ? [...ring].reverse() : ring));
}

function signedArea(ring: Position[]): number {
  // Relative to the first vertex: a building is tiny next to its absolute coordinates.
  const [x0, y0] = ring[0]!;
  let twice = 0;
  for (let i = 0; i + 1 < ring.length; i++) {
    twice += (ring[i]![0]! - x0!) * (ring[i + 1]![1]! - y0!) - (ring[i + 1]![0]! - x0!) * (ring[i]![1]! - y0!);
  }
  return twice / 2;
}

interface KeptWay {
  id: number;
  refs: Float64Array;
  tags: Record<string, string>;
  road: boolean;
  building: boolean;
}

/** Is a way with these tags worth keeping until the end (a road or a building)? */
export function keepsWay(tags: Readonly<Record<string, string>>): boolean {
  return tags.highway !== undefined || isBuilding(tags);
}

function isBuilding(tags: Readonly<Record<string, string>>): boolean {
  return tags.building !== undefined && tags.building !== 'no';
}

/**
 * Collects nodes and ways, then builds the extract. Node coordinates live in two growing
 * Float64Arrays indexed through one Map, so a 180k-node file costs a few MB rather than an
 * object per node; only tagged-address nodes and road/building ways keep their tags.
 */
export class ExtractBuilder {
  bbox: OsmBBox | null = null;
  readonly #index = new Map<number, number>();
  #lon = new Float64Array(1024);
  #lat = new Float64Array(1024);
  readonly #addressNodes = new Map<number, Record<string, string>>();
  readonly #ways = new Map<number, KeptWay>();
  readonly #seenWays = new Set<number>();

  /**
   * A node. Read again (Overpass can print a node twice), it takes the later position; address
   * tags are kept from whichever read carried them, since `out skel` prints nodes without tags.
   */
  addNode(id: number, lon: number, lat: number, tags?: Readonly<Record<string, string>> | null): void {
    let slot = this.#index.get(id);
    if (slot === undefined) {
      slot = this.#index.size;
      if (slot === this.#lon.length) this.#grow();
      this.#index.set(id, slot);
    }
    this.#lon[slot] = lon;
    this.#lat[slot] = lat;
    if (tags && tags['addr:housenumber'] !== undefined) this.#addressNodes.set(id, { ...tags });
  }

  /** Whether a node with this id has been read (for LocationsOnWays, which only fills gaps). */
  hasNode(id: number): boolean {
    return this.#index.has(id);
  }

  /** A way: counted always, kept (with a copy of its refs) only when it is a road or a building. */
  addWay(id: number, refs: ArrayLike<number>, tags: Readonly<Record<string, string>>): void {
    this.#seenWays.add(id);
    if (!keepsWay(tags)) {
      this.#ways.delete(id);
      return;
    }
    this.#ways.set(id, { id, refs: Float64Array.from(refs), tags: { ...tags }, road: tags.highway !== undefined, building: isBuilding(tags) });
  }

  build(): OsmExtract {
    const roads: Feature<LineString, OsmWayProps>[] = [];
    const buildings: Feature<Polygon, OsmWayProps>[] = [];
    let missingNodes = 0;
    const ways = [...this.#ways.values()].sort((a, b) => a.id - b.id);
    for (const way of ways) {
      const properties: OsmWayProps = { ...way.tags, '@id': `way/${way.id}` };
      const { runs, missing } = this.#resolve(way.refs);
      missingNodes += missing;
      if (way.road) {
        for (const run of runs) {
          if (run.length >= 2) roads.push({ type: 'Feature', properties: { ...properties }, geometry: { type: 'LineString', coordinates: run } });
        }
      }
      // A ring with a gap cannot be closed honestly, so a building with missing nodes is left out.
      const ring = missing === 0 ? runs[0] : undefined;
      if (way.building && ring && ring.length >= 4 && way.refs[0] === way.refs[way.refs.length - 1]) {
        // A way that is also a road gets its own positions, so editing one geometry never moves the other.
        const own = way.road ? ring.map((position) => [...position]) : ring;
        buildings.push({ type: 'Feature', properties: { ...properties }, geometry: { type: 'Polygon', coordinates: rfc7946Rings([own]) } });
      }
    }
    const addressPoints: Feature<Point, OsmWayProps>[] = [...this.#addressNodes.entries()]
      .sort(([a], [b]) => a - b)
      .flatMap(([id, tags]) => {
        const position = this.#position(id);
        return position ? [{ type: 'Feature' as const, properties: { ...tags, '@id': `node/${id}` }, geometry: { type: 'Point' as const, coordinates: position } }] : [];
      });
    return {
      bbox: this.bbox,
      roads: { type: 'FeatureCollection', features: roads },
      buildings,
      addressPoints,
      stats: { nodes: this.#index.size, ways: this.#seenWays.size, missingNodes },
    };
  }

  /** The way's positions, split wherever a referenced node is absent. */
  #resolve(refs: Float64Array): { runs: Position[][]; missing: number } {
    const runs: Position[][] = [];
    let run: Position[] = [];
    let missing = 0;
    for (const ref of refs) {
      const position = this.#position(ref);
      if (position) {
        run.push(position);
      } else {
        missing++;
        if (run.length > 0) runs.push(run);
        run = [];
      }
    }
    if (run.length > 0) runs.push(run);
    return { runs, missing };
  }

  #position(id: number): Position | undefined {
    const slot = this.#index.get(id);
    // Both arrays are grown together and every slot below the map's size is written.
    return slot === undefined ? undefined : [this.#lon[slot]!, this.#lat[slot]!];
  }

  #grow(): void {
    const lon = new Float64Array(this.#lon.length * 2);
    const lat = new Float64Array(this.#lat.length * 2);
    lon.set(this.#lon);
    lat.set(this.#lat);
    this.#lon = lon;
    this.#lat = lat;
  }
}
