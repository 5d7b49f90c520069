/**
 * What the planner plans on: road extracts (an area's OSM ways, from a file or from Overpass)
 * and the address pool (imported address points and the original API's registrations). Both
 * are validated here, stored, and handed to the planner cache.
 *
 * @module
 */
import { pointOnFeature } from '@turf/turf';
import type { Feature, FeatureCollection, LineString, MultiLineString, Polygon } from 'geojson';
import { sql } from 'kysely';
import { jsonb } from '../../core/db/index.js';
import { hubError } from '../../core/errors/index.js';
import { addressKey, buildRoadModel, RoadDataError, type BarrierOptions, type BBox, type RoadModel } from './planner/index.js';
import { extractInfo, type ClusterPlanning, type ExtractInfo } from './planning.js';
import type { ClusterDb } from './tables.js';

export type ExtractSource = 'geojson' | 'osm-xml' | 'osm-pbf' | 'overpass';

export interface ExtractInput {
  name: string;
  source: ExtractSource;
  /** The extent; defaults to the collection's own `bbox`, else to the roads' bbox. */
  bbox?: BBox | null;
  roads: { type: 'FeatureCollection'; bbox?: unknown; features: { type: 'Feature'; geometry: unknown; properties?: unknown; id?: unknown }[] };
  query?: string | null;
  createdBy: string | null;
}

/** An extract with what building its model found. */
export interface StoredExtract {
  extract: ExtractInfo;
  model: RoadModel;
  /**
   * True when another request had stored the same Overpass query first: `extract` is that
   * one's row (its model built from its own features), and this request's roads were dropped.
   */
  existing: boolean;
}

type Line = Feature<LineString | MultiLineString, Record<string, unknown>>;

/** Line features only, each checked; points and polygons (buildings, turning circles) are left out. */
function lineFeatures(roads: ExtractInput['roads']): Line[] {
  const problems: { path: (string | number)[]; message: string; code: string }[] = [];
  const lines: Line[] = [];
  roads.features.forEach((feature, index) => {
    const geometry = feature.geometry as { type?: unknown; coordinates?: unknown } | null;
    if (!geometry || (geometry.type !== 'LineString' && geometry.type !== 'MultiLineString')) return;
    const parts = geometry.type === 'LineString' ? [geometry.coordinates] : geometry.coordinates;
    const problem = !Array.isArray(parts) ? 'must be an array' : parts.map(lineProblem).find((p) => p !== null);
    if (problem) {
      if (problems.length < 20) problems.push({ path: ['roads', 'features', index, 'geometry', 'coordinates'], message: problem, code: 'invalid_value' });
      return;
    }
    const properties = feature.properties && typeof feature.properties === 'object' && !Array.isArray(feature.properties) ? (feature.properties as Record<string, unknown>) : {};
    const line: Line = { type: 'Feature', properties, geometry: geometry as LineString | MultiLineString };
    if (typeof feature.id === 'string' || typeof feature.id === 'number') line.id = feature.id;
    lines.push(line);
  });
  if (problems.length > 0) throw hubError('HUB_ERR_VALIDATION', 'Some road lines have invalid coordinates', { details: problems });
  return lines;
}

function lineProblem(line: unknown): string | null {
  if (!Array.isArray(line) || line.length < 2) return 'a line needs at least two positions';
  for (const position of line) {
    if (!Array.isArray(position) || position.length < 2) return 'a position is [longitude, latitude]';
    const [lon, lat] = position as unknown[];
    if (typeof lon !== 'number' || typeof lat !== 'number' || !Number.isFinite(lon) || !Number.isFinite(lat) || Math.abs(lon) > 180 || Math.abs(lat) > 90) {
      return 'a position is [longitude, latitude] in degrees';
    }
  }
  return null;
}

function declaredBBox(value: unknown): BBox | null {
  if (!Array.isArray(value) || value.length !== 4 || !value.every((v) => typeof v === 'number' && Number.isFinite(v))) return null;
  const [w, s, e, n] = value as number[];
  return w! < e! && s! < n! ? [w!, s!, e!, n!] : null;
}

/**
 * Validates an extract by building its road model, stores it (or replaces the one with `replace`
 * as id, so clusters keep pointing at it) and hands the model to the planner cache.
 */
export async function storeExtract(
  db: ClusterDb,
  planning: ClusterPlanning,
  barriers: BarrierOptions,
  input: ExtractInput,
  replace?: string,
): Promise<StoredExtract> {
  const lines = lineFeatures(input.roads);
  if (lines.length === 0) throw hubError('HUB_ERR_ROADS_UNUSABLE', 'The road data has no LineString or MultiLineString features');
  const roads: FeatureCollection<LineString | MultiLineString> = { type: 'FeatureCollection', features: lines };
  let model: RoadModel;
  try {
    model = buildRoadModel(roads, { extent: input.bbox ?? declaredBBox(input.roads.bbox) ?? undefined, barriers });
  } catch (error) {
    if (error instanceof RoadDataError) throw hubError('HUB_ERR_ROADS_UNUSABLE', `The road data cannot be used: ${error.message}`);
    throw error;
  }
  const values = {
    name: input.name,
    source: input.source,
    query: input.query ?? null,
    bbox: [...model.bbox] as BBox,
    features: jsonb(roads),
    way_count: model.stats.ways,
    barrier_count: model.stats.barrierWays,
    created_by: input.createdBy,
  };
  const columns = ['id', 'name', 'source', 'bbox', 'query', 'fetched_at', 'way_count', 'barrier_count'] as const;
  if (replace) {
    const row = await db.updateTable('cluster_road_extracts').set({ ...values, fetched_at: new Date() }).where('id', '=', replace).returning(columns).executeTakeFirst();
    if (!row) throw hubError('HUB_ERR_ROAD_EXTRACT_NOT_FOUND');
    const extract = extractInfo(row);
    await planning.add(extract, model);
    return { extract, model, existing: false };
  }
  // An Overpass query is stored once (a unique index, 0002): a request that loses the race to an
  // identical one, on this instance or another, answers with the winner's row.
  const row = await db
    .insertInto('cluster_road_extracts')
    .values(values)
    .onConflict((oc) => oc.column('query').where('query', 'is not', null).doNothing())
    .returning(columns)
    .executeTakeFirst();
  if (!row) {
    const winner = await db.selectFrom('cluster_road_extracts').select(columns).where('query', '=', values.query).executeTakeFirst();
    // Deleted between the two statements: nothing to serve.
    if (!winner) throw hubError('HUB_ERR_ROAD_EXTRACT_NOT_FOUND');
    await planning.extractChanged(winner.id);
    const built = await planning.built(winner.id);
    return { extract: built.extract, model: built.model, existing: true };
  }
  const extract = extractInfo(row);
  await planning.add(extract, model);
  return { extract, model, existing: false };
}

/** One address of an import (`POST /addresses`) or a registration. */
export interface AddressInput {
  address: string;
  city?: string;
  state?: string;
  latitude?: number | null;
  longitude?: number | null;
  footprint?: Polygon | null;
  role?: 'prospect' | 'host' | 'neighbor';
  geocodeQuality?: string;
}

/** How many rows one statement inserts. */
const CHUNK = 2000;

/**
 * Adds addresses to the pool, one row per address identity: an address already in the pool
 * (or twice in the input) is skipped. A footprint without a point gets its point-on-feature.
 *
 * @returns the ids of the rows added, and how many were already there.
 */
export async function importAddresses(
  db: ClusterDb,
  addresses: AddressInput[],
  options: { source: string; createdBy: string | null },
): Promise<{ ids: string[]; duplicates: number }> {
  const rows = addresses.map((a) => {
    let { latitude = null, longitude = null } = a;
    if ((latitude === null || longitude === null) && a.footprint) [longitude, latitude] = pointOnFeature(a.footprint).geometry.coordinates as [number, number];
    return {
      role: a.role ?? 'prospect',
      address: a.address.trim(),
      city: (a.city ?? '').trim(),
      state: (a.state ?? '').trim(),
      latitude,
      longitude,
      footprint: a.footprint ?? null,
      geocode_quality: a.geocodeQuality ?? (a.footprint ? 'rooftop' : latitude === null ? 'unknown' : 'point'),
      source: options.source,
      created_by: options.createdBy,
      address_key: addressKey(a.address, a.city ?? ''),
    };
  });
  const ids: string[] = [];
  for (let i = 0; i < rows.length; i += CHUNK) {
    // One parameter per chunk (see core/db/bulk.ts); the unique address key drops duplicates.
    const result = await sql<{ id: string }>`
      insert into cluster_addresses (role, address, city, state, latitude, longitude, footprint, geocode_quality, source, created_by, address_key)
      select role, address, city, state, latitude, longitude, footprint, geocode_quality, source, created_by, address_key
      from jsonb_to_recordset(${jsonb(rows.slice(i, i + CHUNK))}) as r(
        role text, address text, city text, state text, latitude double precision, longitude double precision,
        footprint jsonb, geocode_quality text, source text, created_by uuid, address_key text)
      on conflict (address_key) do nothing
      returning id`.execute(db);
    ids.push(...result.rows.map((r) => r.id));
  }
  return { ids, duplicates: rows.length - ids.length };
}
