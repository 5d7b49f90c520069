import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CORE_MIGRATIONS_DIR, migrate, openDatabase, type HubDatabase } from '../../core/db/index.js';
import { nextRun, Scheduler } from '../../core/scheduler/index.js';
import { createTestHub, openTestDatabase, type TestHub } from '../harness/index.js';

const log = pino({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 3000): Promise<T> {
  for (const started = Date.now(); Date.now() - started < timeoutMs; await sleep(10)) {
    const value = await read();
    if (done(value)) return value;
  }
  throw new Error('condition not met in time');
}

describe('nextRun', () => {
  it('follows cron in the given time zone, across a daylight-saving change', () => {
    const daily = { cron: '0 6 * * *' };
    // New York: 06:00 is 11:00Z in winter, 10:00Z after the switch on 8 March 2026.
    expect(nextRun(daily, new Date('2026-03-07T12:00:00Z'), 'America/New_York').toISOString()).toBe('2026-03-08T10:00:00.000Z');
    expect(nextRun(daily, new Date('2026-03-06T12:00:00Z'), 'America/New_York').toISOString()).toBe('2026-03-07T11:00:00.000Z');
    expect(nextRun(daily, new Date('2026-03-07T12:00:00Z')).toISOString()).toBe('2026-03-08T06:00:00.000Z');
    expect(nextRun({ cron: '30 7 * * 1', timezone: 'Europe/Berlin' }, new Date('2026-06-01T06:00:00Z')).toISOString()).toBe('2026-06-08T05:30:00.000Z');
  });

  it('aligns intervals to the clock, so every instance computes the same ticks', () => {
    expect(nextRun({ everyMs: 60_000 }, new Date('2026-01-01T00:00:59.999Z')).toISOString()).toBe('2026-01-01T00:01:00.000Z');
    expect(nextRun({ everyMs: 60_000 }, new Date('2026-01-01T00:01:00.000Z')).toISOString()).toBe('2026-01-01T00:02:00.000Z');
  });
});

describe('Scheduler', () => {
  let database: HubDatabase;
  let drop: () => Promise<void>;
  let url: string | undefined;
  const schedulers: Scheduler[] = [];
  const extraDatabases: HubDatabase[] = [];

  beforeAll(async () => {
    ({ database, drop, url } = await openTestDatabase());
    await migrate(database.db, [{ scope: 'core', dir: CORE_MIGRATIONS_DIR }], log);
  });
  afterEach(async () => {
    await Promise.all(schedulers.splice(0).map((s) => s.stop()));
    await database.db.deleteFrom('jobs').execute();
  });
  afterAll(async () => {
    await Promise.all(extraDatabases.map((d) => d.close()));
    await drop();
    await database.close();
  });

  const scheduler = (db = database.db) => {
    const s = new Scheduler(db, log);
    schedulers.push(s);
    return s;
  };
  const row = (id: string) => database.db.selectFrom('jobs').selectAll().where('id', '=', id).executeTakeFirstOrThrow();

  it('records a failure, and runs again on the next tick', async () => {
    let runs = 0;
    await scheduler().register({
      owner: 'test',
      name: 'flaky',
      schedule: { everyMs: 400 },
      run: () => {
        runs++;
        if (runs === 1) throw new Error('the first run fails');
      },
    });
    const failed = await waitFor(() => row('test:flaky'), (r) => r.run_count === 1);
    expect(failed.last_error).toBe('the first run fails');
    const recovered = await waitFor(() => row('test:flaky'), (r) => r.run_count === 2);
    expect(recovered.last_error).toBeNull();
    expect(recovered.run_count).toBeGreaterThanOrEqual(2);
    expect(recovered.last_duration_ms).toBeGreaterThanOrEqual(0);
    expect(recovered.next_run!.getTime()).toBeGreaterThan(Date.now() - 50);
  });

  it('skips ticks while a run is still going instead of overlapping', async () => {
    let running = 0;
    let maxParallel = 0;
    let runs = 0;
    await scheduler().register({
      owner: 'test',
      name: 'slow',
      schedule: { everyMs: 50 },
      run: async () => {
        runs++;
        maxParallel = Math.max(maxParallel, ++running);
        await sleep(220);
        running--;
      },
    });
    await sleep(800);
    expect(maxParallel).toBe(1);
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(runs).toBeLessThanOrEqual(4); // 16 ticks passed; a run lasts four of them
  });

  it('runs each tick on exactly one of two instances sharing the database', async () => {
    const second = url ? await openDatabase({ kind: 'postgres', url }) : database;
    if (url) extraDatabases.push(second);
    const starts: { instance: number; at: number }[] = [];
    const everyMs = 150;
    for (const [instance, db] of [database.db, second.db].entries()) {
      await scheduler(db).register({
        owner: 'test',
        name: 'shared',
        schedule: { everyMs },
        run: () => void starts.push({ instance, at: Date.now() }),
      });
    }
    await sleep(1600);
    const ticks = starts.map((s) => Math.round(s.at / everyMs));
    expect(new Set(ticks).size).toBe(ticks.length); // no tick ran twice
    expect(ticks.length).toBeGreaterThanOrEqual(6);
  });

  it('keeps a stored next run that still fits the schedule when an instance restarts', async () => {
    const first = scheduler();
    const unregister = await first.register({ owner: 'test', name: 'nightly', schedule: { cron: '0 3 * * *' }, run: () => {} });
    const before = await row('test:nightly');
    await unregister();
    expect((await row('test:nightly')).active).toBe(false);
    await scheduler().register({ owner: 'test', name: 'nightly', schedule: { cron: '0 3 * * *' }, run: () => {} });
    const after = await row('test:nightly');
    expect(after.active).toBe(true);
    expect(after.next_run).toEqual(before.next_run);
    expect(after.next_run!.getUTCHours()).toBe(3);
  });

  it('refuses a bad schedule', async () => {
    await expect(scheduler().register({ owner: 'test', name: 'bad', schedule: { cron: 'every tuesday' }, run: () => {} })).rejects.toThrow();
    await expect(scheduler().register({ owner: 'test', name: 'fast', schedule: { everyMs: 1 }, run: () => {} })).rejects.toThrow(/everyMs/);
  });
});

describe('/api/jobs', () => {
  let t: TestHub;
  let homeId: string;
  let owner: { id: string; token: string };
  let viewer: { id: string; email: string; token: string };
  let runs = 0;

  beforeAll(async () => {
    t = await createTestHub();
    owner = await t.createUser('owner@example.com');
    viewer = await t.createUser('viewer@example.com');
    homeId = await t.createHome(owner.token, { timezone: 'Europe/Berlin' });
    await t.addMember(owner.token, homeId, viewer, 'viewer');
    await t.hub.scheduler.register({ owner: 'test', name: 'water', homeId, schedule: { cron: '0 5 * * *' }, run: () => void runs++ });
    await t.hub.scheduler.register({ owner: 'test', name: 'explode', homeId, schedule: { cron: '0 5 * * *' }, run: () => { throw new Error('boom'); } });
  });
  afterAll(() => t.stop());

  it('lists the jobs of your homes, in the home’s time zone; hub jobs only for admins', async () => {
    const jobs = (await (await t.request('/api/jobs', { token: viewer.token })).json()) as { id: string; timezone: string; next_run: string }[];
    expect(jobs.map((j) => j.id)).toEqual(['test:explode', 'test:water']);
    expect(jobs[1]).toMatchObject({ timezone: 'Europe/Berlin', schedule: '0 5 * * *', running: false });
    expect(jobs[1]!.next_run).toBe(nextRun({ cron: '0 5 * * *' }, new Date(), 'Europe/Berlin').toISOString());
    const all = (await (await t.request('/api/jobs', { token: await t.adminToken() })).json()) as { id: string }[];
    expect(all.map((j) => j.id)).toEqual(expect.arrayContaining(['plugin:housekeeping:expired_sessions', 'test:water']));
  });

  it('runs a job by hand for owners, and reports its error', async () => {
    const ok = await t.request(`/api/jobs/test:water/run`, { method: 'POST', token: owner.token });
    expect(await ok.json()).toMatchObject({ ok: true, error: null });
    expect(runs).toBe(1);
    const failed = await t.request(`/api/jobs/test:explode/run`, { method: 'POST', token: owner.token });
    expect(await failed.json()).toMatchObject({ ok: false, error: 'boom' });
    expect((await t.request(`/api/jobs/test:water/run`, { method: 'POST', token: viewer.token })).status).toBe(403);
    const stranger = await t.createUser('stranger@example.com');
    expect((await t.request(`/api/jobs/test:water/run`, { method: 'POST', token: stranger.token })).status).toBe(404);
    expect((await t.request(`/api/jobs/plugin:housekeeping:purge_history/run`, { method: 'POST', token: owner.token })).status).toBe(404);
  });
});
