/**
 * Which OSM ways are roads a mower must not cross (SPEC Part 2 §2.4): the drivable classes,
 * minus areas, tunnels and covered ways (the mower passes over them) and ways closed to motor
 * vehicles. Service ways, tracks, paths and the like never are; alleys and private streets
 * follow the two switches.
 *
 * @module
 */
import type { Feature, FeatureCollection, LineString, MultiLineString } from 'geojson';

export interface BarrierOptions {
  /** `service=alley` blocks a mower (default false, as osmnx's drive network). */
  serviceAlleysAreBarriers: boolean;
  /** A private street is still a street (default true; osmnx drops them). */
  countPrivateRoads: boolean;
}

export const DEFAULT_BARRIER_OPTIONS: BarrierOptions = { serviceAlleysAreBarriers: false, countPrivateRoads: true };

const ROAD_CLASSES = new Set([
  'motorway',
  'motorway_link',
  'trunk',
  'trunk_link',
  'primary',
  'primary_link',
  'secondary',
  'secondary_link',
  'tertiary',
  'tertiary_link',
  'unclassified',
  'residential',
  'living_street',
  'road',
  'busway',
]);
const PASSED_OVER = new Set(['yes', 'building_passage', 'culvert']);
const CLOSED = new Set(['private', 'no']);

export type OsmTags = Record<string, unknown>;

/** Why a way is, or is not, a barrier: for logs and for explaining a plan. */
export function barrierVerdict(tags: OsmTags, options: BarrierOptions = DEFAULT_BARRIER_OPTIONS): { barrier: boolean; why: string } {
  const highway = String(tags.highway ?? '');
  if (highway === 'service') {
    return tags.service === 'alley' && options.serviceAlleysAreBarriers ? { barrier: true, why: 'alley' } : { barrier: false, why: `service ${String(tags.service ?? 'way')}` };
  }
  if (!ROAD_CLASSES.has(highway)) return { barrier: false, why: highway ? `highway=${highway}` : 'not a highway' };
  if (tags.area === 'yes') return { barrier: false, why: 'area' };
  if (PASSED_OVER.has(String(tags.tunnel ?? '')) || tags.covered === 'yes') return { barrier: false, why: 'passed over (tunnel or covered)' };
  if (tags.motor_vehicle === 'no' || tags.motorcar === 'no') return { barrier: false, why: 'closed to motor vehicles' };
  if (CLOSED.has(String(tags.access ?? '')) && !options.countPrivateRoads) return { barrier: false, why: 'private' };
  return { barrier: true, why: `highway=${highway}` };
}

export function isBarrier(tags: OsmTags, options: BarrierOptions = DEFAULT_BARRIER_OPTIONS): boolean {
  return barrierVerdict(tags, options).barrier;
}

type Way = Feature<LineString | MultiLineString, OsmTags>;

/** The line features of `roads` that are barriers; points, polygons and non-roads are left out. */
export function barrierWays(roads: FeatureCollection, options: BarrierOptions = DEFAULT_BARRIER_OPTIONS): Way[] {
  return roads.features.filter(
    (feature): feature is Way =>
      (feature.geometry?.type === 'LineString' || feature.geometry?.type === 'MultiLineString') && isBarrier(feature.properties ?? {}, options),
  );
}
