/**
 * The planner (SPEC §2.5 B, E, F): a road model plus the homes on it. Plans one host's cluster
 * (cap, reasons, route), every host's at once (greedy assignment when hosts compete), or which
 * hosts could take a home. Homes can be added, moved and removed one at a time; only the
 * moved home's neighbourhood changes.
 *
 * @module
 */
import KDBush from 'kdbush';
import { canonicalOf, GEOCODE_CONFLICT_M, locateHome, type LocatedHome } from './homes.js';
import type { RoadModel } from './model.js';
import { centimetres, evaluatePair, type PairHome } from './pairs.js';
import { orderRoute } from './route.js';
import { DEFAULT_PLANNER_CONFIG, type ClusterPlan, type ClusterRoute, type HomeInput, type PairResult, type PlannerConfig, type PreparedHome } from './types.js';

export class UnknownHomeError extends Error {
  override name = 'UnknownHomeError';
  constructor(readonly homeId: string) {
    super(`no home ${homeId} in the planner`);
  }
}

type Home = PreparedHome & PairHome;

/** The detour factor for paths between members when ordering the route (§2.5 F). */
const ROUTE_DETOUR_FACTOR = 3;

export class Planner {
  readonly config: PlannerConfig;
  readonly #located = new Map<string, LocatedHome>();
  readonly #groups = new Map<string, Set<string>>();
  readonly #homes = new Map<string, Home>();
  #index: { tree: KDBush; ids: string[] } | null = null;

  /** The barrier switches in `config` take effect when the model is built (buildRoadModel's `barriers`). */
  constructor(
    readonly model: RoadModel,
    config: Partial<PlannerConfig> = {},
  ) {
    this.config = validConfig({ ...DEFAULT_PLANNER_CONFIG, ...config });
  }

  /** Replaces every home. */
  setHomes(homes: HomeInput[]): void {
    this.#located.clear();
    this.#groups.clear();
    this.#homes.clear();
    for (const home of homes) {
      if (this.#located.has(home.id)) throw new RangeError(`home id ${home.id} appears twice`);
      this.#locate(home);
    }
    for (const [id, located] of this.#located) if (!located.key) this.#homes.set(id, this.#prepared(located, null));
    for (const key of this.#groups.keys()) this.#mergeGroup(key);
    this.#index = null;
  }

  /** Adds or moves one home; returns the ids of homes within the radius of its old or new point. */
  upsertHome(home: HomeInput): string[] {
    const before = this.#located.get(home.id);
    const near = before?.xy ? this.#near(before.xy, this.config.radiusM) : [];
    if (before?.key) this.#leaveGroup(before);
    this.#locate(home);
    this.#rebuildFor(home.id, before?.key ?? null);
    const after = this.#located.get(home.id)!;
    return sortedUnique([...near, ...(after.xy ? this.#near(after.xy, this.config.radiusM) : []), home.id]);
  }

  /** Removes one home; returns the ids of homes that were within the radius of it. */
  removeHome(id: string): string[] {
    const before = this.#located.get(id);
    if (!before) return [];
    const near = before.xy ? this.#near(before.xy, this.config.radiusM).filter((other) => other !== id) : [];
    this.#located.delete(id);
    this.#homes.delete(id);
    if (before.key) {
      this.#leaveGroup(before);
      this.#mergeGroup(before.key);
    }
    this.#index = null;
    return near;
  }

  home(id: string): PreparedHome | undefined {
    const home = this.#homes.get(id);
    return home && publicHome(home);
  }

  homes(): PreparedHome[] {
    return [...this.#homes.values()].sort(byId).map(publicHome);
  }

  /** One host's cluster: members by (pathM, distM, id) up to the cap, everything else with its reason, the route. */
  plan(hostId: string): ClusterPlan {
    const { host, requested, warnings } = this.#host(hostId);
    if (host.status !== 'ok') return emptyPlan(hostId, requested.status === 'duplicate' ? host.status : requested.status, warnings);
    const pairs = this.#pairs(host);
    const qualified = pairs.filter((p) => p.qualified).sort(byPath);
    const members = qualified.slice(0, this.config.maxClusterSize - 1);
    const overflow = qualified.slice(this.config.maxClusterSize - 1).map((p) => ({ ...p, reason: 'capacity' as const, qualified: false }));
    const rejected = [...pairs.filter((p) => !p.qualified), ...overflow].sort(byDistance);
    return { hostId, hostStatus: requested.status, members, rejected, route: this.#route(members), warnings: [...warnings, ...this.#memberWarnings(members)] };
  }

  /**
   * Every host's cluster when hosts compete for candidates: a host never joins another cluster,
   * and each candidate goes to the host with the shortest path (then host id) that has room.
   */
  planAll(hostIds: string[]): ClusterPlan[] {
    const requested = sortedUnique(hostIds).map((id) => ({ id, ...this.#host(id) }));
    const hosts = new Set(requested.flatMap(({ id, host }) => [id, host.id]));
    const served = new Set<string>();
    const pairsOf = new Map<string, PairResult[]>();
    const edges: { host: string; pair: PairResult }[] = [];
    for (const { host } of requested) {
      if (host.status !== 'ok' || served.has(host.id)) continue;
      served.add(host.id);
      const pairs = this.#pairs(host);
      pairsOf.set(host.id, pairs);
      for (const pair of pairs) if (pair.qualified && !hosts.has(pair.candidateId)) edges.push({ host: host.id, pair });
    }
    edges.sort((a, b) => (a.pair.pathM! - b.pair.pathM!) || compare(a.host, b.host) || compare(a.pair.candidateId, b.pair.candidateId));

    const assigned = new Map<string, string>();
    const room = new Map([...pairsOf.keys()].map((id) => [id, this.config.maxClusterSize - 1]));
    const full = new Set<string>();
    for (const { host, pair } of edges) {
      if (assigned.has(pair.candidateId)) continue;
      if (room.get(host)! === 0) {
        full.add(`${host}|${pair.candidateId}`);
        continue;
      }
      assigned.set(pair.candidateId, host);
      room.set(host, room.get(host)! - 1);
    }

    const planned = new Set<string>();
    return requested.map(({ id, host, requested: home, warnings }) => {
      if (host.status !== 'ok') return emptyPlan(id, home.status === 'duplicate' ? host.status : home.status, warnings);
      if (planned.has(host.id)) return emptyPlan(id, home.status, [...warnings, `host_planned_as:${host.id}`]);
      planned.add(host.id);
      const members: PairResult[] = [];
      const rejected: PairResult[] = [];
      for (const pair of pairsOf.get(host.id)!) {
        if (!pair.qualified) rejected.push(pair);
        else if (hosts.has(pair.candidateId)) rejected.push({ ...pair, reason: 'is_host', qualified: false });
        else if (assigned.get(pair.candidateId) === host.id) members.push(pair);
        else rejected.push({ ...pair, reason: full.has(`${host.id}|${pair.candidateId}`) ? 'capacity' : 'assigned_to_other_host', qualified: false });
      }
      members.sort(byPath);
      rejected.sort(byDistance);
      return { hostId: id, hostStatus: home.status, members, rejected, route: this.#route(members), warnings: [...warnings, ...this.#memberWarnings(members)] };
    });
  }

  /** Each host within the radius of a home, judged as (host, home): qualified first by (pathM, distM, hostId). */
  hostsFor(candidateId: string, hostIds: string[]): Array<PairResult & { hostId: string }> {
    const candidate = this.#homes.get(candidateId);
    if (!candidate) throw new UnknownHomeError(candidateId);
    if (!candidate.xy) return [];
    const results: Array<PairResult & { hostId: string }> = [];
    const seen = new Set<string>();
    for (const id of sortedUnique(hostIds)) {
      const { host } = this.#host(id);
      if (host.status !== 'ok' || host.id === candidate.id || seen.has(host.id) || !host.xy) continue;
      seen.add(host.id);
      if (Math.hypot(host.xy[0] - candidate.xy[0], host.xy[1] - candidate.xy[1]) > this.config.radiusM) continue;
      results.push({ hostId: id, ...evaluatePair(this.model, this.config, host, candidate) });
    }
    return results.sort((a, b) => Number(b.qualified) - Number(a.qualified) || (a.pathM ?? 0) - (b.pathM ?? 0) || a.distM - b.distM || compare(a.hostId, b.hostId));
  }

  /** Resolves a host to its canonical record (§2.7-13), with the warnings its plan carries. */
  #host(hostId: string): { host: Home; requested: Home; warnings: string[] } {
    const requested = this.#homes.get(hostId);
    if (!requested) throw new UnknownHomeError(hostId);
    const host = requested.status === 'duplicate' ? this.#homes.get(requested.canonicalId!)! : requested;
    const warnings = [...(requested === host ? [] : [`host_duplicate_of:${host.id}`]), ...host.warnings];
    if (host.status !== 'ok') warnings.push(`host_${host.status}`);
    return { host, requested, warnings };
  }

  /** Every other home within the radius of the host, judged. */
  #pairs(host: Home): PairResult[] {
    return this.#near(host.xy!, this.config.radiusM)
      .filter((id) => id !== host.id)
      .map((id) => evaluatePair(this.model, this.config, host, this.#homes.get(id)!));
  }

  /** Members whose point is only an interpolated or street-level geocode: the plan may be wrong about them. */
  #memberWarnings(members: PairResult[]): string[] {
    return members.filter((m) => this.#homes.get(m.candidateId)!.warnings.includes('geocode_imprecise')).map((m) => `member_geocode_imprecise:${m.candidateId}`);
  }

  #route(members: PairResult[]): ClusterRoute | null {
    if (members.length === 0) return null;
    const ids = members.map((m) => m.candidateId).sort(compare);
    const homes = ids.map((id) => this.#homes.get(id)!);
    const pathOf = new Map(members.map((m) => [m.candidateId, m.pathM!]));
    const routeConfig = { ...this.config, radiusM: Infinity, maxDetourFactor: ROUTE_DETOUR_FACTOR };
    const distance = [[0, ...ids.map((id) => pathOf.get(id)!)]];
    for (const home of homes) distance.push([pathOf.get(home.id)!, ...homes.map(() => 0)]);
    for (let i = 0; i < homes.length; i++) {
      for (let j = i + 1; j < homes.length; j++) {
        const pair = evaluatePair(this.model, routeConfig, homes[i]!, homes[j]!);
        const length = pair.pathM ?? pathOf.get(ids[i]!)! + pathOf.get(ids[j]!)!; // no path: relay via the host
        distance[i + 1]![j + 1] = length;
        distance[j + 1]![i + 1] = length;
      }
    }
    return orderRoute(ids, distance, this.config.routeExactMaxN);
  }

  /** Ids of homes with a point within `radius` of xy, sorted (inclusive boundary). */
  #near(xy: [number, number], radius: number): string[] {
    const index = this.#kdIndex();
    if (!index) return [];
    return index.tree
      .within(xy[0], xy[1], radius + 1e-6)
      .map((i) => index.ids[i]!)
      .filter((id) => {
        const other = this.#homes.get(id)!.xy!;
        return Math.hypot(other[0] - xy[0], other[1] - xy[1]) <= radius;
      })
      .sort(compare);
  }

  #kdIndex(): { tree: KDBush; ids: string[] } | null {
    if (this.#index) return this.#index;
    const ids = [...this.#homes.values()].filter((h) => h.xy).map((h) => h.id).sort(compare);
    if (ids.length === 0) return null;
    const tree = new KDBush(ids.length);
    for (const id of ids) tree.add(...this.#homes.get(id)!.xy!);
    tree.finish();
    this.#index = { tree, ids };
    return this.#index;
  }

  #locate(home: HomeInput): void {
    const located = locateHome(this.model, home, this.config);
    this.#located.set(home.id, located);
    if (located.key) {
      const group = this.#groups.get(located.key) ?? new Set<string>();
      group.add(home.id);
      this.#groups.set(located.key, group);
    }
  }

  #leaveGroup(home: LocatedHome): void {
    const group = this.#groups.get(home.key!);
    group?.delete(home.input.id);
    if (group?.size === 0) this.#groups.delete(home.key!);
  }

  #rebuildFor(id: string, previousKey: string | null): void {
    const located = this.#located.get(id)!;
    if (previousKey && previousKey !== located.key) this.#mergeGroup(previousKey);
    if (located.key) this.#mergeGroup(located.key);
    else this.#homes.set(id, this.#prepared(located, null));
    this.#index = null;
  }

  /** Re-decides which home of an address group is canonical and marks the rest `duplicate`. */
  #mergeGroup(key: string): void {
    const group = [...(this.#groups.get(key) ?? [])].map((id) => this.#located.get(id)!);
    if (group.length === 0) return;
    const canonical = canonicalOf(group);
    for (const home of group) this.#homes.set(home.input.id, this.#prepared(home, home === canonical ? null : canonical));
    const conflicts = group.filter((h) => h !== canonical && h.xy && canonical.xy && Math.hypot(h.xy[0] - canonical.xy[0], h.xy[1] - canonical.xy[1]) > GEOCODE_CONFLICT_M);
    if (conflicts.length) {
      const prepared = this.#homes.get(canonical.input.id)!;
      prepared.warnings = [...prepared.warnings, ...conflicts.map((h) => `geocode_conflict:${h.input.id}`).sort()];
    }
  }

  #prepared(home: LocatedHome, canonical: LocatedHome | null): Home {
    return {
      id: home.input.id,
      status: canonical ? 'duplicate' : home.status,
      lonLat: home.lonLat,
      xy: home.xy,
      addressKey: home.key,
      key: home.key,
      canonicalId: canonical?.input.id ?? null,
      block: home.block,
      roadDistanceM: centimetres(home.roadDistanceM),
      warnings: [...home.warnings],
    };
  }
}

function emptyPlan(hostId: string, hostStatus: PreparedHome['status'], warnings: string[]): ClusterPlan {
  return { hostId, hostStatus, members: [], rejected: [], route: null, warnings };
}

function publicHome(home: Home): PreparedHome {
  const { xy: _xy, key: _key, ...prepared } = home;
  return prepared;
}

function validConfig(config: PlannerConfig): PlannerConfig {
  const positive = ['radiusM', 'roadHalfWidthM', 'maxDetourFactor', 'maxDetourVertices', 'colocatedM', 'routeExactMaxN'] as const;
  for (const name of positive) if (!(config[name] > 0)) throw new RangeError(`planner config ${name} must be positive`);
  if (!Number.isInteger(config.maxClusterSize) || config.maxClusterSize < 1) throw new RangeError('planner config maxClusterSize must be a whole number ≥ 1');
  if (!(config.coverageMarginM >= 0)) throw new RangeError('planner config coverageMarginM must be ≥ 0');
  if (config.adjacency !== 'same-block' && config.adjacency !== 'line-of-sight') throw new RangeError('planner config adjacency must be same-block or line-of-sight');
  return Object.freeze({ ...config });
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byId = (a: { id: string }, b: { id: string }) => compare(a.id, b.id);
const byPath = (a: PairResult, b: PairResult) => a.pathM! - b.pathM! || a.distM - b.distM || compare(a.candidateId, b.candidateId);
const byDistance = (a: PairResult, b: PairResult) => a.distM - b.distM || compare(a.candidateId, b.candidateId);
const sortedUnique = (ids: string[]) => [...new Set(ids)].sort(compare);

