/**
 * Many rows in one statement with one parameter: the rows travel as a JSON array and the server
 * unpacks them with `jsonb_to_recordset`. For the hot write paths (readings, state history) this
 * is far cheaper than a multi-row VALUES list, whose thousands of parameters each cost the
 * driver (and PGlite's JavaScript side) a serialisation step.
 *
 * @module
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from './schema.js';

/** A column to fill, and its SQL type as `jsonb_to_recordset` should read it. */
export type BulkColumns<Row> = { [K in keyof Row]: 'uuid' | 'text' | 'timestamptz' | 'double precision' | 'jsonb' };

/**
 * A JSON value for a jsonb column or parameter. Sent as text and cast, because a parameter typed
 * jsonb is JSON-encoded a second time by postgres.js, and arrays would be taken for SQL arrays.
 */
export function jsonb(value: unknown): RawBuilder<unknown> {
  return sql`${JSON.stringify(value)}::text::jsonb`;
}

/** Inserts `rows` into `table`; `columns` names every column the rows carry, with its type. */
export async function bulkInsert<Row extends object>(db: Kysely<Database>, table: keyof Database, columns: BulkColumns<Row>, rows: readonly Row[]): Promise<void> {
  if (rows.length === 0) return;
  const names = Object.keys(columns);
  const list = sql.join(names.map((name) => sql.id(name)));
  const definitions = sql.join(names.map((name) => sql`${sql.id(name)} ${sql.raw(columns[name as keyof Row])}`));
  await sql`insert into ${sql.table(table)} (${list})
    select ${list} from jsonb_to_recordset(${jsonb(rows)}) as r(${definitions})`.execute(db);
}
