/**
 * Each accepted cluster shows as two entities of its host home: `sensor.cluster_<id>_members`
 * (how many yards have agreed, and the list) and `sensor.cluster_<id>_next_yard` (the yard the
 * mower visits next). The database is the truth; {@link ClusterEntities.update} copies it out.
 *
 * @module
 */
import type { EntityHandle, PluginContext } from '../../core/plugin.js';
import { streetLines, type ClusterDb } from './store.js';

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

    const list = members.map((m) => ({ candidateId: m.candidate_id, address: lines.get(m.candidate_id) ?? null, consent: m.consent, position: m.position }));
    handles.members.set(String(members.filter((m) => m.consent === 'accepted').length), {
      friendly_name: `Cluster ${id} members`,
      unit_of_measurement: 'yards',
      cluster_id: id,
      members: list,
    });

    const next = members.find((m) => m.position === cluster.next_position);
    const address = next ? lines.get(next.candidate_id) ?? next.candidate_id : 'unknown';
    handles.nextYard.set(address.slice(0, MAX_STATE), {
      friendly_name: `Cluster ${id} next yard`,
      cluster_id: id,
      position: cluster.next_position,
      candidateId: next?.candidate_id ?? null,
      homeId: next?.home_id ?? null,
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
