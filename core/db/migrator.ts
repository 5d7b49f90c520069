/**
 * Applies plain-SQL migrations (`NNNN_name.sql`) in order, each in its own transaction,
 * and records them with a checksum. An applied file that has since changed or disappeared
 * stops start-up: the database would no longer match the code that reads it.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { sql, type Kysely } from 'kysely';
import { StartupError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Database } from './schema.js';

/** A directory of migrations and the scope they are recorded under (`core` or a plugin id). */
export interface MigrationSource {
  scope: string;
  dir: string;
}

/** A migration history that does not match the files: the hub refuses to start. */
export class MigrationError extends StartupError {
  constructor(message: string) {
    super(message);
    this.name = 'MigrationError';
  }
}

const FILE_NAME = /^\d{4}_[a-z0-9_]+\.sql$/;

interface MigrationFile {
  name: string;
  text: string;
  checksum: string;
}

async function readMigrations(dir: string): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.sql'));
  const misnamed = names.filter((n) => !FILE_NAME.test(n));
  if (misnamed.length > 0) {
    throw new MigrationError(`Migration files must be named NNNN_name.sql; rename ${misnamed.join(', ')} in ${dir}`);
  }
  return Promise.all(
    names.sort().map(async (name) => {
      const text = await readFile(path.join(dir, name), 'utf8');
      return { name, text, checksum: createHash('sha256').update(text).digest('hex') };
    }),
  );
}

async function ensureMigrationsTable(db: Kysely<Database>): Promise<void> {
  await sql`
    create table if not exists hub_migrations (
      scope text not null,
      name text not null,
      checksum text not null,
      applied_at timestamptz not null default now(),
      primary key (scope, name)
    )`.execute(db);
}

function checkHistory(scope: string, dir: string, files: MigrationFile[], applied: Map<string, string>): void {
  const byName = new Map(files.map((f) => [f.name, f]));
  for (const [name, checksum] of applied) {
    const file = byName.get(name);
    if (!file) {
      throw new MigrationError(
        `Migration ${scope}/${name} was applied to this database but is missing from ${dir}. ` +
          'Restore the file; migrations that have run must never be deleted.',
      );
    }
    if (file.checksum !== checksum) {
      throw new MigrationError(
        `Migration ${scope}/${name} changed after it was applied to this database. ` +
          'Revert the file and put the change in a new migration.',
      );
    }
  }
}

/**
 * Applies every pending migration of each source, in order.
 *
 * Safe with several hub instances starting at once: each file's transaction first takes an
 * advisory lock and re-reads the history, so a file is applied exactly once.
 *
 * @returns the names of the migrations applied now, as `scope/name`.
 * @throws {MigrationError} when an applied file changed or is missing, or a file is misnamed.
 */
export async function migrate(db: Kysely<Database>, sources: MigrationSource[], log: Logger): Promise<string[]> {
  await ensureMigrationsTable(db);
  const appliedNow: string[] = [];
  for (const { scope, dir } of sources) {
    const files = await readMigrations(dir);
    const rows = await db.selectFrom('hub_migrations').select(['name', 'checksum']).where('scope', '=', scope).execute();
    checkHistory(scope, dir, files, new Map(rows.map((r) => [r.name, r.checksum])));
    const done = new Set(rows.map((r) => r.name));
    for (const file of files.filter((f) => !done.has(f.name))) {
      const applied = await db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(hashtext('hub_migrations'))`.execute(trx);
        const already = await trx
          .selectFrom('hub_migrations')
          .select('name')
          .where('scope', '=', scope)
          .where('name', '=', file.name)
          .executeTakeFirst();
        if (already) return false;
        await sql.raw(file.text).execute(trx);
        await trx.insertInto('hub_migrations').values({ scope, name: file.name, checksum: file.checksum }).execute();
        return true;
      });
      if (applied) {
        log.info({ migration: `${scope}/${file.name}` }, 'migration applied');
        appliedNow.push(`${scope}/${file.name}`);
      }
    }
  }
  return appliedNow;
}
