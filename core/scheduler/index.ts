/**
 * Scheduled jobs: cron expressions (in a home's time zone, else UTC) or fixed intervals,
 * persisted with their last and next run. Each tick is claimed in the database, so with
 * several hub instances exactly one runs it, and a run still going holds a lease that makes
 * the next tick skip instead of overlapping.
 *
 * @module
 */
import { CronExpressionParser } from 'cron-parser';
import { sql, type Kysely } from 'kysely';
import { ulid } from '../bus/index.js';
import type { Database } from '../db/index.js';
import { hubError } from '../errors/index.js';
import type { Logger } from '../log/index.js';

export { jobRoutes } from './routes.js';

export type Schedule = { cron: string; timezone?: string } | { everyMs: number };

export interface JobDefinition {
  /** `hub` for the kernel's jobs, `plugin:<id>` for a plugin's. */
  owner: string;
  name: string;
  schedule: Schedule;
  /** The home the job works for: its members see the job, and a cron uses its time zone. */
  homeId?: string | null;
  run(run: { log: Logger; jobId: string }): unknown;
}

export interface RunResult {
  ok: boolean;
  durationMs: number;
  error: string | null;
}

// A crashed instance's lease expires after this; longer jobs should be split up.
const LEASE_MS = 10 * 60_000;
// Re-read the job row at least this often, in case another instance changed its next run.
const MAX_SLEEP_MS = 30_000;

/** The first run time strictly after `from`. */
export function nextRun(schedule: Schedule, from: Date, timezone = 'UTC'): Date {
  if ('everyMs' in schedule) {
    // Aligned to the epoch, so every instance computes the same ticks.
    return new Date((Math.floor(from.getTime() / schedule.everyMs) + 1) * schedule.everyMs);
  }
  return CronExpressionParser.parse(schedule.cron, { tz: schedule.timezone ?? timezone, currentDate: from }).next().toDate();
}

export function describeSchedule(schedule: Schedule): string {
  return 'everyMs' in schedule ? `every ${schedule.everyMs}ms` : schedule.cron;
}

/** Checks a schedule before it is registered; throws with what is wrong. */
export function validateSchedule(schedule: Schedule): void {
  if ('everyMs' in schedule) {
    if (!Number.isInteger(schedule.everyMs) || schedule.everyMs < 10) throw new Error('everyMs must be a whole number ≥ 10');
    return;
  }
  nextRun(schedule, new Date(), schedule.timezone);
}

interface ActiveJob {
  definition: JobDefinition;
  id: string;
  timezone: string;
  timer: NodeJS.Timeout | undefined;
  /** A tick claiming in the database now. */
  ticking: Promise<void> | undefined;
  running: Promise<RunResult> | undefined;
}

export class Scheduler {
  readonly #jobs = new Map<string, ActiveJob>();
  readonly #instance = ulid();
  #stopped = false;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly log: Logger,
  ) {}

  /** Registers a job and starts its timer; returns the function that unregisters it. */
  async register(definition: JobDefinition): Promise<() => Promise<void>> {
    validateSchedule(definition.schedule);
    const id = `${definition.owner}:${definition.name}`;
    if (this.#jobs.has(id)) throw new Error(`The job ${id} is already registered`);
    const timezone = await this.#timezoneOf(definition);
    const now = new Date();
    const next = nextRun(definition.schedule, now, timezone);
    const schedule = describeSchedule(definition.schedule);
    await this.db
      .insertInto('jobs')
      .values({ id, owner: definition.owner, name: definition.name, home_id: definition.homeId ?? null, schedule, timezone, next_run: next })
      .onConflict((oc) =>
        oc.column('id').doUpdateSet({
          home_id: definition.homeId ?? null,
          schedule,
          timezone,
          active: true,
          // Keep the stored next run if it still belongs to this schedule and lies ahead.
          next_run: sql<Date>`case when jobs.schedule = ${schedule} and jobs.timezone = ${timezone} and jobs.next_run > ${now} then jobs.next_run else ${next} end`,
        }),
      )
      .execute();
    const job: ActiveJob = { definition, id, timezone, timer: undefined, ticking: undefined, running: undefined };
    this.#jobs.set(id, job);
    await this.#arm(job);
    return () => this.#unregister(job);
  }

  /** Runs a job now, outside its schedule. HUB_ERR_JOB_RUNNING if a run is in progress anywhere. */
  async runNow(id: string): Promise<RunResult> {
    const job = this.#jobs.get(id);
    if (!job) throw hubError('HUB_ERR_JOB_NOT_FOUND');
    if (job.running) throw hubError('HUB_ERR_JOB_RUNNING');
    const token = await this.#claim(job, false);
    if (!token) throw hubError('HUB_ERR_JOB_RUNNING', 'The job is running on another hub instance');
    return this.#run(job, token);
  }

  /** Whether this instance runs the job (it may be registered but unknown here). */
  has(id: string): boolean {
    return this.#jobs.has(id);
  }

  /** Stops every timer and waits for runs in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const job of this.#jobs.values()) clearTimeout(job.timer);
    await Promise.allSettled([...this.#jobs.values()].flatMap((job) => [job.ticking, job.running]));
  }

  async #timezoneOf(definition: JobDefinition): Promise<string> {
    if ('cron' in definition.schedule && definition.schedule.timezone) return definition.schedule.timezone;
    if (!definition.homeId) return 'UTC';
    const home = await this.db.selectFrom('homes').select('timezone').where('id', '=', definition.homeId).executeTakeFirst();
    return home?.timezone ?? 'UTC';
  }

  async #unregister(job: ActiveJob): Promise<void> {
    if (this.#jobs.get(job.id) !== job) return;
    this.#jobs.delete(job.id);
    clearTimeout(job.timer);
    await Promise.allSettled([job.ticking, job.running]);
    await this.db.updateTable('jobs').set({ active: false }).where('id', '=', job.id).execute();
  }

  async #arm(job: ActiveJob): Promise<void> {
    if (this.#stopped || this.#jobs.get(job.id) !== job) return;
    // Measured against the database's clock, which decides the claim, not this machine's.
    const row = await this.db
      .selectFrom('jobs')
      .select((eb) => ['next_run', eb.fn<Date>('now').as('now')])
      .where('id', '=', job.id)
      .executeTakeFirst();
    const delay = row?.next_run ? row.next_run.getTime() - row.now.getTime() : 0;
    clearTimeout(job.timer);
    job.timer = setTimeout(() => (job.ticking = this.#tick(job).finally(() => (job.ticking = undefined))), Math.min(Math.max(0, delay), MAX_SLEEP_MS));
    job.timer.unref();
  }

  /**
   * Claims the tick and starts the run without waiting for it, then arms the next tick: a tick
   * that comes while the run is still going finds the lease held and is skipped.
   */
  async #tick(job: ActiveJob): Promise<void> {
    try {
      if (this.#stopped) return;
      const token = await this.#claim(job, true);
      if (!token) {
        this.log.debug({ job: job.id }, 'tick claimed elsewhere, or skipped while a run is in progress');
      } else if (job.running || this.#stopped || this.#jobs.get(job.id) !== job) {
        await this.#release(job, token);
      } else {
        void this.#run(job, token);
      }
    } catch (error) {
      this.log.warn({ err: error, job: job.id }, 'scheduler tick failed');
    } finally {
      await this.#arm(job).catch((error: unknown) => this.log.warn({ err: error, job: job.id }, 'scheduler could not re-arm'));
    }
  }

  async #release(job: ActiveJob, token: string): Promise<void> {
    await this.db
      .updateTable('jobs')
      .set({ lease_holder: null, lease_until: null })
      .where('id', '=', job.id)
      .where('lease_holder', '=', token)
      .execute();
  }

  /** Extends the lease of a run in progress, so a long run never looks abandoned. */
  #keepLease(job: ActiveJob, token: string): NodeJS.Timeout {
    const timer = setInterval(() => {
      this.db
        .updateTable('jobs')
        .set({ lease_until: sql`now() + make_interval(secs => ${LEASE_MS / 1000})` })
        .where('id', '=', job.id)
        .where('lease_holder', '=', token)
        .execute()
        .catch((error: unknown) => this.log.warn({ err: error, job: job.id }, 'could not extend the job lease'));
    }, LEASE_MS / 2);
    timer.unref();
    return timer;
  }

  /**
   * Claims the job in the database. A scheduled claim also advances `next_run`, whether or not
   * the lease is free, so a tick that finds the previous run still going is skipped, not queued.
   *
   * @returns the lease token when this instance got the lease, else undefined.
   */
  async #claim(job: ActiveJob, scheduled: boolean): Promise<string | undefined> {
    const token = `${this.#instance}:${ulid()}`;
    const leaseFree = sql<boolean>`(jobs.lease_until is null or jobs.lease_until < now())`;
    let update = this.db
      .updateTable('jobs')
      .set({
        lease_holder: sql`case when ${leaseFree} then ${token} else jobs.lease_holder end`,
        lease_until: sql`case when ${leaseFree} then now() + make_interval(secs => ${LEASE_MS / 1000}) else jobs.lease_until end`,
      })
      .where('id', '=', job.id)
      .where('active', '=', true);
    if (scheduled) {
      update = update
        .set({ next_run: nextRun(job.definition.schedule, new Date(), job.timezone) })
        .where('next_run', '<=', sql<Date>`now()`);
    }
    const row = await update.returning('lease_holder').executeTakeFirst();
    return row?.lease_holder === token ? token : undefined;
  }

  #run(job: ActiveJob, token: string): Promise<RunResult> {
    const log = this.log.child({ job: job.id });
    const startedAt = new Date();
    const started = performance.now();
    const lease = this.#keepLease(job, token);
    job.running = (async () => {
      let error: string | null = null;
      try {
        await job.definition.run({ log, jobId: job.id });
      } catch (cause) {
        error = cause instanceof Error ? cause.message : String(cause);
        log.error({ err: cause }, 'job failed');
      } finally {
        clearInterval(lease);
      }
      const durationMs = Math.round(performance.now() - started);
      await this.#record(job, token, { startedAt, durationMs, error }).catch((cause: unknown) =>
        // The lease then expires by itself; the run happened, only its record is lost.
        log.error({ err: cause }, 'could not record the job run'),
      );
      return { ok: error === null, durationMs, error };
    })().finally(() => (job.running = undefined));
    return job.running;
  }

  async #record(job: ActiveJob, token: string, run: { startedAt: Date; durationMs: number; error: string | null }): Promise<void> {
    await this.db
      .updateTable('jobs')
      .set((eb) => ({
        last_run: run.startedAt,
        last_error: run.error,
        last_duration_ms: run.durationMs,
        run_count: eb('run_count', '+', 1),
        lease_holder: null,
        lease_until: null,
      }))
      .where('id', '=', job.id)
      .where('lease_holder', '=', token)
      .execute();
  }
}
