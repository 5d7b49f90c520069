/**
 * Cluster runs: one walk of a cluster's route by the host's mower. The database holds the whole
 * state of a walk (the run, and one visit per yard), so any hub instance can take the next step
 * and a restarted hub carries on where the last one stopped:
 *
 * - a run starts at position 0 (the host's yard) and visits the members in position order;
 * - a yard whose member has not accepted, or that has no zones, gets a `skipped` visit;
 * - otherwise an open visit is written, then the mower is sent there (`mammotion.start_zones`);
 * - `mowing_session_ended` for that mower closes the open visit with the session's m²
 *   (`cluster_yard_mowed` tells billing) and starts the next yard; after the last one the run
 *   is finished. An interrupted session, a failed start or a yard that takes too long fails it.
 *
 * Each step is guarded by the database (a visit per yard and run is unique, runs and visits
 * change only from the state the step read), so two instances reacting to the same event, or a
 * recovery sweep meeting a live step, never mow a yard twice.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { isUniqueViolation, sqlState, type Database } from '../../core/db/index.js';
import { hubError } from '../../core/errors/index.js';
import type { PluginContext } from '../../core/plugin.js';
import type { ClusterTables, RunStatus, VisitOutcome } from './tables.js';

export type ClusterDb = Kysely<Database & ClusterTables>;

/** A yard visit as the API shows it. */
export type YardVisitView = {
  candidate_id: string;
  home_id: string | null;
  /** The yard's place in the route now (null when it has left the cluster since). */
  position: number | null;
  session_id: string | null;
  started_at: string;
  ended_at: string | null;
  area_m2: number;
  outcome: VisitOutcome | null;
  detail: string | null;
};

/** A run as the API shows it. */
export type RunView = {
  id: string;
  cluster_id: string;
  status: RunStatus;
  started_at: string;
  ended_at: string | null;
  position: number;
  entity_id: string | null;
  /** The weekly-plan time the run was started for; null when started by hand. */
  slot: string | null;
  detail: string | null;
  visits: YardVisitView[];
};

/** The yard the mower mows now, or will mow next (the host's, between runs). */
export type NextYard = {
  cluster_id: string;
  position: number;
  candidate_id: string;
  home_id: string | null;
  consent: string;
  zones: string[];
  run_id: string | null;
};

/** Data of `cluster_yard_mowed`: one yard's mowed area, for billing. */
export type YardMowed = {
  cluster_id: string;
  run_id: string;
  /** The yard's home; null for an address-only member. */
  home_id: string | null;
  candidate_id: string;
  area_m2: number;
  session_id: string;
  /** `interrupted` when the mower stopped early: the area is what it did mow. */
  outcome: 'finished' | 'interrupted';
};

/** What a walk needs from a `mowing_session_ended` event; anything else is dropped. */
export const SessionEndedData = z.object({
  session_id: z.uuid(),
  entity_id: z.string().min(1).max(255),
  area_m2: z.number().finite().min(0),
  started_at: z.iso.datetime({ offset: true }).optional(),
  ended_at: z.iso.datetime({ offset: true }).optional(),
  outcome: z.enum(['finished', 'interrupted']),
});
export type SessionEndedData = z.output<typeof SessionEndedData>;

export interface RunOptions {
  /** Refreshes what shows the cluster's next yard (its entity). */
  positionChanged(clusterId: string): Promise<void>;
  /** How long one yard may take before the run fails. */
  yardTimeoutMs: number;
}

// A session that started this much before its visit was written still belongs to it: the
// instances' clocks and the mower's first report may disagree by a little.
const CLOCK_SLACK_MS = 60_000;
const UNAVAILABLE = new Set(['unavailable', 'unknown']);

/**
 * Starts, steps, cancels and reports cluster runs. One per plugin start; every step reads and
 * writes the database, so instances and restarts share the walk.
 */
export class ClusterRuns {
  readonly #db: ClusterDb;
  /** Steps per run on this instance, one after another (the database guards across instances). */
  readonly #chains = new Map<string, Promise<void>>();

  constructor(
    private readonly ctx: PluginContext<unknown>,
    private readonly options: RunOptions,
  ) {
    this.#db = ctx.db.withTables<ClusterTables>();
  }

  /** The host home's mowers (`lawn_mower.*`), those that are reachable first, then by id. */
  mowersOf(homeId: string): string[] {
    return this.ctx.states
      .all()
      .filter((s) => s.entity_id.startsWith('lawn_mower.') && this.ctx.states.homeOf(s.entity_id) === homeId)
      .sort((a, b) => Number(UNAVAILABLE.has(a.state)) - Number(UNAVAILABLE.has(b.state)) || a.entity_id.localeCompare(b.entity_id))
      .map((s) => s.entity_id);
  }

  /**
   * Starts a run now and sends the mower to the first yard.
   *
   * @throws HUB_ERR_CLUSTER_NOT_FOUND, HUB_ERR_CLUSTER_NO_MOWER, HUB_ERR_VALIDATION (an
   *   `entityId` that is not the host's mower), HUB_ERR_CLUSTER_RUN_ACTIVE
   */
  async start(clusterId: string, options: { entityId?: string } = {}): Promise<RunView> {
    const cluster = await this.#cluster(clusterId);
    const mowers = this.mowersOf(cluster.host_home_id);
    if (options.entityId !== undefined && !mowers.includes(options.entityId)) {
      throw hubError('HUB_ERR_VALIDATION', `${options.entityId} is not a mower of the cluster's host home`);
    }
    const entityId = options.entityId ?? mowers[0];
    if (!entityId) throw hubError('HUB_ERR_CLUSTER_NO_MOWER');
    let runId: string;
    try {
      runId = await this.#insertRun(cluster.id, entityId, null);
    } catch (error) {
      if (isUniqueViolation(error)) throw hubError('HUB_ERR_CLUSTER_RUN_ACTIVE');
      throw error;
    }
    await this.#began(cluster, runId, entityId);
    return (await this.view(runId))!;
  }

  /**
   * Starts the run of a weekly-plan slot, once: a slot that has a run (on any instance) is left
   * alone. A slot that cannot start (a run still going, no mower) is recorded as an ended run
   * with the reason, so the owner sees it and it is not tried again.
   *
   * @returns the run's id, or undefined when the slot had one already.
   */
  async startSlot(clusterId: string, slot: Date): Promise<string | undefined> {
    const cluster = await this.#cluster(clusterId);
    const taken = () => this.#db.selectFrom('cluster_runs').select('id').where('cluster_id', '=', cluster.id).where('slot', '=', slot).executeTakeFirst();
    if (await taken()) return undefined;
    const entityId = this.mowersOf(cluster.host_home_id)[0];
    if (!entityId) return this.#recordUnstarted(cluster.id, slot, 'failed', 'Not started: the host home has no mower');
    let runId: string;
    try {
      runId = await this.#insertRun(cluster.id, entityId, slot);
    } catch (error) {
      if (!isUniqueViolation(error)) throw error;
      if (await taken()) return undefined; // another instance started this slot
      return this.#recordUnstarted(cluster.id, slot, 'cancelled', 'Not started: the previous run of this cluster was still going');
    }
    await this.#began(cluster, runId, entityId);
    return runId;
  }

  async #recordUnstarted(clusterId: string, slot: Date, status: RunStatus, detail: string): Promise<string | undefined> {
    const row = await this.#db
      .insertInto('cluster_runs')
      .values({ cluster_id: clusterId, entity_id: null, slot, status, detail, ended_at: new Date() })
      .onConflict((oc) => oc.columns(['cluster_id', 'slot']).doNothing())
      .returning('id')
      .executeTakeFirst();
    if (row) this.ctx.log.warn({ clusterId, slot: slot.toISOString() }, detail);
    return row?.id;
  }

  async #insertRun(clusterId: string, entityId: string, slot: Date | null): Promise<string> {
    // Visits a cancelled or failed run left open will never hear from their session now.
    await this.#db
      .updateTable('cluster_yard_visits')
      .set({ ended_at: new Date(), outcome: 'failed', detail: 'No mowing session ended for this yard' })
      .where('ended_at', 'is', null)
      .where('run_id', 'in', (eb) => eb.selectFrom('cluster_runs').select('id').where('entity_id', '=', entityId).where('status', '!=', 'running'))
      .execute();
    const row = await this.#db
      .insertInto('cluster_runs')
      .values({ cluster_id: clusterId, entity_id: entityId, slot, started_at: new Date() })
      .returning('id')
      .executeTakeFirstOrThrow();
    return row.id;
  }

  async #began(cluster: { id: string; host_home_id: string }, runId: string, entityId: string): Promise<void> {
    this.ctx.log.info({ clusterId: cluster.id, runId, entityId }, 'cluster run started');
    this.ctx.bus.fire('cluster_run_started', { cluster_id: cluster.id, run_id: runId, entity_id: entityId }, { homeId: cluster.host_home_id });
    await this.advance(runId);
  }

  /**
   * Ends a running run as cancelled and sends its mower home. A yard being mowed keeps its
   * open visit, so the area the mower did mow is still recorded when its session ends.
   *
   * @throws HUB_ERR_CLUSTER_RUN_NOT_FOUND, HUB_ERR_CLUSTER_RUN_ENDED
   */
  async cancel(runId: string, detail: string): Promise<RunView> {
    const ended = await this.#end(runId, 'cancelled', detail);
    if (!ended) {
      if (!(await this.view(runId))) throw hubError('HUB_ERR_CLUSTER_RUN_NOT_FOUND');
      throw hubError('HUB_ERR_CLUSTER_RUN_ENDED');
    }
    const open = await this.#openVisit(runId);
    if (open && ended.entity_id) {
      await this.ctx.actions
        .call('lawn_mower', 'dock', {}, { target: { entity_id: ended.entity_id } })
        .catch((error: unknown) => this.ctx.log.warn({ err: error, runId, entityId: ended.entity_id }, 'the mower of a cancelled run was not sent home'));
    }
    return (await this.view(runId))!;
  }

  /**
   * Takes a `mowing_session_ended`: the newest open visit of a run walked by that mower gets the
   * session, and a running run goes on (or fails, when the session was interrupted).
   */
  async sessionEnded(data: SessionEndedData): Promise<void> {
    const endedAt = data.ended_at ? new Date(data.ended_at) : new Date();
    let query = this.#db
      .selectFrom('cluster_yard_visits as v')
      .innerJoin('cluster_runs as r', 'r.id', 'v.run_id')
      .select(['v.id', 'v.run_id', 'v.cluster_id', 'v.candidate_id', 'v.home_id', 'r.status'])
      .where('r.entity_id', '=', data.entity_id)
      .where('v.ended_at', 'is', null);
    if (data.started_at) query = query.where('v.started_at', '<=', new Date(new Date(data.started_at).getTime() + CLOCK_SLACK_MS));
    const visit = await query.orderBy('v.started_at', 'desc').limit(1).executeTakeFirst();
    if (!visit) return;
    const closed = await this.#db
      .updateTable('cluster_yard_visits')
      .set({ session_id: data.session_id, ended_at: endedAt, area_m2: data.area_m2, outcome: data.outcome })
      .where('id', '=', visit.id)
      .where('ended_at', 'is', null)
      .returning('id')
      .executeTakeFirst();
    if (!closed) return; // another instance took this event
    const clusterId = String(visit.cluster_id);
    const host = await this.#db.selectFrom('cluster_clusters').select('host_home_id').where('id', '=', clusterId).executeTakeFirst();
    const mowed: YardMowed = {
      cluster_id: clusterId,
      run_id: visit.run_id,
      home_id: visit.home_id,
      candidate_id: visit.candidate_id,
      area_m2: data.area_m2,
      session_id: data.session_id,
      outcome: data.outcome,
    };
    this.ctx.log.info({ clusterId, runId: visit.run_id, candidateId: visit.candidate_id, areaM2: data.area_m2, outcome: data.outcome }, 'cluster yard mowed');
    try {
      if (visit.status !== 'running') return;
      if (data.outcome === 'interrupted') {
        await this.#end(visit.run_id, 'failed', `The mower stopped before it finished the yard ${visit.candidate_id} (session ${data.session_id})`);
      } else {
        await this.advance(visit.run_id);
      }
    } finally {
      // After the step, so that whoever hears it and asks for the next yard gets the new one.
      this.ctx.bus.fire('cluster_yard_mowed', mowed, { homeId: visit.home_id ?? host?.host_home_id ?? null });
    }
  }

  /**
   * What a job does every tick, and the hub at start: fails runs whose yard took too long, and
   * carries on runs that stopped between two yards (an instance went down mid-step).
   */
  async sweep(now = new Date()): Promise<void> {
    const running = await this.#db.selectFrom('cluster_runs').select(['id', 'entity_id']).where('status', '=', 'running').execute();
    for (const { id, entity_id: entityId } of running) {
      const open = await this.#openVisit(id);
      if (!open) {
        // After a restart the mower is back only once its plugin has reconnected; until then, wait.
        const mower = entityId ? this.ctx.states.get(entityId) : undefined;
        if (mower && !UNAVAILABLE.has(mower.state)) await this.advance(id);
      } else if (now.getTime() - open.started_at.getTime() > this.options.yardTimeoutMs) {
        const hours = Math.round((this.options.yardTimeoutMs / 3_600_000) * 100) / 100;
        await this.#end(id, 'failed', `No mowing session ended at the yard ${open.candidate_id} within ${hours} h`);
      }
    }
  }

  /** Takes the next step of a running run: skips what cannot be mowed, sends the mower to the next yard, or finishes. */
  advance(runId: string): Promise<void> {
    const next = (this.#chains.get(runId) ?? Promise.resolve()).then(() => this.#advance(runId));
    const settled = next.catch(() => {});
    this.#chains.set(runId, settled);
    void settled.then(() => {
      if (this.#chains.get(runId) === settled) this.#chains.delete(runId);
    });
    return next;
  }

  async #advance(runId: string): Promise<void> {
    for (;;) {
      const run = await this.#db.selectFrom('cluster_runs').select(['id', 'cluster_id', 'entity_id']).where('id', '=', runId).where('status', '=', 'running').executeTakeFirst();
      if (!run?.entity_id || (await this.#openVisit(runId))) return;
      const clusterId = String(run.cluster_id);
      const members = await this.#db
        .selectFrom('cluster_members')
        .select(['candidate_id', 'home_id', 'position', 'consent', 'zones'])
        .where('cluster_id', '=', clusterId)
        .orderBy('position')
        .orderBy('candidate_id')
        .execute();
      const visited = new Set((await this.#db.selectFrom('cluster_yard_visits').select('candidate_id').where('run_id', '=', runId).execute()).map((v) => v.candidate_id));
      const yard = members.find((m) => !visited.has(m.candidate_id));
      if (!yard) {
        await this.#end(runId, 'finished', null);
        return;
      }
      await this.#moveTo(clusterId, runId, yard.position);

      const skip = yard.consent !== 'accepted' ? `Skipped: the member's consent is ${yard.consent}` : yard.zones.length === 0 ? 'Skipped: no zones are set for this yard' : null;
      const visit = await this.#insertVisit({
        run_id: runId,
        cluster_id: clusterId,
        candidate_id: yard.candidate_id,
        home_id: yard.home_id,
        ...(skip ? { ended_at: new Date(), outcome: 'skipped' as const, detail: skip } : {}),
      });
      if (!visit) return; // another instance took this step
      if (skip) {
        this.ctx.log.info({ clusterId, runId, candidateId: yard.candidate_id }, skip);
        continue;
      }
      try {
        await this.ctx.actions.call('mammotion', 'start_zones', { zones: yard.zones }, { target: { entity_id: run.entity_id } });
        this.ctx.log.info({ clusterId, runId, candidateId: yard.candidate_id, zones: yard.zones }, 'cluster mower sent to the next yard');
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        await this.#db
          .updateTable('cluster_yard_visits')
          .set({ ended_at: new Date(), outcome: 'failed', detail: `The mower did not start: ${message}` })
          .where('id', '=', visit)
          .where('ended_at', 'is', null)
          .execute();
        await this.#end(runId, 'failed', `The mower did not start on the yard ${yard.candidate_id}: ${message}`);
      }
      return;
    }
  }

  async #insertVisit(values: {
    run_id: string;
    cluster_id: string;
    candidate_id: string;
    home_id: string | null;
    ended_at?: Date;
    outcome?: VisitOutcome;
    detail?: string;
  }): Promise<string | undefined> {
    try {
      const row = await this.#db
        .insertInto('cluster_yard_visits')
        .values({ ...values, started_at: new Date() })
        .onConflict((oc) => oc.columns(['run_id', 'candidate_id']).doNothing())
        .returning('id')
        .executeTakeFirst();
      return row?.id;
    } catch (error) {
      // The run or its cluster was deleted under the step.
      if (sqlState(error) === '23503') return undefined;
      throw error;
    }
  }

  async #moveTo(clusterId: string, runId: string, position: number): Promise<void> {
    await this.#db.updateTable('cluster_runs').set({ position }).where('id', '=', runId).execute();
    await this.#setNextPosition(clusterId, position);
  }

  async #setNextPosition(clusterId: string, position: number): Promise<void> {
    await this.#db.updateTable('cluster_clusters').set({ next_position: position }).where('id', '=', clusterId).execute();
    await this.options.positionChanged(clusterId).catch((error: unknown) => this.ctx.log.warn({ err: error, clusterId }, 'next yard not refreshed'));
  }

  /** Ends a running run; the next run starts at the host's yard again. Undefined when it was not running. */
  async #end(runId: string, status: Exclude<RunStatus, 'running'>, detail: string | null) {
    const ended = await this.#db
      .updateTable('cluster_runs')
      .set({ status, ended_at: new Date(), detail })
      .where('id', '=', runId)
      .where('status', '=', 'running')
      .returning(['id', 'cluster_id', 'entity_id'])
      .executeTakeFirst();
    if (!ended) return undefined;
    const clusterId = String(ended.cluster_id);
    const first = await this.#db.selectFrom('cluster_members').select('position').where('cluster_id', '=', clusterId).orderBy('position').limit(1).executeTakeFirst();
    await this.#setNextPosition(clusterId, first?.position ?? 0);
    const host = await this.#db.selectFrom('cluster_clusters').select('host_home_id').where('id', '=', clusterId).executeTakeFirst();
    const log = status === 'finished' || status === 'cancelled' ? this.ctx.log.info.bind(this.ctx.log) : this.ctx.log.warn.bind(this.ctx.log);
    log({ clusterId, runId, status, detail }, 'cluster run ended');
    this.ctx.bus.fire('cluster_run_ended', { cluster_id: clusterId, run_id: runId, status, detail }, { homeId: host?.host_home_id ?? null });
    return { ...ended, cluster_id: clusterId };
  }

  #openVisit(runId: string) {
    return this.#db
      .selectFrom('cluster_yard_visits')
      .select(['id', 'candidate_id', 'started_at'])
      .where('run_id', '=', runId)
      .where('ended_at', 'is', null)
      .executeTakeFirst();
  }

  async #cluster(clusterId: string): Promise<{ id: string; host_home_id: string }> {
    const row = await this.#db.selectFrom('cluster_clusters').select(['id', 'host_home_id']).where('id', '=', clusterId).executeTakeFirst();
    if (!row) throw hubError('HUB_ERR_CLUSTER_NOT_FOUND');
    return { id: String(row.id), host_home_id: row.host_home_id };
  }

  /** One run with its visits, or undefined. */
  async view(runId: string): Promise<RunView | undefined> {
    const run = await this.#db.selectFrom('cluster_runs').selectAll().where('id', '=', runId).executeTakeFirst();
    if (!run) return undefined;
    return (await this.#present([run]))[0];
  }

  /** The cluster's runs, newest first, with their visits. */
  async list(clusterId: string, limit: number): Promise<RunView[]> {
    const runs = await this.#db.selectFrom('cluster_runs').selectAll().where('cluster_id', '=', clusterId).orderBy('started_at', 'desc').limit(limit).execute();
    return this.#present(runs);
  }

  async #present(runs: RunRow[]): Promise<RunView[]> {
    if (runs.length === 0) return [];
    const visits = await this.#db
      .selectFrom('cluster_yard_visits as v')
      .leftJoin('cluster_members as m', (join) => join.onRef('m.cluster_id', '=', 'v.cluster_id').onRef('m.candidate_id', '=', 'v.candidate_id'))
      .select(['v.run_id', 'v.candidate_id', 'v.home_id', 'm.position', 'v.session_id', 'v.started_at', 'v.ended_at', 'v.area_m2', 'v.outcome', 'v.detail'])
      .where('v.run_id', 'in', runs.map((r) => r.id))
      .orderBy('v.started_at')
      .orderBy('m.position')
      .execute();
    return runs.map((run) => ({
      id: run.id,
      cluster_id: String(run.cluster_id),
      status: run.status,
      started_at: run.started_at.toISOString(),
      ended_at: run.ended_at?.toISOString() ?? null,
      position: run.position,
      entity_id: run.entity_id,
      slot: run.slot?.toISOString() ?? null,
      detail: run.detail,
      visits: visits
        .filter((v) => v.run_id === run.id)
        .map(({ run_id: _, ...v }) => ({ ...v, position: v.position ?? null, started_at: v.started_at.toISOString(), ended_at: v.ended_at?.toISOString() ?? null })),
    }));
  }

  /** Mowed m² per yard (and its home) in a period, from the visits: what billing counts. */
  async usage(clusterId: string, from: Date, to: Date) {
    const rows = await this.#db
      .selectFrom('cluster_yard_visits')
      .select((eb) => ['candidate_id', 'home_id', eb.fn.sum<number | string>('area_m2').as('area_m2'), eb.fn.countAll<number | string>().as('visits')])
      .where('cluster_id', '=', clusterId)
      .where('outcome', 'in', ['finished', 'interrupted'])
      .where('started_at', '>=', from)
      .where('started_at', '<', to)
      .groupBy(['candidate_id', 'home_id'])
      .orderBy('candidate_id')
      .execute();
    const homes = rows.map((r) => ({ candidate_id: r.candidate_id, home_id: r.home_id, area_m2: Number(r.area_m2), visits: Number(r.visits) }));
    return { cluster_id: clusterId, from: from.toISOString(), to: to.toISOString(), total_m2: homes.reduce((sum, h) => sum + h.area_m2, 0), homes };
  }

  /** The yard at the cluster's next position, with the run mowing it (if any). */
  async nextYard(clusterId: string): Promise<NextYard | undefined> {
    const cluster = await this.#db.selectFrom('cluster_clusters').select(['id', 'next_position']).where('id', '=', clusterId).executeTakeFirst();
    if (!cluster) return undefined;
    const yard = await this.#db
      .selectFrom('cluster_members')
      .select(['candidate_id', 'home_id', 'position', 'consent', 'zones'])
      .where('cluster_id', '=', clusterId)
      .where('position', '>=', cluster.next_position)
      .orderBy('position')
      .limit(1)
      .executeTakeFirst();
    if (!yard) return undefined;
    const run = await this.#db.selectFrom('cluster_runs').select('id').where('cluster_id', '=', clusterId).where('status', '=', 'running').executeTakeFirst();
    return { cluster_id: String(cluster.id), ...yard, run_id: run?.id ?? null };
  }
}

type RunRow = {
  id: string;
  cluster_id: string;
  status: RunStatus;
  started_at: Date;
  ended_at: Date | null;
  position: number;
  entity_id: string | null;
  slot: Date | null;
  detail: string | null;
};
