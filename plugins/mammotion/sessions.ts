/**
 * Mowing sessions read from reports: a session opens when a mower starts mowing and closes when
 * it is back on the dock or its job is cancelled; `mowing_session_ended` then tells billing and
 * the cluster planner what was mowed.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import type { Database } from '../../core/db/index.js';
import type { Logger } from '../../core/log/index.js';
import type { MowerReport } from './protocol/index.js';
import type { MammotionDb, MammotionTables } from './tables.js';

/** Data of the `mowing_session_ended` event. */
// A type alias so that it fits the bus's event data (an index-signature record).
export type MowingSessionEnded = {
  session_id: string;
  home_id: string;
  entity_id: string;
  iot_id: string;
  started_at: string;
  ended_at: string;
  area_m2: number;
  minutes: number;
  zones: string[];
  outcome: 'finished' | 'interrupted';
};

interface OpenSession {
  id: string;
  startedAt: Date;
  areaM2: number;
  progress: number;
  jobMinutes: number;
  zones: string[];
}

export interface MowerIdentity {
  iotId: string;
  homeId: string;
  entityId: string;
}

export class SessionTracker {
  readonly #open = new Map<string, OpenSession>();
  /** Per mower, the last update in flight: reports are applied one after another. */
  readonly #chains = new Map<string, Promise<void>>();
  readonly #db: MammotionDb;

  constructor(
    db: Kysely<Database>,
    private readonly ended: (event: MowingSessionEnded) => void,
    private readonly log: Logger,
  ) {
    this.#db = db.withTables<MammotionTables>();
  }

  /** Takes back sessions left open by a previous run of the hub. */
  async restore(iotId: string): Promise<void> {
    const row = await this.#db.selectFrom('mammotion_sessions').selectAll().where('iot_id', '=', iotId).where('ended_at', 'is', null).executeTakeFirst();
    if (row) this.#open.set(iotId, { id: row.id, startedAt: row.started_at, areaM2: row.area_m2, progress: 0, jobMinutes: row.minutes, zones: row.zones });
  }

  /** Feeds one report; opens, updates or closes the mower's session. */
  observe(mower: MowerIdentity, report: MowerReport, zones: string[], now = new Date()): Promise<void> {
    return this.#serially(mower.iotId, () => this.#apply(mower, report, zones, now));
  }

  /** Ends an open session as interrupted (the mower left the hub). */
  endOpen(mower: MowerIdentity, now = new Date()): Promise<void> {
    return this.#serially(mower.iotId, async () => {
      const session = this.#open.get(mower.iotId);
      if (session) await this.#end(mower, session, 'interrupted', now);
    });
  }

  #serially(iotId: string, step: () => Promise<void>): Promise<void> {
    const next = (this.#chains.get(iotId) ?? Promise.resolve()).then(step);
    const settled = next.catch(() => {});
    this.#chains.set(iotId, settled);
    void settled.then(() => {
      if (this.#chains.get(iotId) === settled) this.#chains.delete(iotId);
    });
    return next;
  }

  async #apply(mower: MowerIdentity, report: MowerReport, zones: string[], now: Date): Promise<void> {
    const session = this.#open.get(mower.iotId);
    if (report.work && session) {
      session.areaM2 = Math.max(session.areaM2, report.work.areaMowedM2);
      session.progress = Math.max(session.progress, report.work.progressPercent);
      session.jobMinutes = Math.max(session.jobMinutes, report.work.elapsedMinutes);
    }
    if (report.activity === 'mowing' && !session) return this.#start(mower, report, zones, now);
    // A mower back on its dock, or standing with no job left (cancelled), ends the session.
    const jobOver = report.activity === 'docked' || (report.mode === 11 && report.work !== undefined && !report.work.resumable);
    if (session && jobOver) await this.#end(mower, session, session.progress >= 100 ? 'finished' : 'interrupted', now);
  }

  /** The device's own end-of-job summary: the job is finished when it says 100 %. */
  summary(mower: MowerIdentity, summary: { areaM2: number; progressPercent: number }): void {
    const session = this.#open.get(mower.iotId);
    if (!session) return;
    session.areaM2 = Math.max(session.areaM2, summary.areaM2);
    session.progress = Math.max(session.progress, summary.progressPercent);
  }

  async #start(mower: MowerIdentity, report: MowerReport, zones: string[], now: Date): Promise<void> {
    const row = await this.#db
      .insertInto('mammotion_sessions')
      .values({ home_id: mower.homeId, iot_id: mower.iotId, entity_id: mower.entityId, started_at: now, zones })
      .returning('id')
      .executeTakeFirstOrThrow();
    this.#open.set(mower.iotId, {
      id: row.id,
      startedAt: now,
      areaM2: report.work?.areaMowedM2 ?? 0,
      progress: report.work?.progressPercent ?? 0,
      jobMinutes: report.work?.elapsedMinutes ?? 0,
      zones,
    });
    this.log.info({ iotId: mower.iotId, sessionId: row.id }, 'mowing session started');
  }

  async #end(mower: MowerIdentity, session: OpenSession, outcome: 'finished' | 'interrupted', now: Date): Promise<void> {
    this.#open.delete(mower.iotId);
    const wallMinutes = (now.getTime() - session.startedAt.getTime()) / 60_000;
    const minutes = Math.round(Math.max(session.jobMinutes, wallMinutes) * 10) / 10;
    await this.#db
      .updateTable('mammotion_sessions')
      .set({ ended_at: now, area_m2: session.areaM2, minutes, outcome })
      .where('id', '=', session.id)
      .execute();
    this.log.info({ iotId: mower.iotId, sessionId: session.id, outcome, areaM2: session.areaM2 }, 'mowing session ended');
    this.ended({
      session_id: session.id,
      home_id: mower.homeId,
      entity_id: mower.entityId,
      iot_id: mower.iotId,
      started_at: session.startedAt.toISOString(),
      ended_at: now.toISOString(),
      area_m2: session.areaM2,
      minutes,
      zones: session.zones,
      outcome,
    });
  }
}
