/**
 * The cluster planner (SPEC Part 2): pure TypeScript, no I/O. Which homes one mower can serve
 * without crossing a road. Built in steps; so far: the local plane, the barrier filter and
 * address identity.
 *
 * @module
 */
export { addressKey, normaliseState, normaliseStreet } from './addresses.js';
export { barrierVerdict, barrierWays, DEFAULT_BARRIER_OPTIONS, isBarrier, type BarrierOptions, type OsmTags } from './barriers.js';
export { EARTH_RADIUS_M, LocalPlane, type LonLat, type XY } from './plane.js';
