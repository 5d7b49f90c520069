/**
 * Storage: kysely over embedded PGlite (the default) or PostgreSQL (`DATABASE_URL`).
 *
 * @module
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, sql, type Dialect } from 'kysely';
import { PostgresJSDialect } from 'kysely-postgres-js';
import { StartupError } from '../errors/index.js';
import postgres from 'postgres';
import { SerialPGliteDialect } from './pglite.js';
import { countConnections, type PoolStats } from './pool.js';
import type { Database } from './schema.js';

export type * from './schema.js';
export { ROLES } from './schema.js';
export { migrate, MigrationError, type MigrationSource } from './migrator.js';
export type { PoolStats } from './pool.js';
export { bulkInsert, jsonb, type BulkColumns } from './bulk.js';

/** Where the core's own migrations live. */
export const CORE_MIGRATIONS_DIR = fileURLToPath(new URL('../../sql', import.meta.url));

/** Connections to a PostgreSQL server (PGlite has one). */
const POSTGRES_POOL_SIZE = 10;

/** How long closing waits for PostgreSQL connections to finish their queries. */
const CLOSE_GRACE_SECONDS = 5;

/** Which database to open. */
export type DatabaseSource =
  | { kind: 'postgres'; url: string }
  /** `dataDir` unset keeps the database in memory; `template` is a `dumpDataDir` tarball to start from. */
  | { kind: 'pglite'; dataDir?: string; template?: Blob };

/** An open database and what the hub needs to run it. */
export interface HubDatabase {
  db: Kysely<Database>;
  kind: DatabaseSource['kind'];
  /** Connections in use and callers waiting for one. */
  pool: PoolStats;
  /** Round-trip time of `select 1`, in milliseconds; rejects when the database is unreachable. */
  ping(): Promise<number>;
  /** Waits for running queries, then closes the database. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the database. For an on-disk PGlite, a lock file keeps a second hub process from
 * opening the same directory (two processes writing one PGlite directory corrupt it).
 */
export async function openDatabase(source: DatabaseSource): Promise<HubDatabase> {
  let dialect: Dialect;
  let poolSize = 1;
  let unlock = async () => {};
  let beforeDestroy = async () => {};
  if (source.kind === 'postgres') {
    // A short connect timeout: while the server is away, writers fail fast and retry rather
    // than pile up behind postgres.js' default of 30 s.
    const client = postgres(source.url, { max: POSTGRES_POOL_SIZE, connect_timeout: 5, onnotice: () => {}, connection: { application_name: 'mowthos-hub' } });
    dialect = new PostgresJSDialect({ postgres: client });
    poolSize = POSTGRES_POOL_SIZE;
    // A connection that died mid-query during an outage may never report that it has ended;
    // after a grace period postgres.js terminates what is left, so shutdown always finishes.
    beforeDestroy = () => client.end({ timeout: CLOSE_GRACE_SECONDS });
  } else {
    if (source.dataDir) {
      await mkdir(source.dataDir, { recursive: true });
      unlock = await lockDirectory(source.dataDir);
    }
    try {
      const pg = await PGlite.create({ dataDir: source.dataDir, loadDataDir: source.template });
      dialect = new SerialPGliteDialect(pg);
    } catch (error) {
      await unlock();
      throw error;
    }
  }
  const pool = countConnections(dialect, poolSize);
  const db = new Kysely<Database>({ dialect: pool.dialect });
  let closing: Promise<void> | undefined;
  return {
    db,
    kind: source.kind,
    pool: pool.stats,
    async ping() {
      const started = performance.now();
      await sql`select 1`.execute(db);
      return performance.now() - started;
    },
    close() {
      closing ??= Promise.all([beforeDestroy(), db.destroy()]).then(() => undefined).finally(unlock);
      return closing;
    },
  };
}

async function lockDirectory(dir: string): Promise<() => Promise<void>> {
  const lockFile = path.join(dir, 'hub.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      // 'wx' creates the file or fails if it exists: two processes cannot both win.
      await writeFile(lockFile, String(process.pid), { flag: 'wx' });
      return () => rm(lockFile, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = Number(await readFile(lockFile, 'utf8').catch(() => ''));
    if (holder && isRunning(holder)) {
      throw new StartupError(
        `The embedded database in ${dir} is in use by ${holder === process.pid ? 'this process already' : `another hub process (pid ${holder})`}. ` +
          'Stop it, or give this hub its own HUB_DATA_DIR.',
      );
    }
    await rm(lockFile, { force: true }); // left by a process that is gone
  }
  throw new StartupError(`Could not lock the embedded database in ${dir}; another hub is starting on it`);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The SQLSTATE of a database error (both drivers put it in `code`), or ''. */
export function sqlState(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** Whether a database error is a unique-constraint violation (SQLSTATE 23505). */
export function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505';
}
