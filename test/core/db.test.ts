import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CORE_MIGRATIONS_DIR, migrate, MigrationError, openDatabase, type HubDatabase } from '../../core/db/index.js';
import { openTestDatabase } from '../harness/index.js';

const log = pino({ level: 'silent' });

describe('migrator', () => {
  let database: HubDatabase;
  let drop: () => Promise<void>;
  let dir: string;

  beforeEach(async () => {
    ({ database, drop } = await openTestDatabase());
    dir = await mkdtemp(path.join(tmpdir(), 'hub-migrations-'));
    await cp(CORE_MIGRATIONS_DIR, dir, { recursive: true });
  });
  afterEach(async () => {
    await drop();
    await database.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('applies every file on a fresh database, and nothing on a re-run', async () => {
    const first = await migrate(database.db, [{ scope: 'core', dir }], log);
    expect(first).toEqual((await readdir(dir)).sort().map((f) => `core/${f}`));
    expect(first[0]).toBe('core/0001_foundation.sql');
    const tables = await sql<{ tablename: string }>`select tablename from pg_tables where schemaname = 'public'`.execute(database.db);
    expect(tables.rows.map((r) => r.tablename)).toEqual(
      expect.arrayContaining(['api_tokens', 'home_members', 'homes', 'hub_migrations', 'sessions', 'users', 'entity_states', 'jobs']),
    );

    expect(await migrate(database.db, [{ scope: 'core', dir }], log)).toEqual([]);
  });

  it('applies new files in order after the ones already applied', async () => {
    await migrate(database.db, [{ scope: 'core', dir }], log);
    await writeFile(path.join(dir, '0999_third.sql'), 'alter table notes add column body text;');
    await writeFile(path.join(dir, '0998_second.sql'), 'create table notes (id int primary key);');
    expect(await migrate(database.db, [{ scope: 'core', dir }], log)).toEqual(['core/0998_second.sql', 'core/0999_third.sql']);
    await database.db.insertInto('notes' as never).values({ id: 1, body: 'ok' } as never).execute();
  });

  it('refuses to start when an applied file has changed, and applies nothing', async () => {
    await migrate(database.db, [{ scope: 'core', dir }], log);
    await writeFile(path.join(dir, '0001_foundation.sql'), '-- edited\n', { flag: 'a' });
    await writeFile(path.join(dir, '0999_next.sql'), 'create table later (id int);');
    await expect(migrate(database.db, [{ scope: 'core', dir }], log)).rejects.toThrow(
      /core\/0001_foundation\.sql changed after it was applied/,
    );
    const later = await sql`select to_regclass('later') as t`.execute(database.db);
    expect(later.rows[0]).toEqual({ t: null });
  });

  it('refuses to start when an applied file is missing', async () => {
    await writeFile(path.join(dir, '0999_extra.sql'), 'create table extra (id int);');
    await migrate(database.db, [{ scope: 'core', dir }], log);
    await rm(path.join(dir, '0999_extra.sql'));
    await expect(migrate(database.db, [{ scope: 'core', dir }], log)).rejects.toBeInstanceOf(MigrationError);
  });

  it('rolls back a failing file completely and records nothing for it', async () => {
    await writeFile(path.join(dir, '0999_broken.sql'), 'create table half (id int);\nselect no_such_function();');
    await expect(migrate(database.db, [{ scope: 'core', dir }], log)).rejects.toThrow(/no_such_function/);
    const half = await sql`select to_regclass('half') as t`.execute(database.db);
    expect(half.rows[0]).toEqual({ t: null });
    const recorded = await database.db.selectFrom('hub_migrations').select('name').execute();
    expect(recorded.map((r) => r.name)).not.toContain('0999_broken.sql');
    expect(recorded.length).toBe((await readdir(dir)).length - 1);
  });

  it('rejects files not named NNNN_name.sql', async () => {
    await writeFile(path.join(dir, 'add-things.sql'), 'select 1;');
    await expect(migrate(database.db, [{ scope: 'core', dir }], log)).rejects.toThrow(/rename add-things\.sql/);
  });
});

describe('storage under concurrency', () => {
  let database: HubDatabase;
  let drop: () => Promise<void>;
  beforeEach(async () => {
    ({ database, drop } = await openTestDatabase());
    await sql`create table ledger (id serial primary key, writer int not null, n int not null)`.execute(database.db);
  });
  afterEach(async () => {
    await drop();
    await database.close();
  });

  it('loses no committed row when transactions overlap, some of them rolling back', async () => {
    const writers = 20;
    const rowsEach = 5;
    const results = await Promise.allSettled(
      Array.from({ length: writers }, (_, writer) =>
        database.db.transaction().execute(async (trx) => {
          for (let n = 0; n < rowsEach; n++) {
            await trx.insertInto('ledger' as never).values({ writer, n } as never).execute();
            await new Promise((resolve) => setImmediate(resolve)); // let the others interleave
          }
          if (writer % 4 === 0) throw new Error(`writer ${writer} gives up`);
        }),
      ),
    );
    const committed = results.flatMap((r, writer) => (r.status === 'fulfilled' ? [writer] : []));
    expect(committed).toHaveLength(15);

    const rows = await sql<{ writer: number; count: number }>`
      select writer, count(*)::int as count from ledger group by writer order by writer`.execute(database.db);
    expect(rows.rows).toEqual(committed.map((writer) => ({ writer, count: rowsEach })));
  });

  it('serves plain queries while transactions are running', async () => {
    const inserts = Array.from({ length: 50 }, (_, i) =>
      i % 2 === 0
        ? database.db.insertInto('ledger' as never).values({ writer: i, n: 0 } as never).execute()
        : database.db.transaction().execute((trx) => trx.insertInto('ledger' as never).values({ writer: i, n: 0 } as never).execute()),
    );
    await Promise.all(inserts);
    const count = await sql<{ c: number }>`select count(*)::int as c from ledger`.execute(database.db);
    expect(count.rows[0]!.c).toBe(50);
  });

  it('counts connections in use and callers waiting for one', async () => {
    const { pool } = database;
    const waits: number[] = [];
    pool.onAcquired = (seconds) => waits.push(seconds);
    const finishers: (() => void)[] = [];
    const held = Array.from({ length: pool.size }, () =>
      database.db.transaction().execute(() => new Promise<void>((resolve) => finishers.push(resolve))),
    );
    while (pool.inUse < pool.size) await new Promise((resolve) => setTimeout(resolve, 5));
    const waiting = sql`select 1`.execute(database.db);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect({ inUse: pool.inUse, waiting: pool.waiting }).toEqual({ inUse: pool.size, waiting: 1 });

    for (const finish of finishers) finish();
    await Promise.all([...held, waiting]);
    expect({ inUse: pool.inUse, waiting: pool.waiting }).toEqual({ inUse: 0, waiting: 0 });
    expect(waits.length).toBe(pool.size + 1);
    expect(Math.max(...waits)).toBeGreaterThan(0.015);
  });
});

describe('embedded database directory', () => {
  it('persists data across restarts and refuses a second process on the same directory', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'hub-pglite-'));
    try {
      const first = await openDatabase({ kind: 'pglite', dataDir });
      await sql`create table kept (v text)`.execute(first.db);
      await sql`insert into kept values ('still here')`.execute(first.db);
      await first.close();

      const second = await openDatabase({ kind: 'pglite', dataDir });
      const rows = await sql<{ v: string }>`select v from kept`.execute(second.db);
      expect(rows.rows).toEqual([{ v: 'still here' }]);
      await second.close();

      // A live process that is not us holds the lock: pid 1 always exists.
      await writeFile(path.join(dataDir, 'hub.lock'), '1');
      await expect(openDatabase({ kind: 'pglite', dataDir })).rejects.toThrow(/in use by another hub process \(pid 1\)/);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
