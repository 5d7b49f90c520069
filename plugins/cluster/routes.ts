/**
 * `/api/plugins/cluster/…`: road extracts and the address pool (administrators), plans and
 * clusters (the homes involved). Every route needs a caller; a home, plan or cluster the caller
 * cannot see answers 404, and other people's homes appear as `yard-<n>` until they agree to be
 * seen (see `clusters.ts`). Bodies are snake_case, as everywhere in the hub.
 *
 * @module
 */
import { createRoute, z } from '@hono/zod-openapi';
import { errors, json, jsonBody, type HubRouter } from '../../core/api/rest/index.js';
import { requireAdmin, requireHomeRole } from '../../core/auth/index.js';
import { hubError } from '../../core/errors/index.js';
import type { Logger } from '../../core/log/index.js';
import type { ClusterService } from './clusters.js';
import { fetchOverpass, OsmFormatError, OverpassError, overpassQuery } from './osm/index.js';
import { LocalPlane, type BarrierOptions, type BBox } from './planner/index.js';
import { BULK_CHANGE, type ClusterPlanning, type ExtractInfo } from './planning.js';
import { importAddresses, storeExtract } from './roads.js';
import { addressCandidateId } from './store.js';
import { ClusterIdParam, type ClusterDb } from './tables.js';

const tags = ['Cluster'];

const Longitude = z.number().min(-180).max(180);
const Latitude = z.number().min(-90).max(90);
const BBoxSchema = z
  .tuple([Longitude, Latitude, Longitude, Latitude])
  .refine(([w, s, e, n]) => w < e && s < n, 'must be [west, south, east, north] with west < east and south < north')
  .describe('[west, south, east, north] in degrees');

// ---------------------------------------------------------------------------------------------
// Road extracts

const FeatureSchema = z.object({
  type: z.literal('Feature'),
  id: z.union([z.string(), z.number()]).optional(),
  geometry: z.looseObject({ type: z.string() }).nullable(),
  properties: z.record(z.string(), z.unknown()).nullable().optional(),
});
const RoadsInput = z
  .object({
    name: z.string().trim().min(1).max(200),
    source: z.enum(['geojson', 'osm-xml', 'osm-pbf']).default('geojson'),
    bbox: BBoxSchema.nullable().optional().describe('The extent; defaults to the collection’s bbox, else the roads’ bbox'),
    roads: z.object({ type: z.literal('FeatureCollection'), bbox: z.unknown().optional(), features: z.array(FeatureSchema).max(2_000_000) }),
  })
  .openapi('ClusterRoadsInput');

const Extract = z
  .object({
    id: z.uuid(),
    name: z.string(),
    source: z.string(),
    bbox: z.array(z.number()),
    query: z.string().nullable(),
    fetched_at: z.iso.datetime(),
    ways: z.number(),
    barrier_ways: z.number(),
  })
  .openapi('ClusterRoadExtract');
const BuiltExtractSchema = Extract.extend({
  segments: z.number(),
  faces: z.number().describe('Blocks'),
  build_ms: z.number(),
  cached: z.boolean().describe('Overpass only: served from the stored extract without a request'),
}).openapi('ClusterRoadExtractBuilt');

const OverpassInput = z
  .object({
    bbox: BBoxSchema.refine(([w, s, e, n]) => e - w <= 0.2 && n - s <= 0.2, 'at most 0.2° on a side (about 15–20 km)'),
    name: z.string().trim().min(1).max(200).optional(),
    refresh: z.boolean().default(false).describe('Fetch again even when an extract for the same query is stored'),
  })
  .openapi('ClusterOverpassInput');

const roadRoutesDef = {
  importRoads: createRoute({
    method: 'post',
    path: '/roads',
    tags,
    summary: 'Import a road extract (admin): OSM ways as GeoJSON; the model is built to check it',
    request: { body: jsonBody(RoadsInput) },
    responses: { 201: json(BuiltExtractSchema, 'Stored'), ...errors(400, 401, 403, 413, 415, 422) },
  }),
  listRoads: createRoute({
    method: 'get',
    path: '/roads',
    tags,
    summary: 'Road extracts (without their features)',
    responses: { 200: json(z.array(Extract), 'Extracts'), ...errors(401) },
  }),
  deleteRoads: createRoute({
    method: 'delete',
    path: '/roads/{id}',
    tags,
    summary: 'Delete a road extract (admin); clusters planned on it keep their members',
    request: { params: z.object({ id: z.uuid() }) },
    responses: { 204: { description: 'Deleted' }, ...errors(400, 401, 403, 404) },
  }),
  overpass: createRoute({
    method: 'post',
    path: '/roads/overpass',
    tags,
    summary: 'Fetch the roads of a box from Overpass (admin); a stored answer to the same query is reused',
    request: { body: jsonBody(OverpassInput) },
    responses: {
      200: json(BuiltExtractSchema, 'Served from the stored extract, or refreshed'),
      201: json(BuiltExtractSchema, 'Fetched and stored'),
      ...errors(400, 401, 403, 409, 422, 502, 504),
    },
  }),
};

// ---------------------------------------------------------------------------------------------
// The address pool

const PolygonSchema = z.object({
  type: z.literal('Polygon'),
  coordinates: z.array(z.array(z.tuple([Longitude, Latitude]).rest(z.number())).min(4, 'a ring needs at least 4 positions')).min(1),
});
const Role = z.enum(['prospect', 'host', 'neighbor']);
const AddressItem = z
  .object({
    address: z.string().trim().min(1).max(200).describe('Street line: 931 Stone Slope Ln SW'),
    city: z.string().trim().max(100).default(''),
    state: z.string().trim().max(50).default(''),
    latitude: Latitude.nullable().optional(),
    longitude: Longitude.nullable().optional(),
    footprint: PolygonSchema.nullable().optional().describe("The building's outline; its point is used when latitude/longitude are missing"),
    role: Role.optional(),
  })
  .refine((a) => (a.latitude == null) === (a.longitude == null), { message: 'latitude and longitude go together', path: ['latitude'] });
const AddressesInput = z
  .object({ source: z.string().trim().min(1).max(32).default('import'), addresses: z.array(AddressItem).min(1).max(50_000) })
  .openapi('ClusterAddressesInput');
const PoolAddress = z
  .object({
    id: z.uuid(),
    candidate_id: z.string(),
    role: Role,
    address: z.string(),
    city: z.string(),
    state: z.string(),
    latitude: z.number().nullable(),
    longitude: z.number().nullable(),
    geocode_quality: z.string(),
    source: z.string(),
  })
  .openapi('ClusterPoolAddress');

const addressRoutesDef = {
  importAddresses: createRoute({
    method: 'post',
    path: '/addresses',
    tags,
    summary: 'Add address points to the pool (admin); an address already in it is skipped',
    request: { body: jsonBody(AddressesInput) },
    responses: { 201: json(z.object({ imported: z.number(), duplicates: z.number() }), 'Imported'), ...errors(400, 401, 403, 413, 415) },
  }),
  listAddresses: createRoute({
    method: 'get',
    path: '/addresses',
    tags,
    summary: 'Pool addresses (admin), nearest first when `near` is given',
    request: {
      query: z.object({
        near: z
          .string()
          .regex(/^-?\d+(\.\d+)?,-?\d+(\.\d+)?$/, 'lat,lon')
          .optional(),
        radius: z.coerce.number().min(1).max(5000).default(100).describe('Metres around `near`'),
        limit: z.coerce.number().int().min(1).max(1000).default(100),
      }),
    },
    responses: { 200: json(z.array(PoolAddress), 'Addresses'), ...errors(400, 401, 403) },
  }),
};

// ---------------------------------------------------------------------------------------------
// Plans

/** A yard as a caller names it: a home id, `address:<id>`, or the `yard-<n>` token they were shown. */
const CandidateId = z.string().regex(/^((address:)?[0-9a-fA-F-]{36}|yard-[0-9]{1,4})$/, 'a home id, address:<id> or yard-<n>');
/** `host_home_id`, or `hostHomeId` as the issue that specified these routes spells it. */
const HostHome = {
  host_home_id: z.uuid().optional().describe('The host home'),
  hostHomeId: z.uuid().optional().describe('Alias of host_home_id'),
};
const oneHost = (body: { host_home_id?: string; hostHomeId?: string }) => body.host_home_id !== undefined || body.hostHomeId !== undefined;
const hostOf = (body: { host_home_id?: string; hostHomeId?: string }) => (body.host_home_id ?? body.hostHomeId)!;
const HOST_REQUIRED = { message: 'host_home_id is required', path: ['host_home_id'] };

const Pair = z.object({
  candidate_id: z.string().describe('A home id, address:<id>, or yard-<n> for a home you may not see'),
  address: z.string().nullable().describe('Street line only; null for a hidden home'),
  dist_m: z.number().nullable().describe('Straight distance from the host, metres; null for a hidden home'),
  path_m: z.number().nullable().describe("The mower's path when it qualifies; null otherwise, and for a hidden home"),
  dist_band: z.string().describe('The distance as a band (<50 m, 50–100 m, …): all a hidden home shows of it'),
  reason: z.string(),
  qualified: z.boolean(),
  same_block: z.boolean(),
  line_clear: z.boolean(),
});
const Route = z
  .object({ order: z.array(z.string()), length_m: z.number().nullable().describe('Null when the route passes a yard you may not see') })
  .nullable();
const PlanFields = {
  host_id: z.string(),
  host_status: z.string(),
  members: z.array(Pair),
  rejected: z.array(Pair),
  route: Route,
  warnings: z.array(z.string()),
  extract_id: z.string(),
};
const Plan = z.object({ plan_id: z.uuid().describe('Accept it within an hour: POST /clusters/{plan_id}/accept'), ...PlanFields }).openapi('ClusterPlan');
const PlanAll = z
  .object({
    clusters: z.array(z.object(PlanFields)),
    unplanned: z.array(z.object({ host_id: z.string(), reason: z.enum(['no_location', 'no_road_data', 'not_in_planner']) })),
    stats: z.object({ hosts: z.number(), assigned: z.number(), ms: z.number() }),
  })
  .openapi('ClusterPlanAll');

const planRoutesDef = {
  plan: createRoute({
    method: 'post',
    path: '/plan',
    tags,
    summary: "Plan a home's cluster: which neighbours its mower can reach without crossing a road",
    request: { body: jsonBody(z.object(HostHome).refine(oneHost, HOST_REQUIRED).openapi('ClusterPlanInput')) },
    responses: { 200: json(Plan, 'The plan'), ...errors(400, 401, 404, 409, 415, 422, 429) },
  }),
  planAll: createRoute({
    method: 'post',
    path: '/plan-all',
    tags,
    summary: 'Plan every host at once (admin): homes with a mower and pool hosts compete for neighbours',
    responses: { 200: json(PlanAll, 'Every plan'), ...errors(401, 403) },
  }),
};

// ---------------------------------------------------------------------------------------------
// Clusters

const Member = z.object({
  candidate_id: z.string().describe('A home id, address:<id>, or yard-<position> for a home that has not agreed to be seen'),
  home_id: z.string().nullable(),
  address: z.string().nullable(),
  position: z.number(),
  consent: z.enum(['invited', 'accepted', 'declined']),
  zones: z.array(z.string()),
  updated_at: z.iso.datetime(),
});
const ClusterFields = {
  id: z.string(),
  host_home_id: z.uuid(),
  extract_id: z.string().nullable(),
  accepted_at: z.iso.datetime(),
  next_position: z.number(),
  schedule: z.object({ days: z.array(z.number()), time: z.string(), timezone: z.string() }).nullable(),
  route: Route,
  members: z.array(Member).describe('In route order; position 0 is the host’s own yard'),
};
const Cluster = z.object(ClusterFields).openapi('Cluster');
const Accepted = z
  .object({
    ...ClusterFields,
    skipped: z
      .array(z.object({ candidate_id: z.string(), reason: z.enum(['hosts_a_cluster', 'in_another_cluster', 'home_deleted']) }))
      .describe('Chosen members left out: they host a cluster or are in another one'),
  })
  .openapi('ClusterAccepted');
const Members = z.array(CandidateId).min(1).max(50).optional().describe('A subset of the plan’s members (ids or yard-<n> tokens); default all');
const GeoJson = z
  .object({ type: z.literal('FeatureCollection'), features: z.array(z.record(z.string(), z.unknown())), attribution: z.string() })
  .openapi('ClusterGeoJson');
const MemberParam = ClusterIdParam.extend({ candidate_id: CandidateId.openapi({ param: { name: 'candidate_id', in: 'path' } }) });

const clusterRoutesDef = {
  accept: createRoute({
    method: 'post',
    path: '/clusters/accept',
    tags,
    summary: "Plan a home's cluster afresh and accept it (host owner)",
    request: { body: jsonBody(z.object({ ...HostHome, members: Members }).refine(oneHost, HOST_REQUIRED).openapi('ClusterAcceptInput')) },
    responses: { 201: json(Accepted, 'The cluster'), ...errors(400, 401, 403, 404, 409, 415, 422, 429) },
  }),
  acceptPlan: createRoute({
    method: 'post',
    path: '/clusters/{id}/accept',
    tags,
    summary: 'Accept a plan from POST /plan (host owner), within an hour of making it',
    request: {
      params: z.object({ id: z.uuid().describe('The plan_id') }),
      body: { content: { 'application/json': { schema: z.object({ members: Members }) } }, required: false },
    },
    responses: { 201: json(Accepted, 'The cluster'), ...errors(400, 401, 403, 404, 409, 422) },
  }),
  list: createRoute({
    method: 'get',
    path: '/clusters',
    tags,
    summary: 'Clusters your homes host or are invited to (all for administrators)',
    responses: { 200: json(z.array(Cluster), 'Clusters'), ...errors(401) },
  }),
  get: createRoute({
    method: 'get',
    path: '/clusters/{id}',
    tags,
    summary: 'One cluster, as far as you may see it',
    request: { params: ClusterIdParam },
    responses: { 200: json(Cluster, 'The cluster'), ...errors(400, 401, 404) },
  }),
  consent: createRoute({
    method: 'post',
    path: '/clusters/{id}/members/{candidate_id}/consent',
    tags,
    summary: "A member home's answer to the invitation (that home's owner)",
    request: { params: MemberParam, body: jsonBody(z.object({ state: z.enum(['accepted', 'declined']) }).openapi('ClusterConsentInput')) },
    responses: { 200: json(Member, 'The member'), ...errors(400, 401, 403, 404, 409, 415) },
  }),
  zones: createRoute({
    method: 'put',
    path: '/clusters/{id}/members/{candidate_id}/zones',
    tags,
    summary: "The host mower's area hashes for a yard (host home, technician or above)",
    request: {
      params: MemberParam,
      body: jsonBody(z.object({ zones: z.array(z.string().regex(/^-?\d{1,20}$/, 'an area hash')).max(50) }).openapi('ClusterZonesInput')),
    },
    responses: { 200: json(Member, 'The member'), ...errors(400, 401, 403, 404, 415) },
  }),
  geojson: createRoute({
    method: 'get',
    path: '/clusters/{id}/geojson',
    tags,
    summary: 'The cluster as a map: host, members, route, blocks and nearby roads (each feature has a kind)',
    request: { params: ClusterIdParam },
    responses: { 200: json(GeoJson, 'FeatureCollection with the OSM attribution'), ...errors(400, 401, 404) },
  }),
  remove: createRoute({
    method: 'delete',
    path: '/clusters/{id}',
    tags,
    summary: 'Dissolve a cluster (host owner)',
    request: { params: ClusterIdParam },
    responses: { 204: { description: 'Deleted' }, ...errors(400, 401, 403, 404) },
  }),
};

// ---------------------------------------------------------------------------------------------
// Registrars

/** What another hub instance must refresh: one extract, or pool rows (all of them without ids). */
export type DataChange = { what: 'extract'; extract_id: string } | { what: 'addresses'; address_ids?: string[] };

export interface ClusterRouteDeps {
  db: ClusterDb;
  planning: ClusterPlanning;
  clusters: ClusterService;
  barriers: BarrierOptions;
  overpass: { url: string | undefined; timeoutSeconds: number };
  log: Logger;
  /** Tells other hub instances what changed. */
  changed(change: DataChange): void;
}

/** Every REST route of the plugin except the original API's (`compat.ts`) and cluster mowing's (`schedule.ts`). */
export function registerRoutes(router: HubRouter, deps: ClusterRouteDeps): void {
  roadRoutes(router, deps);
  addressRoutes(router, deps);
  planRoutes(router, deps);
  clusterRoutes(router, deps);
}

const presentExtract = (extract: ExtractInfo) => ({
  id: extract.id,
  name: extract.name,
  source: extract.source,
  bbox: [...extract.bbox],
  query: extract.query,
  fetched_at: extract.fetchedAt.toISOString(),
  ways: extract.ways,
  barrier_ways: extract.barrierWays,
});

function roadRoutes(router: HubRouter, deps: ClusterRouteDeps): void {
  const { db, planning } = deps;

  const presentBuilt = async (extract: ExtractInfo, cached: boolean) => {
    const { model } = await planning.built(extract.id);
    const { segments, faces, buildMs } = model.stats;
    return { ...presentExtract(extract), segments, faces, build_ms: buildMs, cached };
  };

  // POST /roads takes bodies up to maxImportMb (ctx.bodyLimit), meant for administrators: anyone
  // else is refused here, before the route's validator reads and parses the body.
  router.use('/roads', async (c, next) => {
    if (c.req.method === 'POST') requireAdmin(c.var.principal);
    await next();
  });

  router.openapi(roadRoutesDef.importRoads, async (c) => {
    requireAdmin(c.var.principal);
    const input = c.req.valid('json');
    const { extract } = await storeExtract(db, planning, deps.barriers, { ...input, createdBy: c.var.principal.user.id });
    c.var.log.info({ extract: extract.id, name: extract.name, ways: extract.ways }, 'road extract imported');
    deps.changed({ what: 'extract', extract_id: extract.id });
    return c.json(await presentBuilt(extract, false), 201);
  });

  router.openapi(roadRoutesDef.listRoads, (c) => c.json(planning.extracts().map(presentExtract), 200));

  router.openapi(roadRoutesDef.deleteRoads, async (c) => {
    requireAdmin(c.var.principal);
    const { id } = c.req.valid('param');
    const result = await db.deleteFrom('cluster_road_extracts').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw hubError('HUB_ERR_ROAD_EXTRACT_NOT_FOUND');
    await planning.remove(id);
    deps.changed({ what: 'extract', extract_id: id });
    return c.body(null, 204);
  });

  router.openapi(roadRoutesDef.overpass, async (c) => {
    requireAdmin(c.var.principal);
    const { bbox, name, refresh } = c.req.valid('json');
    if (!deps.overpass.url) throw hubError('HUB_ERR_PLUGIN_NOT_CONFIGURED', 'Set PLUGIN_CLUSTER_OVERPASS_URL to fetch roads from Overpass');
    const query = overpassQuery(bbox, deps.overpass.timeoutSeconds);
    await planning.settled();
    const stored = planning.extracts().find((e) => e.source === 'overpass' && e.query === query);
    if (stored && !refresh) return c.json(await presentBuilt(stored, true), 200);

    let roads;
    try {
      // The server's own limit, plus time for the answer to travel.
      ({ roads } = await fetchOverpass(deps.overpass.url, query, { timeoutMs: (deps.overpass.timeoutSeconds + 15) * 1000 }));
    } catch (error) {
      if (error instanceof OverpassError && error.status === null && /did not answer/.test(error.message)) {
        throw hubError('HUB_ERR_UPSTREAM_TIMEOUT', 'Overpass did not answer in time', { cause: error });
      }
      if (error instanceof OverpassError || error instanceof OsmFormatError) throw hubError('HUB_ERR_UPSTREAM', `Overpass failed: ${error.message}`, { cause: error });
      throw error;
    }
    const { extract, existing } = await storeExtract(
      db,
      planning,
      deps.barriers,
      { name: name ?? stored?.name ?? `Overpass ${bbox.join(',')}`, source: 'overpass', bbox: bbox as BBox, roads, query, createdBy: c.var.principal.user.id },
      stored?.id,
    );
    // An identical request stored it first: this one's fetch is dropped, the stored extract served.
    if (existing) return c.json(await presentBuilt(extract, true), 200);
    c.var.log.info({ extract: extract.id, ways: extract.ways, refreshed: Boolean(stored) }, 'road extract fetched from Overpass');
    deps.changed({ what: 'extract', extract_id: extract.id });
    return stored ? c.json(await presentBuilt(extract, false), 200) : c.json(await presentBuilt(extract, false), 201);
  });
}

function addressRoutes(router: HubRouter, deps: ClusterRouteDeps): void {
  const { db, planning } = deps;

  router.openapi(addressRoutesDef.importAddresses, async (c) => {
    requireAdmin(c.var.principal);
    const { source, addresses } = c.req.valid('json');
    const { ids, duplicates } = await importAddresses(db, addresses, { source, createdBy: c.var.principal.user.id });
    await planning.addressesChanged(ids);
    // A large import would make a large event: the other instances re-read all addresses instead.
    if (ids.length > 0) deps.changed(ids.length > BULK_CHANGE ? { what: 'addresses' } : { what: 'addresses', address_ids: ids });
    c.var.log.info({ imported: ids.length, duplicates }, 'addresses imported');
    return c.json({ imported: ids.length, duplicates }, 201);
  });

  router.openapi(addressRoutesDef.listAddresses, async (c) => {
    requireAdmin(c.var.principal);
    const { near, radius, limit } = c.req.valid('query');
    const center = near?.split(',').map(Number) as [number, number] | undefined;
    let query = db.selectFrom('cluster_addresses').select(['id', 'role', 'address', 'city', 'state', 'latitude', 'longitude', 'geocode_quality', 'source']);
    if (center) {
      const [lat, lon] = center;
      // A box around the point for the index; the exact distance is checked below.
      const dLat = radius / 111_195;
      const dLon = dLat / Math.max(Math.cos((lat * Math.PI) / 180), 0.01);
      query = query
        .where('latitude', '>=', lat - dLat)
        .where('latitude', '<=', lat + dLat)
        .where('longitude', '>=', lon - dLon)
        .where('longitude', '<=', lon + dLon);
    } else {
      query = query.orderBy('created_at', 'desc');
    }
    let rows = await query.limit(center ? 50_000 : limit).execute();
    if (center) {
      const [lat, lon] = center;
      const plane = new LocalPlane([lon, lat]);
      rows = rows
        .map((r) => ({ r, d: plane.distance([lon, lat], [r.longitude!, r.latitude!]) }))
        .filter(({ d }) => d <= radius)
        .sort((a, b) => a.d - b.d || (a.r.id < b.r.id ? -1 : 1))
        .slice(0, limit)
        .map(({ r }) => r);
    }
    return c.json(
      rows.map((r) => ({ ...r, candidate_id: addressCandidateId(r.id) })),
      200,
    );
  });
}

function planRoutes(router: HubRouter, deps: ClusterRouteDeps): void {
  const { clusters } = deps;

  router.openapi(planRoutesDef.plan, async (c) => {
    const hostHomeId = hostOf(c.req.valid('json'));
    const { principal } = c.var;
    requireHomeRole(principal, hostHomeId, 'viewer');
    // Administrators may plan any home (prospecting); others only a home whose mower would walk it.
    if (!principal.isAdmin) clusters.requireMower(hostHomeId);
    const plan = await clusters.plan(hostHomeId, principal);
    const planId = await clusters.propose(plan, principal.user.id);
    return c.json({ plan_id: planId, ...(await clusters.present(plan, principal)) }, 200);
  });

  router.openapi(planRoutesDef.planAll, async (c) => {
    requireAdmin(c.var.principal);
    const started = performance.now();
    const { plans, unplanned } = await clusters.planAll();
    const views = await Promise.all(plans.map((plan) => clusters.present(plan, c.var.principal)));
    const stats = { hosts: plans.length + unplanned.length, assigned: plans.reduce((n, p) => n + p.members.length, 0), ms: Math.round(performance.now() - started) };
    return c.json({ clusters: views, unplanned: unplanned.map((u) => ({ host_id: u.hostId, reason: u.reason })), stats }, 200);
  });
}

function clusterRoutes(router: HubRouter, deps: ClusterRouteDeps): void {
  const { db, clusters } = deps;

  router.openapi(clusterRoutesDef.accept, async (c) => {
    const body = c.req.valid('json');
    const hostHomeId = hostOf(body);
    requireHomeRole(c.var.principal, hostHomeId, 'owner');
    // Accepting needs the mower anyway; checked first, a refused accept is no plan at a new point.
    clusters.requireMower(hostHomeId);
    const plan = await clusters.plan(hostHomeId, c.var.principal);
    const cluster = await clusters.accept(plan, body.members, c.var.principal, c.var.principal.user.id);
    c.var.log.info({ cluster: cluster.id, homeId: hostHomeId, members: cluster.members.length - 1, skipped: cluster.skipped.length }, 'cluster accepted');
    return c.json(cluster, 201);
  });

  router.openapi(clusterRoutesDef.acceptPlan, async (c) => {
    const { id } = c.req.valid('param');
    const members = c.req.valid('json')?.members;
    const plan = await clusters.proposal(c.var.principal, id);
    requireHomeRole(c.var.principal, plan.hostId, 'owner');
    const cluster = await clusters.accept(plan, members, c.var.principal, c.var.principal.user.id);
    await db.deleteFrom('cluster_proposals').where('id', '=', id).execute();
    c.var.log.info({ cluster: cluster.id, homeId: plan.hostId, plan: id, skipped: cluster.skipped.length }, 'cluster accepted');
    return c.json(cluster, 201);
  });

  router.openapi(clusterRoutesDef.list, async (c) => c.json(await clusters.list(c.var.principal), 200));

  router.openapi(clusterRoutesDef.get, async (c) => c.json(await clusters.get(c.var.principal, c.req.valid('param').id), 200));

  router.openapi(clusterRoutesDef.consent, async (c) => {
    const { id, candidate_id } = c.req.valid('param');
    const member = await clusters.setConsent(c.var.principal, id, candidate_id, c.req.valid('json').state);
    c.var.log.info({ cluster: id, candidate: member.candidate_id, consent: member.consent }, 'cluster consent changed');
    return c.json(member, 200);
  });

  router.openapi(clusterRoutesDef.zones, async (c) => {
    const { id, candidate_id } = c.req.valid('param');
    return c.json(await clusters.setZones(c.var.principal, id, candidate_id, c.req.valid('json').zones), 200);
  });

  router.openapi(clusterRoutesDef.geojson, async (c) => {
    // Features are GeoJSON objects; the schema describes them loosely.
    return c.json((await clusters.geojson(c.var.principal, c.req.valid('param').id)) as unknown as z.infer<typeof GeoJson>, 200);
  });

  router.openapi(clusterRoutesDef.remove, async (c) => {
    const { id } = c.req.valid('param');
    await clusters.remove(c.var.principal, id);
    c.var.log.info({ cluster: id }, 'cluster deleted');
    return c.body(null, 204);
  });
}
