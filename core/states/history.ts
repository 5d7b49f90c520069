/** `GET /api/history/period/{start}`: states over a period, Home Assistant's response shape. */
import type { Kysely } from 'kysely';
import type { Principal } from '../auth/index.js';
import { inVisibleHomes } from '../auth/index.js';
import type { Database } from '../db/index.js';
import type { State } from './index.js';

export interface HistoryQuery {
  start: Date;
  end: Date;
  /** Only these entities; all the caller can see when empty. */
  entityIds: string[];
  /** Keep only `{state, last_changed}` for all but the first and last state of each entity. */
  minimalResponse: boolean;
  noAttributes: boolean;
  /** Leave out attribute-only changes. */
  significantChangesOnly: boolean;
}

/** A history entry: a full state, or `{state, last_changed}` in a minimal response. */
export type HistoryState = State | { state: string; last_changed: string };

// One request reads at most this many rows; ask for a shorter period or fewer entities.
const MAX_ROWS = 100_000;

/**
 * One array per entity, oldest first. Like Home Assistant, each array starts with the state
 * the entity had at `start` (its timestamps moved to `start`), if it existed then.
 */
/** @param principal whose homes to read; null: the hub itself (automations), every home. */
export async function historyPeriod(
  db: Kysely<Database>,
  principal: Principal | null,
  query: HistoryQuery,
): Promise<HistoryState[][]> {
  const scoped = () => {
    const all = db.selectFrom('state_history').selectAll();
    const select = principal ? all.where((eb) => inVisibleHomes(eb, principal, 'state_history.home_id')) : all;
    return query.entityIds.length > 0 ? select.where('entity_id', 'in', query.entityIds) : select;
  };
  const inPeriod = await scoped()
    .where('last_updated', '>=', query.start)
    .where('last_updated', '<=', query.end)
    .orderBy('entity_id')
    .orderBy('id')
    .limit(MAX_ROWS)
    .execute();
  const atStart = await scoped()
    .where('last_updated', '<', query.start)
    .distinctOn('entity_id')
    .orderBy('entity_id')
    .orderBy('last_updated', 'desc')
    .orderBy('id', 'desc')
    .execute();

  const byEntity = new Map<string, State[]>();
  const startIso = query.start.toISOString();
  for (const row of atStart) {
    if (row.state === null) continue; // removed before the period began
    byEntity.set(row.entity_id, [{ ...toState(row), last_changed: startIso, last_updated: startIso }]);
  }
  for (const row of inPeriod) {
    const list = byEntity.get(row.entity_id) ?? [];
    byEntity.set(row.entity_id, list);
    if (row.state === null) continue;
    const state = toState(row);
    const previous = list.at(-1);
    if (query.significantChangesOnly && previous && previous.state === state.state) continue;
    list.push(state);
  }

  return [...byEntity.values()]
    .filter((list) => list.length > 0)
    .map((list) =>
      list.map((state, i): HistoryState => {
        const withAttributes = query.noAttributes ? { ...state, attributes: {} } : state;
        const middle = i > 0 && i < list.length - 1;
        return query.minimalResponse && middle ? { state: state.state, last_changed: state.last_changed } : withAttributes;
      }),
    );
}

function toState(row: {
  entity_id: string;
  state: string | null;
  attributes: Record<string, unknown>;
  last_changed: Date;
  last_updated: Date;
  context_id: string;
  context_parent_id: string | null;
  context_user_id: string | null;
}): State {
  return {
    entity_id: row.entity_id,
    state: row.state ?? '',
    attributes: row.attributes,
    last_changed: row.last_changed.toISOString(),
    last_updated: row.last_updated.toISOString(),
    context: { id: row.context_id, parent_id: row.context_parent_id, user_id: row.context_user_id },
  };
}
