/**
 * Plans and clusters: planning a host home's cluster, keeping the plan for its owner to
 * accept, turning it into a cluster (members in route order, consent, zones), and what each
 * caller may see of it.
 *
 * Privacy: a home is a person's. A caller sees another hub home (its id, street line and point)
 * only where that home agreed to be seen: in a cluster, once its consent is `accepted`, by the
 * host and the accepted members. Everywhere else — plans, invitations not yet answered — such a
 * home is an opaque `yard-<n>`, and no figure shown lets its point be worked out: its distance is
 * a band, and a route length that includes it is not given. Pool addresses are address points,
 * not users, and keep their street line; administrators see everything.
 *
 * @module
 */
import type { Feature, FeatureCollection, Geometry } from 'geojson';
import { sql } from 'kysely';
import { requireHomeRole, type Principal } from '../../core/auth/index.js';
import { jsonb } from '../../core/db/index.js';
import { hubError, HubError } from '../../core/errors/index.js';
import type { ClusterEntities } from './entities.js';
import { LocalPlane, type ClusterPlan, type PairResult } from './planner/index.js';
import type { ClusterPlanning } from './planning.js';
import { hasActiveRun } from './runs.js';
import type { MoveThrottle } from './moves.js';
import { addressInput, addressRowId, homeInput, isAddressCandidate, points, seenByHost, streetLines, YARD_TOKEN, yardToken } from './store.js';
import type { ClusterDb, ConsentState, WeeklyPlan } from './tables.js';

/** © OpenStreetMap contributors: every map built from the road data carries it. */
const OSM_ATTRIBUTION = '© OpenStreetMap contributors, ODbL 1.0 (https://www.openstreetmap.org/copyright)';

/** How long a plan can be accepted after it was made. */
const PLAN_TTL_MS = 3600_000;

/** Any one accept at a time, hub-wide: two hosts must not both take the same neighbour. */
const ACCEPT_LOCK = 0x636c7573; // "clus"

/** How wide the distance bands are that a hidden yard's distance is shown in. */
const BAND_M = 50;

/**
 * A distance as a band: `<50 m`, `50–100 m`, `100–150 m`… What a plan shows of a home the caller
 * may not see: exact figures, read from a few points, would locate it.
 */
function distanceBand(distM: number): string {
  const lower = Math.floor(distM / BAND_M) * BAND_M;
  return lower === 0 ? `<${BAND_M} m` : `${lower}–${lower + BAND_M} m`;
}

/** Whom a view is for: administrators see every home, anyone else their own homes (a {@link Principal} is one). */
export interface Viewer {
  isAdmin: boolean;
  homes: { has(homeId: string): boolean };
}

/** One candidate of a plan as the API shows it. */
export interface PairView {
  /** The home id, `address:<id>` for a pool address, or `yard-<n>` for a home the caller may not see. */
  candidate_id: string;
  /** Street line only; null for a hidden home. */
  address: string | null;
  /** Straight distance from the host; null for a hidden home (see `dist_band`). */
  dist_m: number | null;
  /** The mower's path when it qualifies; null when it does not, and for a hidden home. */
  path_m: number | null;
  /** The distance's band, for every candidate: all a hidden home shows of how far it is. */
  dist_band: string;
  reason: PairResult['reason'];
  qualified: boolean;
  same_block: boolean;
  line_clear: boolean;
}

export interface RouteView {
  order: string[];
  /** Null when the route passes a yard the caller may not see: that leg could be worked out from it. */
  length_m: number | null;
}

/** A plan as the API shows it. */
export interface PlanView {
  host_id: string;
  host_status: ClusterPlan['hostStatus'];
  members: PairView[];
  rejected: PairView[];
  route: RouteView | null;
  warnings: string[];
  extract_id: string;
}

/** A plan as it is stored (proposals, and the accepted plan of a cluster): the planner's own shape. */
export type StoredPlan = ClusterPlan & { extractId: string };

export type UnplannedReason = 'no_location' | 'no_road_data' | 'not_in_planner';

export interface MemberView {
  candidate_id: string;
  home_id: string | null;
  address: string | null;
  position: number;
  consent: ConsentState;
  zones: string[];
  updated_at: string;
}

export interface ClusterView {
  id: string;
  host_home_id: string;
  extract_id: string | null;
  accepted_at: string;
  next_position: number;
  schedule: WeeklyPlan | null;
  route: RouteView | null;
  members: MemberView[];
}

export type SkipReason = 'hosts_a_cluster' | 'in_another_cluster' | 'home_deleted';

/** What `accept` answers: the new cluster, and the chosen members it left out. */
export type AcceptedView = ClusterView & { skipped: { candidate_id: string; reason: SkipReason }[] };

/** A stored cluster with every yard as it is (the database's view, for this module only). */
interface ClusterRecord {
  id: string;
  hostHomeId: string;
  extractId: string | null;
  acceptedAt: Date;
  nextPosition: number;
  schedule: WeeklyPlan | null;
  route: ClusterPlan['route'];
  yards: Yard[];
}

interface Yard {
  candidateId: string;
  homeId: string | null;
  address: string | null;
  position: number;
  consent: ConsentState;
  zones: string[];
  updatedAt: Date;
}

/** How the caller stands in a cluster; none (a declined member, a stranger) sees it as not found. */
type Standing = 'admin' | 'host' | 'accepted' | 'invited';

/** What the caller sees of one yard: all of it, a token in its place, or nothing. */
type Sight = 'full' | 'token' | 'none';

export interface ClusterServiceOptions {
  db: ClusterDb;
  planning: ClusterPlanning;
  entities: ClusterEntities;
  /** Homes that own a `lawn_mower.*` entity. */
  mowerHomes(): Set<string>;
  /** Pool addresses registered as hosts, as planner ids. */
  poolHosts(): Promise<string[]>;
  /** How often a host home may be planned at a new point. */
  moves: MoveThrottle;
  radiusM: number;
}

export class ClusterService {
  constructor(private readonly options: ClusterServiceOptions) {}

  /** A cluster needs a mower to walk it; planning for a home without one is for administrators (prospecting). */
  requireMower(homeId: string): void {
    if (!this.options.mowerHomes().has(homeId)) throw hubError('HUB_ERR_CLUSTER_NO_MOWER');
  }

  /**
   * Plans the home's cluster with the freshest data this instance has, where the home is now.
   * The caller checked access; `viewer` is who will see it: anyone but an administrator plans a
   * home at a new point only as often as {@link MoveThrottle} allows (HUB_ERR_RATE_LIMITED).
   */
  async plan(homeId: string, viewer: Viewer): Promise<StoredPlan> {
    const { db, planning } = this.options;
    const home = await db.selectFrom('homes').select(['id', 'address', 'latitude', 'longitude']).where('id', '=', homeId).executeTakeFirst();
    if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
    if (home.latitude === null || home.longitude === null) throw hubError('HUB_ERR_HOME_NO_LOCATION');
    if (!viewer.isAdmin) await this.options.moves.admit(homeId, { latitude: home.latitude, longitude: home.longitude });
    await planning.settled();
    const extract = planning.extractAt([home.longitude, home.latitude]);
    if (!extract) throw hubError('HUB_ERR_CLUSTER_NO_ROAD_DATA');
    const built = await planning.built(extract.id);
    // The plan is made at the point the throttle admitted. Events keep the planners current; a
    // home changed on another instance, or whose event is still on its way, may not be yet.
    const held = built.hub.home(homeId)?.lonLat;
    if (!held || held[0] !== home.longitude || held[1] !== home.latitude) built.hub.upsertHome(homeInput(home));
    const plan = built.hub.plan(homeId);
    if (!this.options.mowerHomes().has(homeId)) plan.warnings.push('host_has_no_mower');
    return { ...plan, extractId: extract.id };
  }

  /** Stores a plan for an hour so that its host can accept exactly that; returns the plan id. */
  async propose(plan: StoredPlan, createdBy: string): Promise<string> {
    const { db } = this.options;
    await db.deleteFrom('cluster_proposals').where('created_at', '<', new Date(Date.now() - PLAN_TTL_MS)).execute();
    const row = await db
      .insertInto('cluster_proposals')
      .values({ host_home_id: plan.hostId, extract_id: plan.extractId, plan: jsonb(plan), created_by: createdBy })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  async proposal(principal: Principal, planId: string): Promise<StoredPlan> {
    const row = await this.options.db
      .selectFrom('cluster_proposals')
      .select(['host_home_id', 'plan'])
      .where('id', '=', planId)
      .where('created_at', '>=', new Date(Date.now() - PLAN_TTL_MS))
      .executeTakeFirst();
    if (!row || !(principal.isAdmin || principal.homes.has(row.host_home_id))) throw hubError('HUB_ERR_CLUSTER_PLAN_NOT_FOUND');
    return row.plan as StoredPlan;
  }

  /**
   * Every host (homes with a mower, pool hosts) planned at once, competing for candidates.
   * A host that cannot be planned is in `unplanned` with the reason, never left out.
   */
  async planAll(): Promise<{ plans: StoredPlan[]; unplanned: { hostId: string; reason: UnplannedReason }[] }> {
    const { db, planning } = this.options;
    await planning.settled();
    const homeIds = [...this.options.mowerHomes()];
    const homes = homeIds.length ? await db.selectFrom('homes').select(['id', 'address', 'latitude', 'longitude']).where('id', 'in', homeIds).execute() : [];
    const poolIds = await this.options.poolHosts();
    const pool = poolIds.length
      ? await db
          .selectFrom('cluster_addresses')
          .select(['id', 'address', 'city', 'state', 'latitude', 'longitude', 'footprint', 'geocode_quality'])
          .where('id', 'in', poolIds.map(addressRowId))
          .execute()
      : [];
    const hosts = [...homes.map((h) => ({ ...h, input: homeInput(h) })), ...pool.map((a) => ({ ...a, input: addressInput(a) }))];
    const byExtract = new Map<string, typeof hosts>();
    const unplanned: { hostId: string; reason: UnplannedReason }[] = [];
    for (const host of hosts) {
      if (host.latitude === null || host.longitude === null) {
        unplanned.push({ hostId: host.input.id, reason: 'no_location' });
        continue;
      }
      const extract = planning.extractAt([host.longitude, host.latitude]);
      if (!extract) unplanned.push({ hostId: host.input.id, reason: 'no_road_data' });
      else byExtract.set(extract.id, [...(byExtract.get(extract.id) ?? []), host]);
    }
    const plans: StoredPlan[] = [];
    for (const [extractId, group] of [...byExtract].sort(([a], [b]) => (a < b ? -1 : 1))) {
      let built;
      try {
        built = await planning.built(extractId);
      } catch (error) {
        if (!(error instanceof HubError && error.code === 'HUB_ERR_CLUSTER_NO_ROAD_DATA')) throw error;
        for (const host of group) unplanned.push({ hostId: host.input.id, reason: 'no_road_data' });
        continue;
      }
      // A host changed on another instance may be missing from this one's planner, as in plan().
      for (const host of group) if (!built.hub.home(host.input.id)) built.hub.upsertHome(host.input);
      const held = group.filter((host) => built.hub.home(host.input.id));
      for (const host of group) if (!held.includes(host)) unplanned.push({ hostId: host.input.id, reason: 'not_in_planner' });
      for (const plan of built.hub.planAll(held.map((host) => host.input.id))) plans.push({ ...plan, extractId });
    }
    return { plans, unplanned: unplanned.sort((a, b) => (a.hostId < b.hostId ? -1 : 1)) };
  }

  /**
   * The plan as `viewer` may see it: street lines of what is visible, `yard-<n>` for other
   * people's homes, with a distance band in place of their figures. Nothing in it is ordered by
   * an exact distance (that would place a hidden home between two visible ones): members come in
   * route order, the rejected by band, then by token.
   */
  async present(plan: StoredPlan, viewer: Viewer): Promise<PlanView> {
    const tokens = planTokens(plan);
    const hidden = (id: string) => hiddenInPlan(plan, viewer, id);
    const shown = (id: string) => (hidden(id) ? tokens.get(id)! : id);
    const visible = [plan.hostId, ...tokens.keys()].filter((id) => !hidden(id));
    const lines = await streetLines(this.options.db, visible);
    const pair = (p: PairResult): PairView => ({
      candidate_id: shown(p.candidateId),
      address: hidden(p.candidateId) ? null : (lines.get(p.candidateId) ?? null),
      dist_m: hidden(p.candidateId) ? null : p.distM,
      path_m: hidden(p.candidateId) ? null : p.pathM,
      dist_band: distanceBand(p.distM),
      reason: p.reason,
      qualified: p.qualified,
      same_block: p.sameBlock,
      line_clear: p.lineClear,
    });
    // The host's own duplicate (the only candidate without a token) goes first.
    const rank = new Map([...tokens.keys()].map((id, index) => [id, index]));
    const tokenOrder = (p: PairResult) => rank.get(p.candidateId) ?? -1;
    const byBand = (a: PairResult, b: PairResult) => Math.floor(a.distM / BAND_M) - Math.floor(b.distM / BAND_M) || tokenOrder(a) - tokenOrder(b);
    return {
      host_id: plan.hostId,
      host_status: plan.hostStatus,
      members: [...plan.members].sort((a, b) => tokenOrder(a) - tokenOrder(b)).map(pair),
      rejected: [...plan.rejected].sort(byBand).map(pair),
      route: plan.route && { order: plan.route.order.map(shown), length_m: plan.route.order.some(hidden) ? null : plan.route.lengthM },
      warnings: plan.warnings.map((warning) => {
        const id = warningId(warning);
        return id && hidden(id) ? `${warning.slice(0, warning.length - id.length)}${tokens.get(id)}` : warning;
      }),
      extract_id: plan.extractId,
    };
  }

  /**
   * Turns a plan into the host's cluster: the host's yard at position 0 (consent accepted), the
   * chosen members (all by default; ids or the plan's `yard-<n>` tokens) in the plan's route
   * order, each invited. A chosen member that hosts a cluster or is in another one (not having
   * declined it) is left out and listed in `skipped`.
   */
  async accept(plan: StoredPlan, chosen: string[] | undefined, viewer: Viewer, createdBy: string): Promise<AcceptedView> {
    const { db } = this.options;
    this.requireMower(plan.hostId);
    if (plan.hostStatus !== 'ok' || plan.members.length === 0) throw hubError('HUB_ERR_CLUSTER_EMPTY');
    const tokens = planTokens(plan);
    const byToken = new Map([...tokens].map(([id, token]) => [token, id]));
    const planned = new Set(plan.members.map((m) => m.candidateId));
    // A hidden home named by its id is treated as unknown: accept must not confirm whose home is near.
    const resolve = (given: string) => (YARD_TOKEN.test(given) ? byToken.get(given) : hiddenInPlan(plan, viewer, given) ? undefined : given);
    const unknown = (chosen ?? []).filter((given) => !planned.has(resolve(given) ?? ''));
    if (unknown.length > 0) {
      throw hubError('HUB_ERR_VALIDATION', 'Members must come from the plan', {
        details: unknown.map((given) => ({ path: ['members'], message: `${given} is not a member of the plan`, code: 'invalid_value' })),
      });
    }
    const keep = new Set(chosen?.length ? chosen.map((given) => resolve(given)!) : planned);
    const order = (plan.route?.order ?? plan.members.map((m) => m.candidateId)).filter((id) => keep.has(id));
    const shown = (id: string) => (hiddenInPlan(plan, viewer, id) ? tokens.get(id)! : id);

    const { id, skipped } = await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${ACCEPT_LOCK})`.execute(trx);
      const home = await trx.selectFrom('homes').select('id').where('id', '=', plan.hostId).forUpdate().executeTakeFirst();
      if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
      const existing = await trx.selectFrom('cluster_clusters').select('id').where('host_home_id', '=', plan.hostId).executeTakeFirst();
      if (existing) throw hubError('HUB_ERR_CLUSTER_EXISTS', undefined, { details: { cluster_id: String(existing.id) } });

      const homeIds = order.filter((c) => !isAddressCandidate(c));
      const live = new Set(homeIds.length ? (await trx.selectFrom('homes').select('id').where('id', 'in', homeIds).execute()).map((h) => h.id) : []);
      const hosting = new Set(
        homeIds.length ? (await trx.selectFrom('cluster_clusters').select('host_home_id').where('host_home_id', 'in', homeIds).execute()).map((r) => r.host_home_id) : [],
      );
      const taken = new Set(
        order.length
          ? (await trx.selectFrom('cluster_members').select('candidate_id').where('candidate_id', 'in', order).where('consent', '<>', 'declined').execute()).map((r) => r.candidate_id)
          : [],
      );
      const skipped: { candidate_id: string; reason: SkipReason }[] = [];
      const yards: string[] = [];
      for (const candidate of order) {
        const reason: SkipReason | null =
          !isAddressCandidate(candidate) && !live.has(candidate) ? 'home_deleted' : hosting.has(candidate) ? 'hosts_a_cluster' : taken.has(candidate) ? 'in_another_cluster' : null;
        if (reason) skipped.push({ candidate_id: shown(candidate), reason });
        else yards.push(candidate);
      }
      if (yards.length === 0) throw hubError('HUB_ERR_CLUSTER_EMPTY', 'Every chosen yard is in another cluster already', { details: { skipped } });

      const lengthM = yards.length === planned.size && plan.route ? plan.route.lengthM : await tourLength(trx, plan.hostId, yards);
      const accepted: StoredPlan = { ...plan, members: plan.members.filter((m) => yards.includes(m.candidateId)), route: { order: yards, lengthM } };
      const cluster = await trx
        .insertInto('cluster_clusters')
        .values({ host_home_id: plan.hostId, extract_id: await extractIdIfStored(trx, plan.extractId), plan: jsonb(accepted), created_by: createdBy })
        .returning('id')
        .executeTakeFirstOrThrow();
      await trx
        .insertInto('cluster_members')
        .values([
          { cluster_id: cluster.id, candidate_id: plan.hostId, home_id: plan.hostId, position: 0, consent: 'accepted' },
          ...yards.map((candidate, index) => ({
            cluster_id: cluster.id,
            candidate_id: candidate,
            home_id: isAddressCandidate(candidate) ? null : candidate,
            position: index + 1,
            consent: 'invited' as const,
          })),
        ])
        .execute();
      return { id: String(cluster.id), skipped };
    });
    await this.options.entities.update(id);
    const [record] = await this.#records([id]);
    return { ...this.#present(record!, viewer)!, skipped };
  }

  /** The clusters the caller may see, as they may see them; all for admins. */
  async list(principal: Principal): Promise<ClusterView[]> {
    const { db } = this.options;
    let query = db.selectFrom('cluster_clusters').select('id').orderBy('id');
    if (!principal.isAdmin) {
      const homes = [...principal.homes.keys()];
      if (homes.length === 0) return [];
      query = query.where((eb) =>
        eb.or([
          eb('host_home_id', 'in', homes),
          eb.exists(
            eb
              .selectFrom('cluster_members')
              .select('cluster_id')
              .whereRef('cluster_members.cluster_id', '=', 'cluster_clusters.id')
              .where('cluster_members.home_id', 'in', homes)
              .where('cluster_members.consent', '<>', 'declined'),
          ),
        ]),
      );
    }
    const records = await this.#records((await query.execute()).map((r) => String(r.id)));
    return records.flatMap((record) => this.#present(record, principal) ?? []);
  }

  /** The cluster as the caller may see it, else HUB_ERR_CLUSTER_NOT_FOUND (whether or not it exists). */
  async get(principal: Principal, clusterId: string): Promise<ClusterView> {
    return this.#present(await this.#visible(principal, clusterId), principal)!;
  }

  /**
   * A member's answer to the invitation. Only that member's home (its owner) or an admin may
   * give it; pool addresses have no home, so only an admin answers for them. A home that
   * declines no longer sees the cluster; the answer shows its own yard.
   */
  async setConsent(principal: Principal, clusterId: string, shownId: string, consent: 'accepted' | 'declined'): Promise<MemberView> {
    const record = await this.#visible(principal, clusterId);
    const yard = this.#yardFor(record, principal, shownId);
    if (yard.position === 0) throw hubError('HUB_ERR_CLUSTER_HOST_YARD');
    if (!principal.isAdmin) {
      if (!yard.homeId) throw hubError('HUB_ERR_FORBIDDEN', "Only the yard's own home can answer for it");
      forbiddenIfHidden(() => requireHomeRole(principal, yard.homeId!, 'owner'));
    }
    await this.#updateYard(clusterId, yard.candidateId, { consent });
    await this.options.entities.update(clusterId);
    const [updated] = await this.#records([clusterId]);
    return memberView(updated!.yards.find((y) => y.candidateId === yard.candidateId)!, 'full');
  }

  /** The host mower's areas for one yard (a token names a yard the host may not see yet); set by the host home (technician or above). */
  async setZones(principal: Principal, clusterId: string, shownId: string, zones: string[]): Promise<MemberView> {
    const record = await this.#visible(principal, clusterId);
    forbiddenIfHidden(() => requireHomeRole(principal, record.hostHomeId, 'technician'));
    const yard = this.#yardFor(record, principal, shownId);
    await this.#updateYard(clusterId, yard.candidateId, { zones });
    const [updated] = await this.#records([clusterId]);
    return this.#present(updated!, principal)!.members.find((m) => m.position === yard.position)!;
  }

  async remove(principal: Principal, clusterId: string): Promise<void> {
    const record = await this.#visible(principal, clusterId);
    forbiddenIfHidden(() => requireHomeRole(principal, record.hostHomeId, 'owner'));
    // Its mower is out walking the route: cancel the run first, so nobody's yard is left half done.
    if (await hasActiveRun(this.options.db, clusterId)) throw hubError('HUB_ERR_CLUSTER_RUN_ACTIVE');
    await this.options.db.deleteFrom('cluster_clusters').where('id', '=', clusterId).execute();
    await this.options.entities.update(clusterId);
  }

  /**
   * The cluster as a map, as the caller may see it: the points of the yards they may see, the
   * route through them, their blocks and the roads near the host, each feature with a `kind`;
   * the OSM attribution rides along.
   */
  async geojson(principal: Principal, clusterId: string): Promise<FeatureCollection & { attribution: string }> {
    const { db, planning } = this.options;
    const record = await this.#visible(principal, clusterId);
    const caller = standing(record, principal)!;
    const seen = record.yards.filter((yard) => sight(principal, caller, yard) === 'full');
    const features: Feature<Geometry, Record<string, unknown>>[] = [];
    const where = await points(db, seen.map((y) => y.candidateId));
    for (const yard of seen) {
      const point = where.get(yard.candidateId);
      if (!point) continue;
      features.push({
        type: 'Feature',
        geometry: { type: 'Point', coordinates: point },
        properties: { kind: yard.position === 0 ? 'host' : 'member', candidate_id: yard.candidateId, address: yard.address, position: yard.position, consent: yard.consent },
      });
    }
    const stops = seen.map((y) => where.get(y.candidateId)).filter((p): p is [number, number] => p !== undefined);
    if (stops.length > 1) {
      features.push({ type: 'Feature', geometry: { type: 'LineString', coordinates: [...stops, stops[0]!] }, properties: { kind: 'route', length_m: routeLength(record, principal, caller) } });
    }
    const hostPoint = where.get(record.hostHomeId);
    if (record.extractId && planning.extract(record.extractId) && hostPoint) {
      let built;
      try {
        built = await planning.built(record.extractId);
      } catch (error) {
        // The roads are gone or broken: the map still has its yards.
        if (!(error instanceof HubError && error.code === 'HUB_ERR_CLUSTER_NO_ROAD_DATA')) throw error;
      }
      if (built) {
        const blocks = new Set<number>();
        for (const yard of seen) {
          const block = built.hub.home(yard.candidateId)?.block;
          if (block !== undefined && block >= 0) blocks.add(block);
        }
        for (const block of [...blocks].sort((a, b) => a - b)) {
          const polygon = built.model.blockPolygon(block);
          if (polygon) features.push({ type: 'Feature', geometry: polygon, properties: { kind: 'block', block } });
        }
        for (const road of built.model.barriersNear(hostPoint, this.options.radiusM + 50)) {
          features.push({ type: 'Feature', geometry: road.geometry, properties: { kind: 'barrier', ...road.properties } });
        }
      }
    }
    return { type: 'FeatureCollection', features, attribution: OSM_ATTRIBUTION };
  }

  async #visible(principal: Principal, clusterId: string): Promise<ClusterRecord> {
    const [record] = await this.#records([clusterId]);
    if (!record || !standing(record, principal)) throw hubError('HUB_ERR_CLUSTER_NOT_FOUND');
    return record;
  }

  /** The yard the caller names: by what they see of it (an id, or the `yard-<position>` token of a hidden yard). */
  #yardFor(record: ClusterRecord, principal: Principal, shownId: string): Yard {
    const caller = standing(record, principal)!;
    const yard = record.yards.find((y) => {
      const seen = sight(principal, caller, y);
      return seen === 'full' ? y.candidateId === shownId : seen === 'token' && yardToken(y.position) === shownId;
    });
    if (!yard) throw hubError('HUB_ERR_CLUSTER_MEMBER_NOT_FOUND');
    return yard;
  }

  async #updateYard(clusterId: string, candidateId: string, change: { consent?: ConsentState; zones?: string[] }): Promise<void> {
    await this.options.db
      .updateTable('cluster_members')
      .set({ ...change, updated_at: new Date() })
      .where('cluster_id', '=', clusterId)
      .where('candidate_id', '=', candidateId)
      .execute();
  }

  #present(record: ClusterRecord, viewer: Viewer): ClusterView | undefined {
    const caller = standing(record, viewer);
    if (!caller) return undefined;
    const shownId = new Map<string, string>();
    const members: MemberView[] = [];
    for (const yard of record.yards) {
      const seen = sight(viewer, caller, yard);
      if (seen === 'none') continue;
      const view = memberView(yard, seen);
      shownId.set(yard.candidateId, view.candidate_id);
      members.push(view);
    }
    return {
      id: record.id,
      host_home_id: record.hostHomeId,
      extract_id: record.extractId,
      accepted_at: record.acceptedAt.toISOString(),
      next_position: record.nextPosition,
      schedule: record.schedule,
      route: record.route && { order: record.route.order.flatMap((id) => shownId.get(id) ?? []), length_m: routeLength(record, viewer, caller) },
      members,
    };
  }

  async #records(ids: string[]): Promise<ClusterRecord[]> {
    const { db } = this.options;
    if (ids.length === 0) return [];
    const clusters = await db.selectFrom('cluster_clusters').selectAll().where('id', 'in', ids).orderBy('id').execute();
    if (clusters.length === 0) return [];
    const members = await db
      .selectFrom('cluster_members')
      .selectAll()
      .where('cluster_id', 'in', clusters.map((c) => c.id))
      .orderBy('cluster_id')
      .orderBy('position')
      .execute();
    const lines = await streetLines(db, members.map((m) => m.candidate_id));
    return clusters.map((cluster) => {
      const plan = cluster.plan as Partial<StoredPlan> | null;
      const yards = members.filter((m) => String(m.cluster_id) === String(cluster.id));
      // A member home deleted since the accept has left the route too.
      const present = new Set(yards.map((m) => m.candidate_id));
      return {
        id: String(cluster.id),
        hostHomeId: cluster.host_home_id,
        extractId: cluster.extract_id,
        acceptedAt: cluster.accepted_at,
        nextPosition: cluster.next_position,
        schedule: cluster.schedule ?? null,
        route: plan?.route ? { ...plan.route, order: plan.route.order.filter((id) => present.has(id)) } : null,
        yards: yards.map((m) => ({
          candidateId: m.candidate_id,
          homeId: m.home_id,
          address: lines.get(m.candidate_id) ?? null,
          position: m.position,
          consent: m.consent,
          zones: m.zones,
          updatedAt: m.updated_at,
        })),
      };
    });
  }
}

/**
 * `yard-<n>` for every candidate the plan names, in a fixed order: members in route order,
 * other members, the rejected by id (not by distance: the numbers must not rank a hidden home
 * among visible ones), then ids named in warnings. It depends on the stored plan only, so a
 * token means the same yard to every caller and to accept; a member's token is the position it
 * takes when all members are accepted.
 */
function planTokens(plan: StoredPlan): Map<string, string> {
  const ids = [
    ...(plan.route?.order ?? []),
    ...plan.members.map((m) => m.candidateId),
    ...plan.rejected.map((r) => r.candidateId).sort(),
    ...plan.warnings.flatMap((w) => warningId(w) ?? []),
  ];
  const tokens = new Map<string, string>();
  for (const id of ids) if (id !== plan.hostId && !tokens.has(id)) tokens.set(id, yardToken(tokens.size + 1));
  return tokens;
}

/**
 * Whether a plan hides this candidate from the viewer: another person's hub home, or a pool
 * address the planner merged into another home as its `duplicate` (the same house: its street
 * line would name the home it stands for).
 */
function hiddenInPlan(plan: StoredPlan, viewer: Viewer, id: string): boolean {
  if (viewer.isAdmin || id === plan.hostId || viewer.homes.has(id)) return false;
  return !isAddressCandidate(id) || plan.rejected.some((r) => r.candidateId === id && r.reason === 'duplicate');
}

/** The id in a warning such as `member_geocode_imprecise:<id>`. */
function warningId(warning: string): string | undefined {
  return /^[a-z_]+:(.+)$/.exec(warning)?.[1];
}

function standing(record: ClusterRecord, viewer: Viewer): Standing | undefined {
  if (viewer.isAdmin) return 'admin';
  if (viewer.homes.has(record.hostHomeId)) return 'host';
  const mine = record.yards.filter((y) => y.position > 0 && y.homeId !== null && viewer.homes.has(y.homeId));
  if (mine.some((y) => y.consent === 'accepted')) return 'accepted';
  if (mine.some((y) => y.consent === 'invited')) return 'invited';
  return undefined;
}

/**
 * What a caller sees of a yard: the host's yard and their own always; an invited member
 * nothing else; the host and accepted members the yards that agreed, and pool addresses.
 */
function sight(viewer: Viewer, caller: Standing, yard: Yard): Sight {
  if (caller === 'admin' || yard.position === 0 || (yard.homeId !== null && viewer.homes.has(yard.homeId))) return 'full';
  if (caller === 'invited') return 'none';
  return seenByHost(yard) ? 'full' : 'token';
}

/**
 * The route's length as the caller may see it: only when they see every yard on it. With one
 * yard hidden (a token, or left out), the known legs subtracted from the total would give its.
 */
function routeLength(record: ClusterRecord, viewer: Viewer, caller: Standing): number | null {
  if (!record.route) return null;
  const onRoute = new Set(record.route.order);
  return record.yards.every((yard) => !onRoute.has(yard.candidateId) || sight(viewer, caller, yard) === 'full') ? record.route.lengthM : null;
}

function memberView(yard: Yard, seen: Exclude<Sight, 'none'>): MemberView {
  const hidden = seen === 'token';
  return {
    candidate_id: hidden ? yardToken(yard.position) : yard.candidateId,
    home_id: hidden ? null : yard.homeId,
    address: hidden ? null : yard.address,
    position: yard.position,
    consent: yard.consent,
    zones: yard.zones,
    updated_at: yard.updatedAt.toISOString(),
  };
}

/** The extract's id if it is still stored (a plan can outlive its extract by the hour it waits). */
async function extractIdIfStored(db: ClusterDb, extractId: string): Promise<string | null> {
  return (await db.selectFrom('cluster_road_extracts').select('id').where('id', '=', extractId).executeTakeFirst())?.id ?? null;
}

/** A straight-line tour host → yards → host, for a route whose members were thinned out. */
async function tourLength(db: ClusterDb, hostId: string, order: string[]): Promise<number> {
  const where = await points(db, [hostId, ...order]);
  const stops = [hostId, ...order, hostId].map((id) => where.get(id)).filter((p): p is [number, number] => p !== undefined);
  if (stops.length < 2) return 0;
  const plane = new LocalPlane(stops[0]!);
  let length = 0;
  for (let i = 1; i < stops.length; i++) length += plane.distance(stops[i - 1]!, stops[i]!);
  return Math.round(length * 100) / 100;
}

/** The caller sees the cluster, so a home check that says "not found" means "not yours". */
function forbiddenIfHidden(check: () => unknown): void {
  try {
    check();
  } catch (error) {
    if (error instanceof HubError && error.code === 'HUB_ERR_HOME_NOT_FOUND') throw hubError('HUB_ERR_FORBIDDEN', 'This needs a role in that home');
    throw error;
  }
}
