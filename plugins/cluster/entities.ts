/**
 * Each accepted cluster shows as two entities of its host home: `sensor.cluster_<id>_members`
 * (how many yards have agreed, and the list) and `sensor.cluster_<id>_next_yard` (the yard the
 * mower visits next). The database is the truth; {@link ClusterEntities.update} copies it out.
 * A neighbour's home shows there (its id and street line) only once it has agreed.
 *
 * @module
 */
import type { EntityHandle, PluginContext } from '../../core/plugin.js';
import { seenByHost, streetLines, yardToken } from './store.js';
import type { ClusterDb } from './tables.js';

/** States of a mower the hub cannot reach. */
export const UNAVAILABLE = new Set(['unavailable', 'unknown']);

/**
 * The hub's mowers (`lawn_mower.*` entities) by home, each home's reachable ones first, then by
 * entity id. A home with a mower can host a cluster; the first of its mowers walks the route.
 * The one place that decides what counts as a home's mower.
 */
export function mowersByHome(states: PluginContext['states']): Map<string, string[]> {
  const byHome = new Map<string, { id: string; away: boolean }[]>();
  for (const state of states.all()) {
    if (!state.entity_id.startsWith('lawn_mower.')) continue;
    const home = states.homeOf(state.entity_id);
    if (!home) continue;
    byHome.set(home, [...(byHome.get(home) ?? []), { id: state.entity_id, away: UNAVAILABLE.has(state.state) }]);
  }
  return new Map(
    [...byHome].map(([home, mowers]) => [home, mowers.sort((a, b) => Number(a.away) - Number(b.away) || a.id.localeCompare(b.id)).map((m) => m.id)]),
  );
}

const MAX_STATE = 255;

interface Handles {
  homeId: string;
  members: EntityHandle;
  nextYard: EntityHandle;
}

export class ClusterEntities {
  readonly #handles = new Map<string, Handles>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly ctx: Pick<PluginContext, 'entities'>,
    private readonly db: ClusterDb,
  ) {}

  static membersEntityId = (clusterId: string | number) => `sensor.cluster_${clusterId}_members`;
  static nextYardEntityId = (clusterId: string | number) => `sensor.cluster_${clusterId}_next_yard`;

  /** Registers the entities of every stored cluster (at plugin start). */
  async restore(): Promise<void> {
    const clusters = await this.db.selectFrom('cluster_clusters').select('id').orderBy('id').execute();
    for (const { id } of clusters) await this.update(id);
  }

  /**
   * Copies one cluster's members, consent and `next_position` from the database to its two
   * entities, registering them the first time; removes them when the cluster no longer exists.
   * Call it after changing any of those (the weekly schedule calls it when the position moves).
   */
  update(clusterId: string | number): Promise<void> {
    const id = String(clusterId);
    const next = this.#queue.catch(() => {}).then(() => this.#update(id));
    this.#queue = next;
    return next;
  }

  /** Refreshes every cluster the plugin shows, and drops those that are gone (a home was deleted). */
  async sync(): Promise<void> {
    const ids = new Set((await this.db.selectFrom('cluster_clusters').select('id').execute()).map((r) => String(r.id)));
    for (const id of [...this.#handles.keys(), ...ids]) await this.update(id);
  }

  async #update(id: string): Promise<void> {
    const cluster = await this.db.selectFrom('cluster_clusters').select(['id', 'host_home_id', 'next_position']).where('id', '=', id).executeTakeFirst();
    if (!cluster) return this.#remove(id);
    const members = await this.db
      .selectFrom('cluster_members')
      .select(['candidate_id', 'home_id', 'position', 'consent'])
      .where('cluster_id', '=', id)
      .orderBy('position')
      .execute();
    const lines = await streetLines(this.db, members.map((m) => m.candidate_id));
    const handles = await this.#handlesOf(id, cluster.host_home_id);

    // The entities belong to the host home: its members see a neighbour's yard once that
    // neighbour has agreed (or when it is a pool address), as the cluster's own routes show it.
    const shown = (m: (typeof members)[number]) => seenByHost({ candidateId: m.candidate_id, position: m.position, consent: m.consent });
    const list = members.map((m) =>
      shown(m)
        ? { candidate_id: m.candidate_id, address: lines.get(m.candidate_id) ?? null, consent: m.consent, position: m.position }
        : { candidate_id: yardToken(m.position), address: null, consent: m.consent, position: m.position },
    );
    handles.members.set(String(members.filter((m) => m.consent === 'accepted').length), {
      friendly_name: `Cluster ${id} members`,
      unit_of_measurement: 'yards',
      cluster_id: id,
      members: list,
    });

    const next = members.find((m) => m.position === cluster.next_position);
    const visible = next && shown(next);
    const label = !next ? 'unknown' : visible ? (lines.get(next.candidate_id) ?? next.candidate_id) : yardToken(next.position);
    handles.nextYard.set(label.slice(0, MAX_STATE), {
      friendly_name: `Cluster ${id} next yard`,
      cluster_id: id,
      position: cluster.next_position,
      candidate_id: !next ? null : visible ? next.candidate_id : yardToken(next.position),
      home_id: visible ? next.home_id : null,
      consent: next?.consent ?? null,
    });
  }

  async #handlesOf(id: string, homeId: string): Promise<Handles> {
    const existing = this.#handles.get(id);
    if (existing && existing.homeId === homeId) return existing;
    const members = await this.ctx.entities.register({ entity_id: ClusterEntities.membersEntityId(id), home_id: homeId, initial: { state: '0' } });
    const nextYard = await this.ctx.entities.register({ entity_id: ClusterEntities.nextYardEntityId(id), home_id: homeId, initial: { state: 'unknown' } });
    const handles = { homeId, members, nextYard };
    this.#handles.set(id, handles);
    return handles;
  }

  #remove(id: string): void {
    const handles = this.#handles.get(id);
    if (!handles) return;
    handles.members.remove();
    handles.nextYard.remove();
    this.#handles.delete(id);
  }
}
