/**
 * Home preparation (SPEC §2.5 B): the point a home stands on, its address identity, and what
 * the road model says about the point — outside the data, on a road, which block.
 *
 * @module
 */
import { pointOnFeature } from '@turf/turf';
import type { Polygon } from 'geojson';
import { addressKey } from './addresses.js';
import type { RoadModel } from './model.js';
import type { LonLat, XY } from './plane.js';
import type { GeocodeQuality, HomeInput, HomeStatus, PlannerConfig } from './types.js';

/** A home's own facts, before duplicates are merged. */
export interface LocatedHome {
  input: HomeInput;
  lonLat: LonLat | null;
  xy: XY | null;
  key: string | null;
  /** The status from geometry alone (duplicates are decided across homes). */
  status: Exclude<HomeStatus, 'duplicate'>;
  block: number;
  roadDistanceM: number;
  warnings: string[];
}

const QUALITY_RANK: Record<GeocodeQuality, number> = { rooftop: 0, parcel: 1, point: 2, interpolated: 3, street: 4, unknown: 5 };
const IMPRECISE = new Set<GeocodeQuality>(['interpolated', 'street']);

/** Merged duplicates further apart than this are reported: one of the geocodes is wrong. */
export const GEOCODE_CONFLICT_M = 25;

export function locateHome(model: RoadModel, input: HomeInput, config: PlannerConfig): LocatedHome {
  const warnings: string[] = [];
  const lonLat = pointOf(input, warnings);
  const key = input.address?.trim() ? addressKey(input.address, input.city ?? '') : null;
  if (input.geocodeQuality && IMPRECISE.has(input.geocodeQuality)) warnings.push('geocode_imprecise');
  if (!lonLat) return { input, lonLat, xy: null, key, status: 'no_geocode', block: -1, roadDistanceM: Infinity, warnings };
  const xy = model.plane.toXY(lonLat);
  const roadDistanceM = model.roadDistance(xy[0], xy[1]);
  const status = model.insideBy(xy[0], xy[1]) < config.coverageMarginM ? 'outside_coverage' : roadDistanceM < config.roadHalfWidthM ? 'on_road' : 'ok';
  return { input, lonLat, xy, key, status, block: model.blockAt(lonLat), roadDistanceM, warnings };
}

/** The home a group of same-address homes keeps: the best geocode, then one with a point, then the smallest id. */
export function canonicalOf(group: LocatedHome[]): LocatedHome {
  return [...group].sort(
    (a, b) =>
      rank(a) - rank(b) || Number(a.lonLat === null) - Number(b.lonLat === null) || (a.input.id < b.input.id ? -1 : a.input.id > b.input.id ? 1 : 0),
  )[0]!;
}

const rank = (home: LocatedHome) => QUALITY_RANK[home.input.geocodeQuality ?? 'unknown'] ?? QUALITY_RANK.unknown;

/** A footprint's point-on-feature, else a finite lat/lon in range, else null (`no_geocode`; never a placeholder). */
function pointOf(input: HomeInput, warnings: string[]): LonLat | null {
  if (input.footprint) {
    if (isPolygon(input.footprint)) return pointOnFeature(input.footprint).geometry.coordinates as LonLat;
    warnings.push('footprint_invalid');
  }
  const { lat, lon } = input;
  if (typeof lat !== 'number' || typeof lon !== 'number' || !Number.isFinite(lat) || !Number.isFinite(lon)) return null;
  if (lat < -90 || lat > 90 || lon < -180 || lon > 180) return null;
  return [lon, lat];
}

function isPolygon(value: Polygon): boolean {
  const ring = value.type === 'Polygon' && Array.isArray(value.coordinates) ? value.coordinates[0] : undefined;
  return (
    Array.isArray(ring) &&
    ring.length >= 4 &&
    ring.every((p) => Array.isArray(p) && p.length >= 2 && Number.isFinite(p[0]) && Number.isFinite(p[1]) && Math.abs(p[0]!) <= 180 && Math.abs(p[1]!) <= 90)
  );
}
