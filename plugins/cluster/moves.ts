/**
 * How often a host home may be planned at a new point. A plan shows each hidden neighbour's
 * distance as a band; a home moved a few metres at a time and planned after each move would
 * still close in on a neighbour where the bands change. So, per home: plans at the point of its
 * last plan are always allowed (they tell nothing new); its first plan is allowed, and so is the
 * first plan after it moved; after that, a plan at yet another point waits until `windowMs`
 * have passed since the last plan that followed a move (429 HUB_ERR_RATE_LIMITED, Retry-After).
 *
 * The point is the home's row at plan time, so the rule holds on every hub instance, however the
 * home moved and whether or not its `home_updated` event has arrived.
 *
 * @module
 */
import { hubError } from '../../core/errors/index.js';
import type { ClusterDb } from './tables.js';

export interface PlanPoint {
  latitude: number;
  longitude: number;
}

export class MoveThrottle {
  /**
   * @param windowMs how long after a plan that followed a move the home cannot be planned at
   *   another point; 0 lets every plan through.
   */
  constructor(
    private readonly db: ClusterDb,
    private readonly windowMs: number,
  ) {}

  /**
   * Lets a plan of the home at `point` through and records it, or refuses it.
   *
   * @throws HUB_ERR_RATE_LIMITED (429) with `Retry-After` in seconds: the home moved again too
   *   soon after its last plan at a new point.
   */
  async admit(homeId: string, point: PlanPoint, now = new Date()): Promise<void> {
    if (this.windowMs === 0) return;
    const { latitude, longitude } = point;
    const first = await this.db
      .insertInto('cluster_plan_points')
      .values({ home_id: homeId, latitude, longitude, moved_plan_at: null })
      .onConflict((oc) => oc.column('home_id').doNothing())
      .returning('home_id')
      .executeTakeFirst();
    if (first) return;
    // Moved, and the last plan after a move is old enough (or there was none): this one is let through.
    const moved = await this.db
      .updateTable('cluster_plan_points')
      .set({ latitude, longitude, moved_plan_at: now })
      .where('home_id', '=', homeId)
      .where((eb) => eb.or([eb('latitude', '<>', latitude), eb('longitude', '<>', longitude)]))
      .where((eb) => eb.or([eb('moved_plan_at', 'is', null), eb('moved_plan_at', '<=', new Date(now.getTime() - this.windowMs))]))
      .returning('home_id')
      .executeTakeFirst();
    if (moved) return;
    const last = await this.db.selectFrom('cluster_plan_points').select(['latitude', 'longitude', 'moved_plan_at']).where('home_id', '=', homeId).executeTakeFirst();
    // The same point as the last plan (or the row went with its home): nothing new to learn.
    if (!last?.moved_plan_at || (last.latitude === latitude && last.longitude === longitude)) return;
    const seconds = Math.max(1, Math.ceil((last.moved_plan_at.getTime() + this.windowMs - now.getTime()) / 1000));
    throw hubError('HUB_ERR_RATE_LIMITED', `This home was planned after a move ${inWords(now.getTime() - last.moved_plan_at.getTime())} ago; it can be planned at a new place again in ${inWords(seconds * 1000)}`, {
      headers: { 'Retry-After': String(seconds) },
    });
  }
}

/** `5 min`, `3 h 20 min`: a wait in words. */
function inWords(ms: number): string {
  const minutes = Math.max(1, Math.ceil(ms / 60_000));
  const hours = Math.floor(minutes / 60);
  return hours === 0 ? `${minutes} min` : minutes % 60 === 0 ? `${hours} h` : `${hours} h ${minutes % 60} min`;
}
