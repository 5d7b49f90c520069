/**
 * Cluster runs: one walk of a cluster's route by the host's mower. The database holds the whole
 * state of a walk (the run, and one visit per yard), so any hub instance can take the next step
 * and a restarted hub carries on where the last one stopped:
 *
 * - a run starts at position 0 (the host's yard) and visits the members in position order;
 * - a yard whose member has not accepted, or that has no zones, gets a `skipped` visit;
 * - otherwise an open visit is written, then the mower is sent there (`mammotion.start_zones`:
 *   only Mammotion mowers take a list of zones, so a run needs one; another mower fails the run
 *   at its first yard, saying so);
 * - `mowing_session_ended` closes the open visit with the session's m² (`cluster_yard_mowed`
 *   tells billing) and starts the next yard; after the last one the run is finished. An
 *   interrupted session, a failed start or a yard that takes too long fails it.
 *
 * What bills a yard: only a session Mammotion stored (`mammotion_sessions`: that id, mower, area
 * and outcome; the event is reserved to the Mammotion plugin besides), of the run's mower, that
 * started within [visit start − 2 min, visit start + yard timeout] and mowed zones of that yard,
 * while the run is running. When a run is cancelled or fails, the yard it was on is closed at once
 * as failed: a session ending later cannot be told from the host mowing its own lawn, so it is
 * logged and billed to no one.
 *
 * Who sees what: a yard whose member has not accepted (invited, declined, or gone from the
 * cluster) is `yard-<position>` to the host home here as everywhere (`seenByHost`): in runs and
 * visits, usage, `cluster.next_yard` and the run events. A run's detail names a yard by its
 * position, never its id, so what was written then tells nothing once consent changes.
 *
 * Each step is guarded by the database (a visit per yard and run is unique, a session bills one
 * visit, runs and visits change only from the state the step read), so two instances reacting to
 * the same event, or a recovery sweep meeting a live step, never mow a yard twice. Runs and visits
 * are billing records: they outlive their cluster (`cluster_id` becomes null).
 *
 * @module
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { isUniqueViolation, sqlState, type Database } from '../../core/db/index.js';
import { hubError } from '../../core/errors/index.js';
import type { PluginContext } from '../../core/plugin.js';
import { mowersByHome, UNAVAILABLE } from './entities.js';
import { seenByHost, yardToken } from './store.js';
import type { ClusterDb, ClusterTables, ConsentState, RunStatus, VisitOutcome } from './tables.js';

/**
 * The Mammotion plugin's session store (`plugins/mammotion/sql/0001_mammotion.sql`), read only:
 * what a session really mowed. Reading another plugin's table is the price of not trusting the
 * event's data; the columns used here are the ones `mowing_session_ended` reports.
 */
type MammotionSessions = {
  mammotion_sessions: {
    id: string;
    entity_id: string;
    started_at: Date;
    ended_at: Date | null;
    area_m2: number;
    zones: string[];
    outcome: string | null;
  };
};

/** A yard visit as the API shows it. */
export type YardVisitView = {
  /** `yard-<position>` for a yard the caller may not see; null when that yard has left the cluster. */
  candidate_id: string | null;
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
  /** Null once the cluster was deleted (the run stays, for billing). */
  cluster_id: string | null;
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

/** The events a run fires: reserved to the cluster plugin, since billing acts on them. */
export const RUN_EVENTS = ['cluster_run_started', 'cluster_run_ended', 'cluster_yard_mowed'] as const;

/** What a walk needs from a `mowing_session_ended` event; anything else is dropped. */
export const SessionEndedData = z.object({
  session_id: z.uuid(),
  entity_id: z.string().min(1).max(255),
  area_m2: z.number().finite().min(0),
  outcome: z.enum(['finished', 'interrupted']),
});
export type SessionEndedData = z.output<typeof SessionEndedData>;

/**
 * Who looks at runs. An administrator sees every yard as it is; the host home's members see
 * every yard, those whose member has not accepted as `yard-<position>` (the caller's own homes
 * excepted); a member home that accepted sees only its own yards (`homes`), and neither the
 * run's detail nor the host's mower.
 */
export type RunViewer = { as: 'admin' } | { as: 'host' | 'member'; homes: ReadonlySet<string> };

/** The host home's view, for callers that act for it (actions, flows). */
export const HOST_VIEW: RunViewer = { as: 'host', homes: new Set() };

/** A yard as the viewer may see it: itself, or its token (and no home). */
function yardAs(viewer: RunViewer, yard: { candidate_id: string; home_id: string | null; position: number | null; consent: ConsentState | null }) {
  const own = viewer.as !== 'admin' && yard.home_id !== null && viewer.homes.has(yard.home_id);
  if (viewer.as === 'admin' || own || seenByHost({ candidateId: yard.candidate_id, position: yard.position, consent: yard.consent })) {
    return { candidate_id: yard.candidate_id, home_id: yard.home_id };
  }
  return { candidate_id: yard.position === null ? null : yardToken(yard.position), home_id: null };
}

export interface RunOptions {
  /** Refreshes what shows the cluster's next yard (its entity). */
  positionChanged(clusterId: string): Promise<void>;
  /** How long one yard may take before the run fails. */
  yardTimeoutMs: number;
}

// A session may start this much before its visit was written and still belong to it: the
// instances' clocks and the mower's first report may disagree by a little.
const CLOCK_SLACK_MS = 2 * 60_000;
// A float stored and sent as JSON may differ in its last digits, never by a square centimetre.
const AREA_TOLERANCE_M2 = 1e-3;
const NOT_BILLED = 'its mowing here is not billed';

/** Whether a session's zones are the yard's (either unknown counts as a match). */
const overlaps = (yard: readonly string[], session: readonly string[]) => yard.length === 0 || session.length === 0 || yard.some((zone) => session.includes(zone));

/**
 * Whether the cluster has a run in progress. A cluster must not be deleted then: its mower is
 * out on a neighbour's yard. (Its runs and visits survive a deletion regardless.)
 *
 * @example
 * if (await hasActiveRun(db, clusterId)) throw hubError('HUB_ERR_CLUSTER_RUN_ACTIVE');
 */
export async function hasActiveRun(db: ClusterDb, clusterId: string): Promise<boolean> {
  const row = await db.selectFrom('cluster_runs').select('id').where('cluster_id', '=', clusterId).where('status', '=', 'running').executeTakeFirst();
  return row !== undefined;
}

/**
 * Starts, steps, cancels and reports cluster runs. One per plugin start; every step reads and
 * writes the database, so instances and restarts share the walk.
 */
export class ClusterRuns {
  readonly #db: ClusterDb;
  readonly #sessions: Kysely<Database & MammotionSessions>;
  /** Steps and cancels per run on this instance, one after another (the database guards across instances). */
  readonly #chains = new Map<string, Promise<unknown>>();

  constructor(
    private readonly ctx: PluginContext<unknown>,
    private readonly options: RunOptions,
  ) {
    this.#db = ctx.db.withTables<ClusterTables>();
    this.#sessions = ctx.db.withTables<MammotionSessions>();
  }

  /** The host home's mowers: see mowersByHome. */
  mowersOf(homeId: string): string[] {
    return mowersByHome(this.ctx.states).get(homeId) ?? [];
  }

  /**
   * Starts a run now and sends the mower to the first yard.
   *
   * @throws HUB_ERR_CLUSTER_NOT_FOUND, HUB_ERR_CLUSTER_NO_MOWER, HUB_ERR_VALIDATION (an
   *   `entityId` that is not the host's mower), HUB_ERR_CLUSTER_RUN_ACTIVE
   */
  async start(clusterId: string, options: { entityId?: string; viewer: RunViewer }): Promise<RunView> {
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
    return (await this.view(runId, options.viewer))!;
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
   * Ends a running run as cancelled and sends its mower home. The yard being mowed is closed as
   * failed: what the mower did there is not billed (its session could no longer be told from
   * the host's own mowing). Runs after the step this instance is taking for the run, if any.
   *
   * @param by who cancelled: `detail` is shown to the host home and in `cluster_run_ended`, so
   *   it never names the person; `userId` is stored apart (null for an automation).
   * @param viewer whom the answer is for.
   * @throws HUB_ERR_CLUSTER_RUN_NOT_FOUND, HUB_ERR_CLUSTER_RUN_ENDED
   */
  cancel(runId: string, by: { detail: string; userId: string | null }, viewer: RunViewer): Promise<RunView> {
    return this.#serially(runId, async () => {
      const ended = await this.#end(runId, 'cancelled', by.detail, by.userId);
      if (!ended) {
        if (!(await this.view(runId, viewer))) throw hubError('HUB_ERR_CLUSTER_RUN_NOT_FOUND');
        throw hubError('HUB_ERR_CLUSTER_RUN_ENDED');
      }
      if (ended.leftYard) await this.#dock(ended.entity_id, runId);
      return (await this.view(runId, viewer))!;
    });
  }

  /**
   * Takes a `mowing_session_ended`: when Mammotion stored that session and it belongs to the open
   * yard of a running run (see the module notes), the yard gets its area and the run goes on (or
   * fails, when the session was interrupted). Any other session is logged and billed to no one.
   */
  async sessionEnded(event: SessionEndedData): Promise<void> {
    const session = await this.#storedSession(event);
    if (!session) return;
    const started = session.started_at.getTime();
    const candidates = await this.#db
      .selectFrom('cluster_yard_visits as v')
      .innerJoin('cluster_runs as r', 'r.id', 'v.run_id')
      .select(['v.id', 'r.id as run_id', 'r.cluster_id', 'r.position', 'v.candidate_id', 'v.home_id', 'v.zones'])
      .where('r.entity_id', '=', session.entity_id)
      .where('r.status', '=', 'running')
      .where('r.cluster_id', 'is not', null)
      .where('v.ended_at', 'is', null)
      // The session started in [visit start − slack, visit start + yard timeout].
      .where('v.started_at', '>=', new Date(started - this.options.yardTimeoutMs))
      .where('v.started_at', '<=', new Date(started + CLOCK_SLACK_MS))
      .orderBy('v.started_at', 'desc')
      .$narrowType<{ cluster_id: string }>()
      .execute();
    const visit = candidates.find((v) => overlaps(v.zones, session.zones));
    if (!visit) {
      this.ctx.log.info({ sessionId: session.id, entityId: session.entity_id, areaM2: session.area_m2 }, 'mowing session is no yard of a running cluster run; billed to no yard');
      return;
    }
    const outcome = session.outcome === 'finished' ? 'finished' : 'interrupted';
    let closed: { id: string } | undefined;
    try {
      closed = await this.#db
        .updateTable('cluster_yard_visits')
        .set({ session_id: session.id, ended_at: session.ended_at, area_m2: session.area_m2, outcome })
        .where('id', '=', visit.id)
        .where('ended_at', 'is', null)
        // Not if the run ended since it was read (cancelled: the yard is closed, not billed).
        .where('run_id', 'in', (eb) => eb.selectFrom('cluster_runs').select('id').where('status', '=', 'running'))
        .returning('id')
        .executeTakeFirst();
    } catch (error) {
      if (isUniqueViolation(error)) return; // another instance billed this session already
      throw error;
    }
    if (!closed) return;
    const clusterId = String(visit.cluster_id);
    const host = await this.#db.selectFrom('cluster_clusters').select('host_home_id').where('id', '=', clusterId).executeTakeFirst();
    const mowed: YardMowed = {
      cluster_id: clusterId,
      run_id: visit.run_id,
      home_id: visit.home_id,
      candidate_id: visit.candidate_id,
      area_m2: session.area_m2,
      session_id: session.id,
      outcome,
    };
    this.ctx.log.info({ clusterId, runId: visit.run_id, candidateId: visit.candidate_id, areaM2: session.area_m2, outcome }, 'cluster yard mowed');
    try {
      if (outcome === 'interrupted') {
        await this.#end(visit.run_id, 'failed', `The mower stopped before it finished the yard at position ${visit.position} (session ${session.id})`);
      } else {
        await this.advance(visit.run_id);
      }
    } finally {
      // After the step, so that whoever hears it and asks for the next yard gets the new one.
      this.ctx.bus.fire('cluster_yard_mowed', mowed, { homeId: visit.home_id ?? host?.host_home_id ?? null });
    }
  }

  /** Mammotion's record of the session the event names, when it is there, ended, and says the same; else undefined (logged). */
  async #storedSession(event: SessionEndedData) {
    let row;
    try {
      row = await this.#sessions
        .selectFrom('mammotion_sessions')
        .select(['id', 'entity_id', 'started_at', 'ended_at', 'area_m2', 'zones', 'outcome'])
        .where('id', '=', event.session_id)
        .where('entity_id', '=', event.entity_id)
        .where('ended_at', 'is not', null)
        .$narrowType<{ ended_at: Date }>()
        .executeTakeFirst();
    } catch (error) {
      // 42P01 undefined_table: the Mammotion plugin never ran on this hub, so no session is real.
      if (sqlState(error) !== '42P01') throw error;
    }
    if (!row || Math.abs(row.area_m2 - event.area_m2) > AREA_TOLERANCE_M2 || row.outcome !== event.outcome) {
      this.ctx.log.warn({ sessionId: event.session_id, entityId: event.entity_id }, 'mowing_session_ended does not match a session the Mammotion plugin stored; ignored');
      return undefined;
    }
    return row;
  }

  /**
   * What a job does every tick, and the hub at start: closes yards that ended runs left open,
   * fails runs whose yard took too long, ends runs whose cluster was deleted, and carries on
   * runs that stopped between two yards (an instance went down mid-step).
   */
  async sweep(now = new Date()): Promise<void> {
    await this.#closeStaleVisits();
    const running = await this.#db.selectFrom('cluster_runs').select(['id', 'entity_id', 'cluster_id', 'position']).where('status', '=', 'running').execute();
    for (const { id, entity_id: entityId, cluster_id: clusterId, position } of running) {
      if (clusterId === null) {
        const ended = await this.#end(id, 'cancelled', 'Cancelled: the cluster was deleted');
        if (ended?.leftYard) await this.#dock(entityId, id);
        continue;
      }
      const open = await this.#openVisit(id);
      if (!open) {
        // After a restart the mower is back only once its plugin has reconnected; until then, wait.
        const mower = entityId ? this.ctx.states.get(entityId) : undefined;
        if (mower && !UNAVAILABLE.has(mower.state)) await this.advance(id);
      } else if (now.getTime() - open.started_at.getTime() > this.options.yardTimeoutMs) {
        const hours = Math.round((this.options.yardTimeoutMs / 3_600_000) * 100) / 100;
        await this.#end(id, 'failed', `No mowing session ended at the yard at position ${position} within ${hours} h`);
      }
    }
  }

  /** Yards still open of runs that ended (an instance stopped between ending a run and closing its yard). */
  async #closeStaleVisits(): Promise<void> {
    const closed = await this.#db
      .updateTable('cluster_yard_visits')
      .set({ ended_at: new Date(), outcome: 'failed', detail: `The run ended while the mower was on this yard; ${NOT_BILLED}` })
      .where('ended_at', 'is', null)
      .where((eb) => eb.or([eb('run_id', 'is', null), eb('run_id', 'in', eb.selectFrom('cluster_runs').select('id').where('status', '!=', 'running'))]))
      .returning(['run_id', 'candidate_id'])
      .execute();
    for (const visit of closed) this.ctx.log.warn({ runId: visit.run_id, candidateId: visit.candidate_id }, 'open yard of an ended cluster run closed; not billed');
  }

  /** Takes the next step of a running run: skips what cannot be mowed, sends the mower to the next yard, or finishes. */
  advance(runId: string): Promise<void> {
    return this.#serially(runId, () => this.#advance(runId));
  }

  /** Runs `step` after whatever this instance is doing for the run. */
  #serially<T>(runId: string, step: () => Promise<T>): Promise<T> {
    const next = (this.#chains.get(runId) ?? Promise.resolve()).then(step);
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
      if (run.cluster_id === null) {
        await this.#end(runId, 'cancelled', 'Cancelled: the cluster was deleted');
        return;
      }
      const clusterId = String(run.cluster_id); // bigint: a string from postgres.js, a number from PGlite
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
        zones: yard.zones,
        ...(skip ? { ended_at: new Date(), outcome: 'skipped' as const, detail: skip } : {}),
      });
      if (!visit) return; // another instance took this step
      if (skip) {
        this.ctx.log.info({ clusterId, runId, candidateId: yard.candidate_id }, skip);
        continue;
      }
      await this.#send(run.entity_id, { clusterId, runId, visitId: visit, candidateId: yard.candidate_id, position: yard.position, zones: yard.zones });
      return;
    }
  }

  /** Sends the mower to a yard's zones, unless the run ended meanwhile; a failed start fails the run. */
  async #send(entityId: string, yard: { clusterId: string; runId: string; visitId: string; candidateId: string; position: number; zones: string[] }): Promise<void> {
    const { clusterId, runId, candidateId, zones } = yard;
    // A cancel on another instance may have come since this step read the run (one on this
    // instance waits for the step): its end closed the visit, and the mower stays home.
    if (!(await this.#isRunning(runId))) return;
    try {
      await this.ctx.actions.call('mammotion', 'start_zones', { zones }, { target: { entity_id: entityId } });
    } catch (error) {
      const why = startFailure(error, entityId);
      await this.#db
        .updateTable('cluster_yard_visits')
        .set({ ended_at: new Date(), outcome: 'failed', detail: `The mower did not start: ${why}` })
        .where('id', '=', yard.visitId)
        .where('ended_at', 'is', null)
        .execute();
      await this.#end(runId, 'failed', `The mower did not start on the yard at position ${yard.position}: ${why}`);
      return;
    }
    this.ctx.log.info({ clusterId, runId, candidateId, zones }, 'cluster mower sent to the next yard');
    // Ended while the mower was being sent (a cancel on another instance): call it back.
    if (!(await this.#isRunning(runId))) await this.#dock(entityId, runId);
  }

  async #isRunning(runId: string): Promise<boolean> {
    return (await this.#db.selectFrom('cluster_runs').select('id').where('id', '=', runId).where('status', '=', 'running').executeTakeFirst()) !== undefined;
  }

  async #dock(entityId: string | null, runId: string): Promise<void> {
    if (!entityId) return;
    await this.ctx.actions
      .call('lawn_mower', 'dock', {}, { target: { entity_id: entityId } })
      .catch((error: unknown) => this.ctx.log.warn({ err: error, runId, entityId }, 'the mower of an ended cluster run was not sent home'));
  }

  async #insertVisit(values: {
    run_id: string;
    cluster_id: string;
    candidate_id: string;
    home_id: string | null;
    zones: string[];
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

  /**
   * Ends a running run; the next run starts at the host's yard again. A yard the mower was on is
   * closed as failed (`leftYard`): its session is no longer this run's. Undefined when the run
   * was not running.
   */
  async #end(runId: string, status: Exclude<RunStatus, 'running'>, detail: string | null, cancelledBy: string | null = null) {
    const ended = await this.#db
      .updateTable('cluster_runs')
      .set({ status, ended_at: new Date(), detail, cancelled_by: cancelledBy })
      .where('id', '=', runId)
      .where('status', '=', 'running')
      .returning(['id', 'cluster_id', 'entity_id'])
      .executeTakeFirst();
    if (!ended) return undefined;
    const left = await this.#db
      .updateTable('cluster_yard_visits')
      .set({ ended_at: new Date(), outcome: 'failed', detail: status === 'cancelled' ? `Cancelled while the mower was on this yard; ${NOT_BILLED}` : `The run failed while the mower was on this yard; ${NOT_BILLED}` })
      .where('run_id', '=', runId)
      .where('ended_at', 'is', null)
      .returning('candidate_id')
      .execute();
    const clusterId = ended.cluster_id === null ? null : String(ended.cluster_id);
    let hostHomeId: string | null = null;
    if (clusterId !== null) {
      const first = await this.#db.selectFrom('cluster_members').select('position').where('cluster_id', '=', clusterId).orderBy('position').limit(1).executeTakeFirst();
      await this.#setNextPosition(clusterId, first?.position ?? 0);
      hostHomeId = (await this.#db.selectFrom('cluster_clusters').select('host_home_id').where('id', '=', clusterId).executeTakeFirst())?.host_home_id ?? null;
    }
    const log = status === 'finished' || status === 'cancelled' ? this.ctx.log.info.bind(this.ctx.log) : this.ctx.log.warn.bind(this.ctx.log);
    log({ clusterId, runId, status, detail, cancelledBy, openYard: left[0]?.candidate_id }, 'cluster run ended');
    this.ctx.bus.fire('cluster_run_ended', { cluster_id: clusterId, run_id: runId, status, detail }, { homeId: hostHomeId });
    return { ...ended, leftYard: left.length > 0 };
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

  /** One run with its visits as `viewer` may see it, or undefined. */
  async view(runId: string, viewer: RunViewer): Promise<RunView | undefined> {
    const run = await this.#db.selectFrom('cluster_runs').selectAll().where('id', '=', runId).executeTakeFirst();
    if (!run) return undefined;
    return (await this.#present([run], viewer))[0];
  }

  /** The cluster's runs, newest first, with their visits, as `viewer` may see them. */
  async list(clusterId: string, limit: number, viewer: RunViewer): Promise<RunView[]> {
    const runs = await this.#db.selectFrom('cluster_runs').selectAll().where('cluster_id', '=', clusterId).orderBy('started_at', 'desc').limit(limit).execute();
    return this.#present(runs, viewer);
  }

  async #present(runs: RunRow[], viewer: RunViewer): Promise<RunView[]> {
    if (runs.length === 0) return [];
    const member = viewer.as === 'member' ? [...viewer.homes] : undefined;
    if (member?.length === 0) return [];
    let query = this.#db
      .selectFrom('cluster_yard_visits as v')
      .leftJoin('cluster_members as m', (join) => join.onRef('m.cluster_id', '=', 'v.cluster_id').onRef('m.candidate_id', '=', 'v.candidate_id'))
      .select(['v.run_id', 'v.candidate_id', 'v.home_id', 'm.position', 'm.consent', 'v.session_id', 'v.started_at', 'v.ended_at', 'v.area_m2', 'v.outcome', 'v.detail'])
      .where('v.run_id', 'in', runs.map((r) => r.id));
    if (member) query = query.where('v.home_id', 'in', member);
    const visits = await query.orderBy('v.started_at').orderBy('m.position').execute();
    return runs.map((run) => ({
      id: run.id,
      cluster_id: run.cluster_id === null ? null : String(run.cluster_id),
      status: run.status,
      started_at: run.started_at.toISOString(),
      ended_at: run.ended_at?.toISOString() ?? null,
      position: run.position,
      entity_id: member ? null : run.entity_id,
      slot: run.slot?.toISOString() ?? null,
      detail: member ? null : run.detail,
      visits: visits
        .filter((v) => v.run_id === run.id)
        .map(({ run_id: _, consent, ...v }) => ({
          ...v,
          ...yardAs(viewer, { ...v, consent }),
          position: v.position ?? null,
          started_at: v.started_at.toISOString(),
          ended_at: v.ended_at?.toISOString() ?? null,
        })),
    }));
  }

  /** Mowed m² per yard (and its home) in a period, from the visits: what billing counts; as `viewer` may see it. */
  async usage(clusterId: string, from: Date, to: Date, viewer: RunViewer) {
    const member = viewer.as === 'member' ? [...viewer.homes] : undefined;
    let query = this.#db
      .selectFrom('cluster_yard_visits as v')
      .leftJoin('cluster_members as m', (join) => join.onRef('m.cluster_id', '=', 'v.cluster_id').onRef('m.candidate_id', '=', 'v.candidate_id'))
      .select((eb) => ['v.candidate_id', 'v.home_id', 'm.position', 'm.consent', eb.fn.sum<number | string>('v.area_m2').as('area_m2'), eb.fn.countAll<number | string>().as('visits')])
      .where('v.cluster_id', '=', clusterId)
      .where('v.outcome', 'in', ['finished', 'interrupted'])
      .where('v.started_at', '>=', from)
      .where('v.started_at', '<', to);
    if (member) query = query.where(member.length > 0 ? (eb) => eb('v.home_id', 'in', member) : (eb) => eb.lit(false));
    // By route position, not by id: the order must not rank a hidden yard's id among the others.
    const rows = await query.groupBy(['v.candidate_id', 'v.home_id', 'm.position', 'm.consent']).orderBy('m.position').orderBy('v.candidate_id').execute();
    const list = rows.map((r) => ({ ...yardAs(viewer, r), area_m2: Number(r.area_m2), visits: Number(r.visits) }));
    return { cluster_id: clusterId, from: from.toISOString(), to: to.toISOString(), total_m2: list.reduce((sum, h) => sum + h.area_m2, 0), homes: list };
  }

  /**
   * The yard at the cluster's next position, with the run mowing it (if any), as the host home
   * sees it: a member that has not accepted is its `yard-<position>`.
   */
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
    const { candidate_id, home_id } = yardAs(HOST_VIEW, yard);
    return { cluster_id: String(cluster.id), ...yard, candidate_id: candidate_id!, home_id, run_id: run?.id ?? null };
  }
}

/**
 * Why the mower did not take a yard's zones, in words for the host. Only the Mammotion plugin
 * has `start_zones`, and it refuses entities that are not its mowers.
 */
function startFailure(error: unknown, entityId: string): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'HUB_ERR_ACTION_NOT_FOUND') return 'the Mammotion plugin is not running; a cluster run sends a Mammotion mower yard by yard (mammotion.start_zones)';
  if (code === 'HUB_ERR_ENTITY_NOT_FOUND') return `${entityId} is not a Mammotion mower; a cluster run sends the mower zone by zone, which only Mammotion mowers take`;
  return error instanceof Error ? error.message : String(error);
}

type RunRow = {
  id: string;
  cluster_id: string | null;
  status: RunStatus;
  started_at: Date;
  ended_at: Date | null;
  position: number;
  entity_id: string | null;
  slot: Date | null;
  detail: string | null;
};
