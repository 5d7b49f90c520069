/**
 * `/api/plugins/cluster/…`: road extracts and the address pool (administrators), plans and
 * clusters (the homes involved). Every route needs a caller; a home, plan or cluster the caller
 * cannot see answers 404, and other homes appear only as ids and street lines.
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
import type { ClusterPlanning, ExtractInfo } from './planning.js';
import { importAddresses, storeExtract } from './roads.js';
import { addressCandidateId, type ClusterDb } from './store.js';

const tags = ['Cluster'];

const Longitude = z.number().min(-180).max(180);
const Latitude = z.number().min(-90).max(90);
const BBoxSchema = z
  .tuple([Longitude, Latitude, Longitude, Latitude])
  .refine(([w, s, e, n]) => w < e && s < n, 'must be [west, south, east, north] with west < east and south < north')
  .describe('[west, south, east, north] in degrees');

const Position = z.tuple([Longitude, Latitude]).rest(z.number());
const PolygonSchema = z.object({
  type: z.literal('Polygon'),
  coordinates: z.array(z.array(Position).min(4, 'a ring needs at least 4 positions')).min(1),
});

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
    fetchedAt: z.iso.datetime(),
    ways: z.number(),
    barrierWays: z.number(),
  })
  .openapi('ClusterRoadExtract');
const BuiltExtractSchema = Extract.extend({
  segments: z.number(),
  faces: z.number().describe('Blocks'),
  buildMs: z.number(),
  cached: z.boolean().describe('Overpass only: served from the stored extract without a request'),
}).openapi('ClusterRoadExtractBuilt');

const OverpassInput = z
  .object({
    bbox: BBoxSchema.refine(([w, s, e, n]) => e - w <= 0.2 && n - s <= 0.2, 'at most 0.2° on a side (about 15–20 km)'),
    name: z.string().trim().min(1).max(200).optional(),
    refresh: z.boolean().default(false).describe('Fetch again even when an extract for the same query is stored'),
  })
  .openapi('ClusterOverpassInput');

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
    candidateId: z.string(),
    role: Role,
    address: z.string(),
    city: z.string(),
    state: z.string(),
    latitude: z.number().nullable(),
    longitude: z.number().nullable(),
    geocodeQuality: z.string(),
    source: z.string(),
  })
  .openapi('ClusterPoolAddress');

const CandidateId = z.string().regex(/^(address:)?[0-9a-f-]{36}$/i, 'a home id, or address:<id>');
const Pair = z.object({
  candidateId: z.string(),
  address: z.string().nullable().describe('Street line only'),
  distM: z.number(),
  pathM: z.number().nullable(),
  reason: z.string(),
  qualified: z.boolean(),
  sameBlock: z.boolean(),
  lineClear: z.boolean(),
});
const Route = z.object({ order: z.array(z.string()), lengthM: z.number() }).nullable();
const PlanFields = {
  hostId: z.string(),
  hostStatus: z.string(),
  members: z.array(Pair),
  rejected: z.array(Pair),
  route: Route,
  warnings: z.array(z.string()),
  extractId: z.string(),
};
const Plan = z.object({ planId: z.uuid().describe('Accept it within an hour: POST /clusters/{planId}/accept'), ...PlanFields }).openapi('ClusterPlan');
const PlanAll = z
  .object({
    clusters: z.array(z.object(PlanFields)),
    unplanned: z.array(z.object({ hostId: z.string(), reason: z.enum(['no_location', 'no_road_data']) })),
    stats: z.object({ hosts: z.number(), assigned: z.number(), ms: z.number() }),
  })
  .openapi('ClusterPlanAll');

const Member = z.object({
  candidateId: z.string(),
  homeId: z.string().nullable(),
  address: z.string().nullable(),
  position: z.number(),
  consent: z.enum(['invited', 'accepted', 'declined']),
  zones: z.array(z.string()),
  updatedAt: z.iso.datetime(),
});
const Cluster = z
  .object({
    id: z.string(),
    hostHomeId: z.uuid(),
    extractId: z.string().nullable(),
    acceptedAt: z.iso.datetime(),
    nextPosition: z.number(),
    schedule: z.unknown(),
    route: Route,
    members: z.array(Member).describe('In route order; position 0 is the host’s own yard'),
  })
  .openapi('Cluster');
const Members = z.array(CandidateId).min(1).max(50).optional().describe('A subset of the plan’s members; default all');
const GeoJson = z
  .object({ type: z.literal('FeatureCollection'), features: z.array(z.record(z.string(), z.unknown())), attribution: z.string() })
  .openapi('ClusterGeoJson');

const ExtractParam = z.object({ id: z.uuid() });
const ClusterParam = z.object({ id: z.string().regex(/^\d{1,18}$/, 'a cluster id') });
const MemberParam = ClusterParam.extend({ candidateId: CandidateId });

const routes = {
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
    request: { params: ExtractParam },
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
  plan: createRoute({
    method: 'post',
    path: '/plan',
    tags,
    summary: "Plan a home's cluster: which neighbours its mower can reach without crossing a road",
    request: { body: jsonBody(z.object({ hostHomeId: z.uuid() }).openapi('ClusterPlanInput')) },
    responses: { 200: json(Plan, 'The plan'), ...errors(400, 401, 404, 415, 422) },
  }),
  planAll: createRoute({
    method: 'post',
    path: '/plan-all',
    tags,
    summary: 'Plan every host at once (admin): homes with a mower and pool hosts compete for neighbours',
    responses: { 200: json(PlanAll, 'Every plan'), ...errors(401, 403) },
  }),
  accept: createRoute({
    method: 'post',
    path: '/clusters/accept',
    tags,
    summary: "Plan a home's cluster afresh and accept it (host owner)",
    request: { body: jsonBody(z.object({ hostHomeId: z.uuid(), members: Members }).openapi('ClusterAcceptInput')) },
    responses: { 201: json(Cluster, 'The cluster'), ...errors(400, 401, 403, 404, 409, 415, 422) },
  }),
  acceptPlan: createRoute({
    method: 'post',
    path: '/clusters/{id}/accept',
    tags,
    summary: 'Accept a plan from POST /plan (host owner), within an hour of making it',
    request: {
      params: z.object({ id: z.uuid().describe('The planId') }),
      body: { content: { 'application/json': { schema: z.object({ members: Members }) } }, required: false },
    },
    responses: { 201: json(Cluster, 'The cluster'), ...errors(400, 401, 403, 404, 409, 422) },
  }),
  list: createRoute({
    method: 'get',
    path: '/clusters',
    tags,
    summary: 'Clusters your homes host or belong to (all for administrators)',
    responses: { 200: json(z.array(Cluster), 'Clusters'), ...errors(401) },
  }),
  get: createRoute({
    method: 'get',
    path: '/clusters/{id}',
    tags,
    summary: 'One cluster',
    request: { params: ClusterParam },
    responses: { 200: json(Cluster, 'The cluster'), ...errors(400, 401, 404) },
  }),
  consent: createRoute({
    method: 'post',
    path: '/clusters/{id}/members/{candidateId}/consent',
    tags,
    summary: "A member home's answer to the invitation (that home's owner)",
    request: { params: MemberParam, body: jsonBody(z.object({ state: z.enum(['accepted', 'declined']) }).openapi('ClusterConsentInput')) },
    responses: { 200: json(Member, 'The member'), ...errors(400, 401, 403, 404, 409, 415) },
  }),
  zones: createRoute({
    method: 'put',
    path: '/clusters/{id}/members/{candidateId}/zones',
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
    summary: 'The cluster as a map: host, members, route, block and nearby roads (each feature has a kind)',
    request: { params: ClusterParam },
    responses: { 200: json(GeoJson, 'FeatureCollection with the OSM attribution'), ...errors(400, 401, 404) },
  }),
  remove: createRoute({
    method: 'delete',
    path: '/clusters/{id}',
    tags,
    summary: 'Dissolve a cluster (host owner)',
    request: { params: ClusterParam },
    responses: { 204: { description: 'Deleted' }, ...errors(400, 401, 403, 404) },
  }),
};

export interface ClusterRouteDeps {
  db: ClusterDb;
  planning: ClusterPlanning;
  clusters: ClusterService;
  barriers: BarrierOptions;
  overpass: { url: string | undefined; timeoutSeconds: number };
  log: Logger;
  /** Tells other hub instances that the extracts or the pool changed. */
  changed(what: 'extracts' | 'addresses'): void;
}

export function clusterRoutes(router: HubRouter, deps: ClusterRouteDeps): void {
  const { db, planning, clusters } = deps;

  const presentExtract = (extract: ExtractInfo) => ({ ...extract, bbox: [...extract.bbox], fetchedAt: extract.fetchedAt.toISOString() });
  const presentBuilt = async (extract: ExtractInfo, cached: boolean) => {
    const { model } = await planning.built(extract.id);
    const { segments, faces, buildMs } = model.stats;
    return { ...presentExtract(extract), segments, faces, buildMs, cached };
  };

  router.openapi(routes.importRoads, async (c) => {
    requireAdmin(c.var.principal);
    const input = c.req.valid('json');
    const { extract } = await storeExtract(db, planning, deps.barriers, { ...input, createdBy: c.var.principal.user.id });
    c.var.log.info({ extract: extract.id, name: extract.name, ways: extract.ways }, 'road extract imported');
    deps.changed('extracts');
    return c.json(await presentBuilt(extract, false), 201);
  });

  router.openapi(routes.listRoads, (c) => c.json(planning.extracts().map(presentExtract), 200));

  router.openapi(routes.deleteRoads, async (c) => {
    requireAdmin(c.var.principal);
    const { id } = c.req.valid('param');
    const result = await db.deleteFrom('cluster_road_extracts').where('id', '=', id).executeTakeFirst();
    if (result.numDeletedRows === 0n) throw hubError('HUB_ERR_ROAD_EXTRACT_NOT_FOUND');
    await planning.remove(id);
    deps.changed('extracts');
    return c.body(null, 204);
  });

  router.openapi(routes.overpass, async (c) => {
    requireAdmin(c.var.principal);
    const { bbox, name, refresh } = c.req.valid('json');
    if (!deps.overpass.url) throw hubError('HUB_ERR_PLUGIN_NOT_CONFIGURED', 'Set PLUGIN_CLUSTER_OVERPASS_URL to fetch roads from Overpass');
    const query = overpassQuery(bbox, deps.overpass.timeoutSeconds);
    await planning.settled();
    const stored = planning
      .extracts()
      .filter((e) => e.source === 'overpass' && e.query === query)
      .sort((a, b) => b.fetchedAt.getTime() - a.fetchedAt.getTime())[0];
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
    const { extract } = await storeExtract(
      db,
      planning,
      deps.barriers,
      { name: name ?? stored?.name ?? `Overpass ${bbox.join(',')}`, source: 'overpass', bbox: bbox as BBox, roads, query, createdBy: c.var.principal.user.id },
      stored?.id,
    );
    c.var.log.info({ extract: extract.id, ways: extract.ways, refreshed: Boolean(stored) }, 'road extract fetched from Overpass');
    deps.changed('extracts');
    return stored ? c.json(await presentBuilt(extract, false), 200) : c.json(await presentBuilt(extract, false), 201);
  });

  router.openapi(routes.importAddresses, async (c) => {
    requireAdmin(c.var.principal);
    const { source, addresses } = c.req.valid('json');
    const { ids, duplicates } = await importAddresses(db, addresses, { source, createdBy: c.var.principal.user.id });
    await planning.addressesChanged(ids);
    deps.changed('addresses');
    c.var.log.info({ imported: ids.length, duplicates }, 'addresses imported');
    return c.json({ imported: ids.length, duplicates }, 201);
  });

  router.openapi(routes.listAddresses, async (c) => {
    requireAdmin(c.var.principal);
    const { near, radius, limit } = c.req.valid('query');
    let query = db.selectFrom('cluster_addresses').select(['id', 'role', 'address', 'city', 'state', 'latitude', 'longitude', 'geocode_quality', 'source']);
    if (near) {
      const [lat, lon] = near.split(',').map(Number) as [number, number];
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
    const rows = await query.limit(near ? 50_000 : limit).execute();
    let list = rows;
    if (near) {
      const [lat, lon] = near.split(',').map(Number) as [number, number];
      const plane = new LocalPlane([lon, lat]);
      list = rows
        .map((r) => ({ r, d: plane.distance([lon, lat], [r.longitude!, r.latitude!]) }))
        .filter(({ d }) => d <= radius)
        .sort((a, b) => a.d - b.d || (a.r.id < b.r.id ? -1 : 1))
        .slice(0, limit)
        .map(({ r }) => r);
    }
    return c.json(
      list.map(({ geocode_quality, ...r }) => ({ ...r, candidateId: addressCandidateId(r.id), geocodeQuality: geocode_quality })),
      200,
    );
  });

  router.openapi(routes.plan, async (c) => {
    const { hostHomeId } = c.req.valid('json');
    requireHomeRole(c.var.principal, hostHomeId, 'viewer');
    const plan = await clusters.plan(hostHomeId);
    const planId = await clusters.propose(plan, c.var.principal.user.id);
    return c.json({ planId, ...(await clusters.present(plan)) }, 200);
  });

  router.openapi(routes.planAll, async (c) => {
    requireAdmin(c.var.principal);
    const started = performance.now();
    const { plans, unplanned } = await clusters.planAll();
    const views = await Promise.all(plans.map((plan) => clusters.present(plan)));
    const stats = { hosts: plans.length + unplanned.length, assigned: plans.reduce((n, p) => n + p.members.length, 0), ms: Math.round(performance.now() - started) };
    return c.json({ clusters: views, unplanned, stats }, 200);
  });

  router.openapi(routes.accept, async (c) => {
    const { hostHomeId, members } = c.req.valid('json');
    requireHomeRole(c.var.principal, hostHomeId, 'owner');
    const plan = await clusters.plan(hostHomeId);
    const cluster = await clusters.accept(plan, members, c.var.principal.user.id);
    c.var.log.info({ cluster: cluster.id, homeId: hostHomeId, members: cluster.members.length - 1 }, 'cluster accepted');
    return c.json(cluster, 201);
  });

  router.openapi(routes.acceptPlan, async (c) => {
    const { id } = c.req.valid('param');
    const members = c.req.valid('json')?.members;
    const plan = await clusters.proposal(c.var.principal, id);
    requireHomeRole(c.var.principal, plan.hostId, 'owner');
    const cluster = await clusters.accept(plan, members, c.var.principal.user.id);
    await db.deleteFrom('cluster_proposals').where('id', '=', id).execute();
    c.var.log.info({ cluster: cluster.id, homeId: plan.hostId, plan: id }, 'cluster accepted');
    return c.json(cluster, 201);
  });

  router.openapi(routes.list, async (c) => c.json(await clusters.views(await clusters.visibleIds(c.var.principal)), 200));

  router.openapi(routes.get, async (c) => c.json(await clusters.visible(c.var.principal, c.req.valid('param').id), 200));

  router.openapi(routes.consent, async (c) => {
    const { id, candidateId } = c.req.valid('param');
    const member = await clusters.setConsent(c.var.principal, id, candidateId, c.req.valid('json').state);
    c.var.log.info({ cluster: id, candidate: candidateId, consent: member.consent }, 'cluster consent changed');
    return c.json(member, 200);
  });

  router.openapi(routes.zones, async (c) => {
    const { id, candidateId } = c.req.valid('param');
    return c.json(await clusters.setZones(c.var.principal, id, candidateId, c.req.valid('json').zones), 200);
  });

  router.openapi(routes.geojson, async (c) => {
    const view = await clusters.visible(c.var.principal, c.req.valid('param').id);
    // Features are GeoJSON objects; the schema describes them loosely.
    return c.json((await clusters.geojson(view)) as unknown as z.infer<typeof GeoJson>, 200);
  });

  router.openapi(routes.remove, async (c) => {
    const { id } = c.req.valid('param');
    await clusters.remove(c.var.principal, id);
    c.var.log.info({ cluster: id }, 'cluster deleted');
    return c.body(null, 204);
  });
}
