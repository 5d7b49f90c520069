/**
 * The planner's vocabulary (SPEC Part 2 §2.2): what goes in, what comes out, and the knobs.
 *
 * @module
 */
import type { Polygon } from 'geojson';
import type { BarrierOptions } from './barriers.js';

export type BBox = [west: number, south: number, east: number, north: number];

/** How a home's point was found; the better ones win when duplicates merge. */
export type GeocodeQuality = 'rooftop' | 'parcel' | 'point' | 'interpolated' | 'street' | 'unknown';

/** A home (or an address point) as the planner sees it. */
export interface HomeInput {
  /** Stable id; outputs are sorted by it where distances tie. */
  id: string;
  /** Street line, e.g. `931 Stone Slope Ln SW`; homes with the same normalised street and city are one home. */
  address?: string | null;
  city?: string | null;
  state?: string | null;
  lat?: number | null;
  lon?: number | null;
  /** The building's outline; when given, its point-on-feature is the home's point (it wins over lat/lon). */
  footprint?: Polygon | null;
  geocodeQuality?: GeocodeQuality | null;
}

export interface PlannerConfig extends BarrierOptions {
  /** Candidates further than this from the host are out (inclusive: `d ≤ radiusM`). */
  radiusM: number;
  /** Homes in a cluster, the host included. */
  maxClusterSize: number;
  /** `same-block`: same block and a clear line or a short detour; `line-of-sight`: the original's rule. */
  adjacency: 'same-block' | 'line-of-sight';
  /** A mower's path must keep this far from every road centreline. */
  roadHalfWidthM: number;
  /** A detour may be at most this many times the straight distance. */
  maxDetourFactor: number;
  /** Barrier vertices a detour search may consider; more and the pair is rejected. */
  maxDetourVertices: number;
  /** Distinct addresses closer than this share a lot (a duplex) and qualify without a road test. */
  colocatedM: number;
  /** A home must be at least this far inside the road data's extent. */
  coverageMarginM: number;
  /** Members up to which the route is found by trying every order. */
  routeExactMaxN: number;
}

export const DEFAULT_PLANNER_CONFIG: Readonly<PlannerConfig> = Object.freeze({
  radiusM: 80,
  maxClusterSize: 5,
  adjacency: 'same-block',
  roadHalfWidthM: 5,
  maxDetourFactor: 1.5,
  maxDetourVertices: 200,
  colocatedM: 2,
  coverageMarginM: 150,
  serviceAlleysAreBarriers: false,
  countPrivateRoads: true,
  routeExactMaxN: 9,
});

export type HomeStatus = 'ok' | 'no_geocode' | 'on_road' | 'outside_coverage' | 'duplicate';

/** Why a candidate is in or out: `direct`, `detour` and `colocated` qualify. */
export type Reason =
  | 'direct'
  | 'detour'
  | 'colocated'
  | 'different_block'
  | 'crosses_road'
  | 'detour_too_long'
  | 'on_road'
  | 'no_geocode'
  | 'outside_coverage'
  | 'duplicate'
  | 'duplicate_of_host'
  | 'out_of_radius'
  | 'capacity'
  /** planAll: the candidate hosts a cluster of its own. */
  | 'is_host'
  /** planAll: it qualified, but a host with a shorter path took it. */
  | 'assigned_to_other_host';

/** One candidate judged against one host. */
export interface PairResult {
  candidateId: string;
  /** Straight distance in the local plane, metres (rounded to cm). */
  distM: number;
  /** Length of the mower's path when it qualifies, else null. */
  pathM: number | null;
  reason: Reason;
  qualified: boolean;
  sameBlock: boolean;
  /** Whether the straight line is clear of roads; false when the pair was rejected before that test. */
  lineClear: boolean;
}

export interface ClusterRoute {
  /** Member ids in visiting order; the tour starts and ends at the host. */
  order: string[];
  lengthM: number;
}

export interface ClusterPlan {
  hostId: string;
  hostStatus: HomeStatus;
  /** At most `maxClusterSize − 1`, by (pathM, distM, id). */
  members: PairResult[];
  /** Every other candidate within the radius, with its reason, by (distM, id). */
  rejected: PairResult[];
  route: ClusterRoute | null;
  /** Codes such as `host_on_road`, `host_duplicate_of:<id>`, `geocode_imprecise` (the host's), `geocode_conflict:<id>`, `member_geocode_imprecise:<id>`. */
  warnings: string[];
}

/** A home after preparation (§2.5 B). */
export interface PreparedHome {
  id: string;
  status: HomeStatus;
  /** The point used, or null when there is none (`no_geocode`). */
  lonLat: [number, number] | null;
  /** Identity key (normalised street and city), null without an address. */
  addressKey: string | null;
  /** For a `duplicate`: the id of the home it is the same as. */
  canonicalId: string | null;
  /** Index of the block (face) the point is in; −1 for the unbounded face or no point. */
  block: number;
  /** Distance to the nearest road centreline in metres, Infinity without roads. */
  roadDistanceM: number;
  warnings: string[];
}
