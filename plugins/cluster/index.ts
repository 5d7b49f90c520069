/**
 * The neighbourhood cluster planner: which neighbouring yards one home's mower can serve
 * without crossing a road (SPEC Part 2), planned on OpenStreetMap road extracts; accepted
 * clusters with each member's consent; and the original Mowthos-Cluster-Logic API on top.
 *
 * @module
 */
import { z } from 'zod';
import { configFlag, definePlugin } from '../../core/plugin.js';
import { ClusterService } from './clusters.js';
import { compatRoutes } from './compat.js';
import { ClusterEntities, mowersByHome } from './entities.js';
import { Geocoder, NominatimGeocoder, PoolGeocoder, type GeocoderProvider } from './geocode.js';
import { MoveThrottle } from './moves.js';
import type { BarrierOptions, BBox, PlannerConfig } from './planner/index.js';
import { BULK_CHANGE, ClusterPlanning } from './planning.js';
import { registerRoutes, type DataChange } from './routes.js';
import { RUN_EVENTS } from './runs.js';
import { clusterMowing } from './schedule.js';
import { addressCandidateId } from './store.js';
import type { ClusterDb } from './tables.js';

/** `west,south,east,north` (an environment variable) or the four numbers. */
const BBoxSetting = z
  .union([z.string().transform((text) => text.split(',').map((part) => Number(part.trim()))), z.array(z.number())])
  .pipe(
    z
      .tuple([z.number().min(-180).max(180), z.number().min(-90).max(90), z.number().min(-180).max(180), z.number().min(-90).max(90)])
      .refine(([w, s, e, n]) => w < e && s < n, 'must be west,south,east,north with west < east and south < north'),
  );

/** The home fields a plan depends on: a home renamed is not planned again. */
const PLACE_FIELDS = new Set(['address', 'latitude', 'longitude']);

/**
 * `cluster_data_changed`: what another instance changed, so that this one refreshes only that.
 * Checked on receipt: the event crossed the relay.
 */
const DataChanged = z.discriminatedUnion('what', [
  z.object({ what: z.literal('extract'), extract_id: z.uuid() }),
  z.object({ what: z.literal('addresses'), address_ids: z.array(z.uuid()).max(BULK_CHANGE).optional() }),
]) satisfies z.ZodType<DataChange>;

const config = z.object({
  radiusM: z.coerce.number().min(10).max(500).default(80).describe('Neighbours further than this from the host are out (metres)'),
  maxClusterSize: z.coerce.number().int().min(3).max(5).default(5).describe('Yards per cluster, the host included'),
  adjacency: z.enum(['same-block', 'line-of-sight']).default('same-block'),
  roadHalfWidthM: z.coerce.number().min(1).max(30).default(5).describe('How far a mower keeps from a road centreline'),
  maxDetourFactor: z.coerce.number().min(1).max(5).default(1.5),
  coverageMarginM: z.coerce.number().min(0).max(2000).default(150).describe('A home must be this far inside its road extract'),
  serviceAlleysAreBarriers: configFlag.default(false),
  countPrivateRoads: configFlag.default(true),
  overpassUrl: z.url().optional().describe('An Overpass API interpreter URL; unset, the hub never calls Overpass'),
  overpassTimeoutSeconds: z.coerce.number().int().min(5).max(900).default(60),
  geocoderUrl: z.url().optional().describe('A Nominatim-compatible /search URL; unset, addresses are found in the address pool only'),
  geocoderCountryCodes: z
    .string()
    .regex(/^[a-z]{2}(,[a-z]{2})*$/i, 'ISO country codes separated by commas, e.g. us')
    .optional(),
  geocoderViewbox: BBoxSetting.optional().describe('Geocoder results are kept inside this box: west,south,east,north'),
  geocoderUserAgent: z.string().min(3).max(200).default('mowthos-hub cluster plugin'),
  geocoderMinIntervalMs: z.coerce
    .number()
    .int()
    .min(0)
    .max(60_000)
    .default(1000)
    .describe("Least time between two geocoder requests (ms); nominatim.openstreetmap.org's usage policy needs 1000 or more"),
  maxImportMb: z.coerce.number().min(1).max(512).default(64).describe('Largest road import body (POST /roads), MiB'),
  replanAfterMoveHours: z.coerce
    .number()
    .min(0)
    .max(720)
    .default(24)
    .describe('After a plan that followed a move, how long a home cannot be planned at yet another point (hours; 0: no limit)'),
});

export default definePlugin({
  id: 'cluster',
  version: '0.1.0',
  hub: '^0.1.0',
  description: 'Neighbourhood clusters: the yards one mower can reach without crossing a road, from OpenStreetMap roads',
  config,
  // Billing acts on the run events; other instances act on cluster_data_changed.
  reservedEvents: [...RUN_EVENTS, 'cluster_data_changed'],

  async setup(ctx) {
    const db: ClusterDb = ctx.db.withTables();
    const settings = ctx.config;
    const barriers: BarrierOptions = { serviceAlleysAreBarriers: settings.serviceAlleysAreBarriers, countPrivateRoads: settings.countPrivateRoads };
    const planner: Partial<PlannerConfig> = {
      ...barriers,
      radiusM: settings.radiusM,
      maxClusterSize: settings.maxClusterSize,
      adjacency: settings.adjacency,
      roadHalfWidthM: settings.roadHalfWidthM,
      maxDetourFactor: settings.maxDetourFactor,
      coverageMarginM: settings.coverageMarginM,
    };
    const planning = new ClusterPlanning({ db, planner, barriers, log: ctx.log });
    await planning.load();

    const entities = new ClusterEntities(ctx, db);
    await entities.restore();

    const mowerHomes = () => new Set(mowersByHome(ctx.states).keys());
    const poolHosts = async () => (await db.selectFrom('cluster_addresses').select('id').where('role', '=', 'host').execute()).map((r) => addressCandidateId(r.id));
    const moves = new MoveThrottle(db, settings.replanAfterMoveHours * 3_600_000);
    const clusters = new ClusterService({ db, planning, entities, mowerHomes, poolHosts, moves, radiusM: settings.radiusM });

    const providers: GeocoderProvider[] = [new PoolGeocoder(db)];
    if (settings.geocoderUrl) {
      providers.push(
        new NominatimGeocoder({
          url: settings.geocoderUrl,
          countryCodes: settings.geocoderCountryCodes,
          viewbox: settings.geocoderViewbox as BBox | undefined,
          userAgent: settings.geocoderUserAgent,
          minIntervalMs: settings.geocoderMinIntervalMs,
          log: ctx.log,
        }),
      );
    }
    const geocoder = new Geocoder({ providers, covers: (lonLat) => planning.covers(lonLat), log: ctx.log });

    // Homes move in the planners as they change; events relayed from other instances count too.
    ctx.bus.on('home_created', (event) => void planning.homeChanged(event.data.home_id));
    ctx.bus.on('home_updated', (event) => {
      // An event without the list (an older instance's) counts as a move.
      const changed: unknown = event.data.changed;
      if (Array.isArray(changed) && !changed.some((field) => PLACE_FIELDS.has(field as string))) return;
      void planning.homeChanged(event.data.home_id);
    });
    ctx.bus.on('home_deleted', (event) => {
      void planning.homeRemoved(event.data.home_id);
      // Clusters of the home went with it (cascade); so do their entities.
      entities.sync().catch((error: unknown) => ctx.log.warn({ err: error }, 'cluster entities not refreshed'));
    });
    // Another instance stored or deleted an extract, or changed pool addresses: this one
    // refreshes that extract, or those addresses, and keeps every other road model.
    const changed = (change: DataChange) => void ctx.bus.fire('cluster_data_changed', change);
    ctx.bus.on('cluster_data_changed', (event) => {
      // Only the plugin's own events (fired without a user) from another instance mean anything.
      if (event.origin !== 'REMOTE' || event.context.user_id !== null) return;
      const parsed = DataChanged.safeParse(event.data);
      if (!parsed.success) {
        ctx.log.warn({ issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) }, 'cluster_data_changed with unexpected data; ignored');
        return;
      }
      const change = parsed.data;
      if (change.what === 'extract') void planning.extractChanged(change.extract_id);
      else if (change.address_ids) void planning.addressesChanged(change.address_ids);
      else void planning.addressesReloaded();
    });

    ctx.bodyLimit('POST', '/roads', settings.maxImportMb * 1024 * 1024);
    registerRoutes(ctx.routes, {
      db,
      planning,
      clusters,
      barriers,
      overpass: { url: settings.overpassUrl, timeoutSeconds: settings.overpassTimeoutSeconds },
      log: ctx.log,
      changed,
    });
    compatRoutes(ctx.routes, { db, planning, geocoder, log: ctx.log, changed: (ids) => changed({ what: 'addresses', address_ids: ids }) });
    await clusterMowing(ctx, {
      positionChanged: (id) => entities.update(id),
      // The action does not say who asks (a home member, or a flow acting as the hub): it
      // plans only a home with a mower, and shows it as that home's members would see it.
      plan: async (hostHomeId) => {
        clusters.requireMower(hostHomeId);
        const asHost = { isAdmin: false, homes: new Set([hostHomeId]) };
        return clusters.present(await clusters.plan(hostHomeId, asHost), asHost);
      },
    });
  },
});
