/**
 * The cluster planner (SPEC Part 2): which neighbouring homes one mower can serve without
 * crossing a road. Pure TypeScript, no I/O: give it OSM road ways and homes, ask for plans.
 *
 * ```ts
 * const planner = new Planner(buildRoadModel(roads, { extent }), { adjacency: 'same-block' });
 * planner.setHomes(homes);
 * const plan = planner.plan(hostId); // members, rejected with reasons, route, warnings
 * ```
 *
 * @module
 */
export { addressKey, normaliseState, normaliseStreet } from './addresses.js';
export { barrierVerdict, barrierWays, DEFAULT_BARRIER_OPTIONS, isBarrier, type BarrierOptions, type OsmTags } from './barriers.js';
export { buildRoadModel, RoadDataError, RoadModel, type BuildOptions, type RoadModelStats, type RoadProperties } from './model.js';
export { EARTH_RADIUS_M, LocalPlane, type LonLat, type XY } from './plane.js';
export { Planner, UnknownHomeError } from './planner.js';
export * from './types.js';
