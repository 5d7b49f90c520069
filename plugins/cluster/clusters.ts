/**
 * Plans and clusters: planning a host home's cluster, keeping the plan for its owner to
 * accept, turning it into a cluster (members in route order, consent, zones), and what each
 * caller may see of it. Other homes appear only as ids and street lines.
 *
 * @module
 */
import type { Feature, FeatureCollection, Geometry } from 'geojson';
import { homeRole, requireHomeRole, type Principal } from '../../core/auth/index.js';
import { jsonb } from '../../core/db/index.js';
import { hubError, HubError } from '../../core/errors/index.js';
import type { ClusterEntities } from './entities.js';
import { LocalPlane, type ClusterPlan, type PairResult } from './planner/index.js';
import type { ClusterPlanning } from './planning.js';
import { addressCandidateId, addressRowId, homeInput, isAddressCandidate, points, streetLines, type ClusterDb } from './store.js';
import type { ConsentState } from './tables.js';

/** © OpenStreetMap contributors: every map built from the road data carries it. */
export const OSM_ATTRIBUTION = '© OpenStreetMap contributors, ODbL 1.0 (https://www.openstreetmap.org/copyright)';

/** How long a plan can be accepted after it was made. */
export const PLAN_TTL_MS = 3600_000;

export type PairView = PairResult & { address: string | null };

/** A plan as the API shows it. */
export interface PlanView {
  hostId: string;
  hostStatus: ClusterPlan['hostStatus'];
  members: PairView[];
  rejected: PairView[];
  route: ClusterPlan['route'];
  warnings: string[];
  extractId: string;
}

/** A plan as it is stored (proposals, and the accepted plan of a cluster). */
export type StoredPlan = ClusterPlan & { extractId: string };

export interface MemberView {
  candidateId: string;
  homeId: string | null;
  address: string | null;
  position: number;
  consent: ConsentState;
  zones: string[];
  updatedAt: string;
}

export interface ClusterView {
  id: string;
  hostHomeId: string;
  extractId: string | null;
  acceptedAt: string;
  nextPosition: number;
  schedule: unknown;
  route: { order: string[]; lengthM: number } | null;
  members: MemberView[];
}

export interface ClusterServiceOptions {
  db: ClusterDb;
  planning: ClusterPlanning;
  entities: ClusterEntities;
  /** Homes that own a `lawn_mower.*` entity. */
  mowerHomes(): Set<string>;
  /** Pool addresses registered as hosts, as planner ids. */
  poolHosts(): Promise<string[]>;
  radiusM: number;
}

export class ClusterService {
  constructor(private readonly options: ClusterServiceOptions) {}

  /** Plans the home's cluster with the freshest data this instance has. The caller checked access. */
  async plan(homeId: string): Promise<StoredPlan> {
    const { db, planning } = this.options;
    const home = await db.selectFrom('homes').select(['id', 'address', 'latitude', 'longitude']).where('id', '=', homeId).executeTakeFirst();
    if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
    if (home.latitude === null || home.longitude === null) throw hubError('HUB_ERR_HOME_NO_LOCATION');
    await planning.settled();
    const extract = planning.extractAt([home.longitude, home.latitude]);
    if (!extract) throw hubError('HUB_ERR_CLUSTER_NO_ROAD_DATA');
    const built = await planning.built(extract.id);
    // Normally there already (events keep the planners current); a home changed on another instance may not be.
    if (!built.hub.home(homeId)) built.hub.upsertHome(homeInput(home));
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
    if (!row || !homeRole(principal, row.host_home_id)) throw hubError('HUB_ERR_CLUSTER_PLAN_NOT_FOUND');
    return row.plan as StoredPlan;
  }

  /** Every host (homes with a mower, pool hosts) planned at once, competing for candidates. */
  async planAll(): Promise<{ plans: StoredPlan[]; unplanned: { hostId: string; reason: 'no_location' | 'no_road_data' }[] }> {
    const { db, planning } = this.options;
    await planning.settled();
    const homeIds = [...this.options.mowerHomes()];
    const homes = homeIds.length ? await db.selectFrom('homes').select(['id', 'latitude', 'longitude']).where('id', 'in', homeIds).execute() : [];
    const poolIds = await this.options.poolHosts();
    const pool = poolIds.length
      ? await db.selectFrom('cluster_addresses').select(['id', 'latitude', 'longitude']).where('id', 'in', poolIds.map(addressRowId)).execute()
      : [];
    const hosts = [...homes.map((h) => ({ ...h, hostId: h.id })), ...pool.map((a) => ({ ...a, hostId: addressCandidateId(a.id) }))];
    const byExtract = new Map<string, string[]>();
    const unplanned: { hostId: string; reason: 'no_location' | 'no_road_data' }[] = [];
    for (const host of hosts) {
      if (host.latitude === null || host.longitude === null) {
        unplanned.push({ hostId: host.hostId, reason: 'no_location' });
        continue;
      }
      const extract = planning.extractAt([host.longitude, host.latitude]);
      if (!extract) unplanned.push({ hostId: host.hostId, reason: 'no_road_data' });
      else byExtract.set(extract.id, [...(byExtract.get(extract.id) ?? []), host.hostId]);
    }
    const plans: StoredPlan[] = [];
    for (const [extractId, ids] of [...byExtract].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const built = await planning.built(extractId);
      const present = ids.filter((id) => built.hub.home(id));
      for (const plan of built.hub.planAll(present)) plans.push({ ...plan, extractId });
    }
    return { plans, unplanned: unplanned.sort((a, b) => (a.hostId < b.hostId ? -1 : 1)) };
  }

  /** The plan with each yard's street line. */
  async present(plan: StoredPlan): Promise<PlanView> {
    const ids = [plan.hostId, ...plan.members.map((m) => m.candidateId), ...plan.rejected.map((r) => r.candidateId)];
    const lines = await streetLines(this.options.db, ids);
    const withAddress = (pair: PairResult): PairView => ({ ...pair, address: lines.get(pair.candidateId) ?? null });
    return {
      hostId: plan.hostId,
      hostStatus: plan.hostStatus,
      members: plan.members.map(withAddress),
      rejected: plan.rejected.map(withAddress),
      route: plan.route,
      warnings: plan.warnings,
      extractId: plan.extractId,
    };
  }

  /**
   * Turns a plan into the host's cluster: the host's yard at position 0 (consent accepted), the
   * chosen members (all by default) in the plan's route order, each invited.
   */
  async accept(plan: StoredPlan, chosen: string[] | undefined, createdBy: string): Promise<ClusterView> {
    const { db } = this.options;
    if (plan.hostStatus !== 'ok' || plan.members.length === 0) throw hubError('HUB_ERR_CLUSTER_EMPTY');
    const planned = new Set(plan.members.map((m) => m.candidateId));
    const unknown = (chosen ?? []).filter((id) => !planned.has(id));
    if (unknown.length > 0) {
      throw hubError('HUB_ERR_VALIDATION', 'Members must come from the plan', {
        details: unknown.map((id) => ({ path: ['members'], message: `${id} is not a member of the plan`, code: 'invalid_value' })),
      });
    }
    const keep = new Set(chosen?.length ? chosen : planned);
    if (keep.size === 0) throw hubError('HUB_ERR_CLUSTER_EMPTY');
    const members = plan.members.filter((m) => keep.has(m.candidateId));
    const order = (plan.route?.order ?? members.map((m) => m.candidateId)).filter((id) => keep.has(id));
    const lengthM = keep.size === planned.size && plan.route ? plan.route.lengthM : await this.#tourLength(plan.hostId, order);
    const accepted: StoredPlan = { ...plan, members, route: { order, lengthM } };

    const id = await db.transaction().execute(async (trx) => {
      // Serialises accepts for one home, so two clicks cannot make two clusters.
      const home = await trx.selectFrom('homes').select('id').where('id', '=', plan.hostId).forUpdate().executeTakeFirst();
      if (!home) throw hubError('HUB_ERR_HOME_NOT_FOUND');
      const existing = await trx.selectFrom('cluster_clusters').select('id').where('host_home_id', '=', plan.hostId).executeTakeFirst();
      if (existing) throw hubError('HUB_ERR_CLUSTER_EXISTS', undefined, { details: { clusterId: String(existing.id) } });
      const homeIds = order.filter((c) => !isAddressCandidate(c));
      const live = new Set(homeIds.length ? (await trx.selectFrom('homes').select('id').where('id', 'in', homeIds).execute()).map((h) => h.id) : []);
      const extract = await trx.selectFrom('cluster_road_extracts').select('id').where('id', '=', plan.extractId).executeTakeFirst();
      const cluster = await trx
        .insertInto('cluster_clusters')
        .values({ host_home_id: plan.hostId, extract_id: extract?.id ?? null, plan: jsonb(accepted), created_by: createdBy })
        .returning('id')
        .executeTakeFirstOrThrow();
      // A member home deleted since the plan was made is left out.
      const yards = order.filter((c) => isAddressCandidate(c) || live.has(c));
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
      return String(cluster.id);
    });
    await this.options.entities.update(id);
    const [view] = await this.views([id]);
    return view!;
  }

  /** Ids of the clusters the caller belongs to (through the host home or a member home); all for admins. */
  async visibleIds(principal: Principal): Promise<string[]> {
    const { db } = this.options;
    let query = db.selectFrom('cluster_clusters').select('id').orderBy('id');
    if (!principal.isAdmin) {
      const homes = [...principal.homes.keys()];
      if (homes.length === 0) return [];
      query = query.where((eb) =>
        eb.or([
          eb('host_home_id', 'in', homes),
          eb.exists(eb.selectFrom('cluster_members').select('cluster_id').whereRef('cluster_members.cluster_id', '=', 'cluster_clusters.id').where('cluster_members.home_id', 'in', homes)),
        ]),
      );
    }
    return (await query.execute()).map((r) => String(r.id));
  }

  /** The cluster if the caller may see it, else HUB_ERR_CLUSTER_NOT_FOUND (whether or not it exists). */
  async visible(principal: Principal, clusterId: string): Promise<ClusterView> {
    const [view] = await this.views([clusterId]);
    if (!view) throw hubError('HUB_ERR_CLUSTER_NOT_FOUND');
    const sees = principal.isAdmin || principal.homes.has(view.hostHomeId) || view.members.some((m) => m.homeId && principal.homes.has(m.homeId));
    if (!sees) throw hubError('HUB_ERR_CLUSTER_NOT_FOUND');
    return view;
  }

  async views(ids: string[]): Promise<ClusterView[]> {
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
      const route = plan?.route ? { ...plan.route, order: plan.route.order.filter((id) => present.has(id)) } : null;
      return {
        id: String(cluster.id),
        hostHomeId: cluster.host_home_id,
        extractId: cluster.extract_id,
        acceptedAt: cluster.accepted_at.toISOString(),
        nextPosition: cluster.next_position,
        schedule: cluster.schedule ?? null,
        route,
        members: yards.map((m) => ({
          candidateId: m.candidate_id,
          homeId: m.home_id,
          address: lines.get(m.candidate_id) ?? null,
          position: m.position,
          consent: m.consent,
          zones: m.zones,
          updatedAt: m.updated_at.toISOString(),
        })),
      };
    });
  }

  /**
   * A member's answer to the invitation. Only that member's home (its owner) or an admin may
   * give it; pool addresses have no home, so only an admin answers for them.
   */
  async setConsent(principal: Principal, clusterId: string, candidateId: string, consent: 'accepted' | 'declined'): Promise<MemberView> {
    const view = await this.visible(principal, clusterId);
    const member = memberOf(view, candidateId);
    if (member.position === 0) throw hubError('HUB_ERR_CLUSTER_HOST_YARD');
    if (!principal.isAdmin) {
      if (!member.homeId) throw hubError('HUB_ERR_FORBIDDEN', "Only the yard's own home can answer for it");
      forbiddenIfHidden(() => requireHomeRole(principal, member.homeId!, 'owner'));
    }
    await this.options.db
      .updateTable('cluster_members')
      .set({ consent, updated_at: new Date() })
      .where('cluster_id', '=', clusterId)
      .where('candidate_id', '=', candidateId)
      .execute();
    await this.options.entities.update(clusterId);
    return memberOf((await this.views([clusterId]))[0]!, candidateId);
  }

  /** The host mower's areas for one yard; set by the host home (technician or above). */
  async setZones(principal: Principal, clusterId: string, candidateId: string, zones: string[]): Promise<MemberView> {
    const view = await this.visible(principal, clusterId);
    forbiddenIfHidden(() => requireHomeRole(principal, view.hostHomeId, 'technician'));
    memberOf(view, candidateId);
    await this.options.db
      .updateTable('cluster_members')
      .set({ zones, updated_at: new Date() })
      .where('cluster_id', '=', clusterId)
      .where('candidate_id', '=', candidateId)
      .execute();
    return memberOf((await this.views([clusterId]))[0]!, candidateId);
  }

  async remove(principal: Principal, clusterId: string): Promise<void> {
    const view = await this.visible(principal, clusterId);
    forbiddenIfHidden(() => requireHomeRole(principal, view.hostHomeId, 'owner'));
    await this.options.db.deleteFrom('cluster_clusters').where('id', '=', clusterId).execute();
    await this.options.entities.update(clusterId);
  }

  /**
   * The cluster as a map: host and member points, the route, the host's block and the roads
   * near it, each feature with a `kind`; the OSM attribution rides along.
   */
  async geojson(view: ClusterView): Promise<FeatureCollection & { attribution: string }> {
    const { db, planning } = this.options;
    const features: Feature<Geometry, Record<string, unknown>>[] = [];
    const where = await points(db, view.members.map((m) => m.candidateId));
    for (const member of view.members) {
      const point = where.get(member.candidateId);
      if (!point) continue;
      const host = member.position === 0;
      features.push({
        type: 'Feature',
        geometry: { type: 'Point', coordinates: point },
        properties: { kind: host ? 'host' : 'member', candidateId: member.candidateId, address: member.address, position: member.position, consent: member.consent },
      });
    }
    const stops = view.members.map((m) => where.get(m.candidateId)).filter((p): p is [number, number] => p !== undefined);
    if (stops.length > 1) {
      features.push({ type: 'Feature', geometry: { type: 'LineString', coordinates: [...stops, stops[0]!] }, properties: { kind: 'route', lengthM: view.route?.lengthM ?? null } });
    }
    const hostPoint = where.get(view.hostHomeId);
    if (view.extractId && planning.extract(view.extractId) && hostPoint) {
      const built = await planning.built(view.extractId);
      const blocks = new Set<number>();
      for (const member of view.members) {
        const block = built.hub.home(member.candidateId)?.block;
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
    return { type: 'FeatureCollection', features, attribution: OSM_ATTRIBUTION };
  }

  /** A straight-line tour host → yards → host, for a route whose members were thinned out. */
  async #tourLength(hostId: string, order: string[]): Promise<number> {
    const where = await points(this.options.db, [hostId, ...order]);
    const stops = [hostId, ...order, hostId].map((id) => where.get(id)).filter((p): p is [number, number] => p !== undefined);
    if (stops.length < 2) return 0;
    const plane = new LocalPlane(stops[0]!);
    let length = 0;
    for (let i = 1; i < stops.length; i++) length += plane.distance(stops[i - 1]!, stops[i]!);
    return Math.round(length * 100) / 100;
  }
}

function memberOf(view: ClusterView, candidateId: string): MemberView {
  const member = view.members.find((m) => m.candidateId === candidateId);
  if (!member) throw hubError('HUB_ERR_CLUSTER_MEMBER_NOT_FOUND');
  return member;
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
