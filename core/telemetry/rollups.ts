/**
 * Rollups and retention of readings: raw readings fold into per-minute buckets, minutes into
 * hours (min, max, avg, count). Each run recomputes the recent buckets whole, so it is
 * idempotent and takes in readings that arrive a little late (up to 10 minutes for minute
 * buckets, 2 hours for hour buckets).
 */
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/index.js';

export async function rollUpReadings(db: Kysely<Database>): Promise<{ minutes: number; hours: number }> {
  const minutes = await sql`
    insert into readings_minute (device_id, metric, bucket, min, max, avg, count)
    select device_id, metric, date_trunc('minute', ts), min(value), max(value), avg(value), count(*)
    from readings
    where value is not null
      and ts >= date_trunc('minute', now() - interval '10 minutes')
      and ts < date_trunc('minute', now())
    group by 1, 2, 3
    on conflict (device_id, metric, bucket) do update
      set min = excluded.min, max = excluded.max, avg = excluded.avg, count = excluded.count`.execute(db);
  const hours = await sql`
    insert into readings_hour (device_id, metric, bucket, min, max, avg, count)
    select device_id, metric, date_trunc('hour', bucket), min(min), max(max), sum(avg * count) / sum(count), sum(count)
    from readings_minute
    where bucket >= date_trunc('hour', now() - interval '2 hours')
      and bucket < date_trunc('hour', now())
    group by 1, 2, 3
    on conflict (device_id, metric, bucket) do update
      set min = excluded.min, max = excluded.max, avg = excluded.avg, count = excluded.count`.execute(db);
  return { minutes: Number(minutes.numAffectedRows ?? 0), hours: Number(hours.numAffectedRows ?? 0) };
}

export interface Retention {
  rawDays: number;
  minuteDays: number;
  hourDays: number;
}

/** Deletes readings past their resolution's retention; returns the rows deleted per table. */
export async function applyRetention(db: Kysely<Database>, retention: Retention) {
  const older = (days: number) => sql<Date>`now() - make_interval(days => ${days})`;
  const raw = await db.deleteFrom('readings').where('ts', '<', older(retention.rawDays)).executeTakeFirst();
  const minute = await db.deleteFrom('readings_minute').where('bucket', '<', older(retention.minuteDays)).executeTakeFirst();
  const hour = await db.deleteFrom('readings_hour').where('bucket', '<', older(retention.hourDays)).executeTakeFirst();
  return { raw: Number(raw.numDeletedRows), minute: Number(minute.numDeletedRows), hour: Number(hour.numDeletedRows) };
}
