/**
 * The state machine: Home Assistant's state objects, kept in memory for reads, persisted in
 * the background (current table + history) in batches, and restored at start-up.
 *
 * @module
 */
import { isDeepStrictEqual } from 'node:util';
import { sql, type Kysely } from 'kysely';
import { homeRole, type Principal } from '../auth/index.js';
import type { EventBus } from '../bus/index.js';
import { createContext, type Context } from '../bus/index.js';
import { bulkInsert, sqlState, type BulkColumns, type Database } from '../db/index.js';
import { hubError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { EntityRegistry, type EntityClaim, type RegistryEntry } from './registry.js';

export { stateRoutes, StateSchema } from './routes.js';
export { historyPeriod, type HistoryQuery } from './history.js';
export type { EntityClaim, RegistryEntry } from './registry.js';

/** A state as every API shows it (Home Assistant's shape). */
export interface State {
  entity_id: string;
  state: string;
  attributes: Record<string, unknown>;
  last_changed: string;
  last_updated: string;
  context: Context;
}

/** A state with what the hub knows about its entity. */
export interface Entry {
  state: State;
  homeId: string;
  deviceId: string | null;
  /** Who may change it: `api` for virtual entities, `plugin:<id>` for a plugin's. */
  owner: string;
}

// Home Assistant's rule: lower-case letters, digits and single underscores, not at either end.
const ENTITY_ID = /^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$/;
const MAX_STATE_LENGTH = 255;

// PostgreSQL text and jsonb refuse NUL and unpaired UTF-16 surrogates (in JSON they appear
// as \u0000 and lone \udXXX escapes); refuse them before they reach the writer.
const STORABLE_JSON_REFUSED = /\\u0000|\\ud[89a-f][0-9a-f]{2}/i;
const storable = (text: string) => !text.includes('\0') && text.isWellFormed();

export function isValidEntityId(entityId: string): boolean {
  return entityId.length <= 255 && ENTITY_ID.test(entityId);
}

export interface SetOptions {
  homeId: string;
  owner: string;
  deviceId?: string | null;
  context?: Context;
  /** Write and fire even when nothing changed. */
  force?: boolean;
}

interface PendingWrite {
  current: Map<string, Entry | null>;
  history: { entry: Entry; removed: boolean }[];
  /** Registry rows to write (null: to delete), by entity id. */
  registry: Map<string, RegistryEntry | null>;
}

const emptyWrite = (): PendingWrite => ({ current: new Map(), history: [], registry: new Map() });

export interface StateMachineOptions {
  /** Pending writes are flushed this often… */
  flushIntervalMs?: number;
  /** …or as soon as this many history rows wait. */
  batchSize?: number;
  /** History rows kept in memory while the database is unreachable; older ones are dropped. */
  maxPendingHistory?: number;
  /** Entities a home may hold (`HUB_MAX_ENTITIES_PER_HOME`); creating one more is refused. */
  maxEntitiesPerHome?: number;
}

export class StateMachine {
  readonly #entries = new Map<string, Entry>();
  readonly #registry = new EntityRegistry();
  /** Live entities per home, for the quota. */
  readonly #perHome = new Map<string, number>();
  #pending: PendingWrite = emptyWrite();
  #flushing: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #droppedHistory = 0;
  readonly #options: Required<StateMachineOptions>;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly bus: EventBus,
    private readonly log: Logger,
    options: StateMachineOptions = {},
  ) {
    this.#options = { flushIntervalMs: 250, batchSize: 500, maxPendingHistory: 100_000, maxEntitiesPerHome: Number.POSITIVE_INFINITY, ...options };
  }

  /** Loads the persisted current states and entity registry; call once before anything reads or writes. */
  async restore(): Promise<number> {
    for (const row of await this.db.selectFrom('entity_registry').selectAll().execute()) {
      this.#registry.add({ entityId: row.entity_id, owner: row.owner, homeId: row.home_id, deviceId: row.device_id, uniqueId: row.unique_id });
    }
    const rows = await this.db.selectFrom('entity_states').selectAll().execute();
    for (const row of rows) {
      this.#countIn(row.home_id, 1);
      this.#entries.set(row.entity_id, {
        homeId: row.home_id,
        deviceId: row.device_id,
        owner: row.owner,
        state: {
          entity_id: row.entity_id,
          state: row.state,
          attributes: row.attributes,
          last_changed: row.last_changed.toISOString(),
          last_updated: row.last_updated.toISOString(),
          context: { id: row.context_id, parent_id: row.context_parent_id, user_id: row.context_user_id },
        },
      });
    }
    return rows.length;
  }

  get(entityId: string): State | undefined {
    return this.#entries.get(entityId)?.state;
  }

  entry(entityId: string): Entry | undefined {
    return this.#entries.get(entityId);
  }

  /** Every entry; filter with the caller's homes before showing them to anyone. */
  entries(): IterableIterator<Entry> {
    return this.#entries.values();
  }

  /** The states of the caller's homes. */
  visibleTo(principal: Principal): State[] {
    return [...this.#entries.values()].filter((e) => homeRole(principal, e.homeId)).map((e) => e.state);
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * The entity id for a claim: the one its owner, device and unique id already hold, else a new
   * one — the preferred id when nobody holds it, else `<id>_2`, `_3`, … (an unregistered entity
   * of the same owner, home and device at that id is taken over: entities from before the
   * registry keep their ids). A claim from another home moves the id's registration with it:
   * only its owner can make that claim, for its own device or unique id.
   *
   * @throws HUB_ERR_INVALID_ENTITY_ID when the preferred id is not one
   */
  claim(claim: EntityClaim): string {
    if (!isValidEntityId(claim.preferredId)) throw hubError('HUB_ERR_INVALID_ENTITY_ID', `Invalid entity id "${claim.preferredId}"`);
    const held = this.#registry.find(claim);
    if (held && held.homeId === claim.homeId) return held.entityId;
    const entry = held ? { ...held, homeId: claim.homeId } : this.#registry.allocate(claim, (id) => this.#adoptable(id, claim));
    if (held) this.#registry.add(entry);
    this.#pending.registry.set(entry.entityId, entry);
    this.#flushSoon(this.#options.flushIntervalMs);
    return entry.entityId;
  }

  /** The entity id a claim already holds, without allocating one. */
  claimed(claim: EntityClaim): string | undefined {
    return this.#registry.find(claim)?.entityId;
  }

  /** How many entity ids an owner holds for a device (the telemetry per-device cap reads it). */
  claimedFor(owner: string, deviceId: string): number {
    return this.#registry.countFor(owner, deviceId);
  }

  /** Whether the home may hold one more entity (`maxEntitiesPerHome`). */
  hasRoomIn(homeId: string): boolean {
    return (this.#perHome.get(homeId) ?? 0) < this.#options.maxEntitiesPerHome;
  }

  /** Releases a deleted device's entity ids (its entities are removed by whoever deletes it). */
  forgetDevice(deviceId: string): void {
    for (const entry of this.#registry.deleteWhere((e) => e.deviceId === deviceId)) this.#pending.registry.set(entry.entityId, null);
    this.#flushSoon(this.#options.flushIntervalMs);
  }

  /**
   * Sets an entity's state. `last_changed` moves only when the state string changes;
   * nothing is written or fired when neither state nor attributes changed (unless `force`).
   *
   * An entity never changes owner, home or device here: a set that would is refused. A new
   * entity may not take an id the registry gave someone else, nor exceed its home's quota.
   *
   * @throws HUB_ERR_INVALID_ENTITY_ID, HUB_ERR_VALIDATION (state too long), HUB_ERR_ENTITY_OWNED
   *   (another owner, home or device holds the id), HUB_ERR_ENTITY_QUOTA (the home is full)
   */
  set(entityId: string, state: string, attributes: Record<string, unknown> = {}, options: SetOptions): State {
    if (!isValidEntityId(entityId)) throw hubError('HUB_ERR_INVALID_ENTITY_ID', `Invalid entity id "${entityId}"`);
    if (state.length > MAX_STATE_LENGTH) {
      throw hubError('HUB_ERR_VALIDATION', `A state is at most ${MAX_STATE_LENGTH} characters`);
    }
    if (!storable(state) || STORABLE_JSON_REFUSED.test(JSON.stringify(attributes))) {
      throw hubError('HUB_ERR_VALIDATION', 'States and attributes cannot hold NUL characters or unpaired surrogates');
    }
    const old = this.#entries.get(entityId);
    if (old) this.#requireSameHolder(entityId, old, options);
    else this.#requireCreatable(entityId, options);
    const sameState = old?.state.state === state;
    const unchanged = sameState && isDeepStrictEqual(old.state.attributes, attributes);
    if (unchanged && !options.force) return old.state;

    const now = new Date().toISOString();
    const entry: Entry = {
      homeId: options.homeId,
      deviceId: old ? old.deviceId : (options.deviceId ?? null),
      owner: options.owner,
      state: {
        entity_id: entityId,
        state,
        attributes,
        last_changed: sameState ? old.state.last_changed : now,
        last_updated: now,
        context: options.context ?? createContext(),
      },
    };
    if (!old) this.#countIn(entry.homeId, 1);
    this.#entries.set(entityId, entry);
    this.#queue(entityId, entry, false);
    this.bus.fire(
      'state_changed',
      { entity_id: entityId, old_state: old?.state ?? null, new_state: entry.state },
      { context: entry.state.context, homeId: entry.homeId },
    );
    return entry.state;
  }

  /** Removes an entity; fires `state_changed` with `new_state: null`. */
  remove(entityId: string, context: Context = createContext()): boolean {
    const old = this.#entries.get(entityId);
    if (!old) return false;
    this.#entries.delete(entityId);
    this.#countIn(old.homeId, -1);
    const removal: Entry = { ...old, state: { ...old.state, last_updated: new Date().toISOString(), context } };
    this.#queue(entityId, removal, true);
    this.bus.fire('state_changed', { entity_id: entityId, old_state: old.state, new_state: null }, { context, homeId: old.homeId });
    return true;
  }

  /** Forgets a deleted home's entities and their ids; the database already dropped their rows. */
  forgetHome(homeId: string): void {
    for (const [entityId, entry] of this.#entries) {
      if (entry.homeId !== homeId) continue;
      this.#entries.delete(entityId);
      this.#pending.current.delete(entityId);
    }
    this.#perHome.delete(homeId);
    this.#pending.history = this.#pending.history.filter((h) => h.entry.homeId !== homeId);
    for (const entry of this.#registry.deleteWhere((e) => e.homeId === homeId)) this.#pending.registry.delete(entry.entityId);
  }

  #requireSameHolder(entityId: string, old: Entry, options: SetOptions): void {
    if (old.owner !== options.owner) throw hubError('HUB_ERR_ENTITY_OWNED', `${entityId} is managed by ${old.owner}`);
    // Moving an entity would hand its state, history and automations to another home.
    if (old.homeId !== options.homeId) throw hubError('HUB_ERR_ENTITY_OWNED', `${entityId} belongs to another home`);
    if (options.deviceId !== undefined && options.deviceId !== old.deviceId) {
      throw hubError('HUB_ERR_ENTITY_OWNED', `${entityId} belongs to another device`);
    }
  }

  #requireCreatable(entityId: string, options: SetOptions): void {
    const holder = this.#registry.get(entityId);
    if (holder && !(holder.owner === options.owner && holder.homeId === options.homeId && holder.deviceId === (options.deviceId ?? null))) {
      throw hubError('HUB_ERR_ENTITY_OWNED', `${entityId} is reserved for another entity`);
    }
    if (!this.hasRoomIn(options.homeId)) {
      throw hubError('HUB_ERR_ENTITY_QUOTA', `The home already has ${this.#options.maxEntitiesPerHome} entities`);
    }
  }

  /** Whether a claim may take `entityId`: nobody else's live entity is there. */
  #adoptable(entityId: string, claim: EntityClaim): boolean {
    const live = this.#entries.get(entityId);
    return !live || (live.owner === claim.owner && live.homeId === claim.homeId && live.deviceId === claim.deviceId);
  }

  #countIn(homeId: string, by: 1 | -1): void {
    this.#perHome.set(homeId, (this.#perHome.get(homeId) ?? 0) + by);
  }

  /** Writes everything pending now. Resolves when it is in the database. */
  async flush(): Promise<void> {
    // Wait out a flush in progress; its failure is its own caller's to handle.
    while (this.#flushing) await this.#flushing.catch(() => {});
    if (this.#pending.current.size === 0 && this.#pending.history.length === 0 && this.#pending.registry.size === 0) return;
    const batch = this.#pending;
    this.#pending = emptyWrite();
    this.#flushing = this.#write(batch)
      .catch(async (error: unknown) => {
        // A data exception or constraint violation (SQLSTATE class 22 or 23) is in the rows,
        // not the connection: retrying the batch would fail forever, so write row by row and
        // drop the bad ones.
        if (/^2[23]/.test(sqlState(error))) return this.#writeEachAlone(batch);
        this.#requeue(batch);
        throw error;
      })
      .finally(() => (this.#flushing = undefined));
    await this.#flushing;
  }

  /** Stops the background writer after a last flush. */
  async stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  #queue(entityId: string, entry: Entry, removed: boolean): void {
    this.#pending.current.set(entityId, removed ? null : entry);
    this.#pending.history.push({ entry, removed });
    if (this.#pending.history.length >= this.#options.batchSize) {
      this.#flushSoon(0);
    } else {
      this.#flushSoon(this.#options.flushIntervalMs);
    }
  }

  #flushSoon(delayMs: number): void {
    if (this.#timer && delayMs > 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush().catch((error: unknown) => {
        this.log.warn({ err: error, pending: this.#pending.history.length }, 'state write failed; retrying');
        this.#flushSoon(Math.max(this.#options.flushIntervalMs, 1000));
      });
    }, delayMs);
    this.#timer.unref();
  }

  #requeue(batch: PendingWrite): void {
    for (const [entityId, entry] of batch.current) {
      if (!this.#pending.current.has(entityId)) this.#pending.current.set(entityId, entry);
    }
    for (const [entityId, entry] of batch.registry) {
      if (!this.#pending.registry.has(entityId)) this.#pending.registry.set(entityId, entry);
    }
    const history = [...batch.history, ...this.#pending.history];
    const overflow = history.length - this.#options.maxPendingHistory;
    if (overflow > 0) {
      this.#droppedHistory += overflow;
      this.log.error({ dropped: overflow, droppedSoFar: this.#droppedHistory }, 'state history dropped: the database has been unreachable too long');
    }
    this.#pending.history = overflow > 0 ? history.slice(overflow) : history;
  }

  async #writeEachAlone(batch: PendingWrite): Promise<void> {
    for (const [entityId, entry] of batch.registry) {
      try {
        await this.#write({ ...emptyWrite(), registry: new Map([[entityId, entry]]) });
      } catch (error) {
        this.log.error({ err: error, entityId }, 'entity registration not persisted: the database refused it');
      }
    }
    for (const [entityId, entry] of batch.current) {
      const history = batch.history.filter((h) => h.entry.state.entity_id === entityId);
      try {
        await this.#write({ ...emptyWrite(), current: new Map([[entityId, entry]]), history });
      } catch (error) {
        this.#droppedHistory += history.length;
        this.log.error({ err: error, entityId }, 'state not persisted: the database refused it');
      }
    }
  }

  async #write(batch: PendingWrite): Promise<void> {
    const upserts = [...batch.current].flatMap(([, entry]) => (entry ? [entry] : []));
    const deletes = [...batch.current].flatMap(([entityId, entry]) => (entry ? [] : [entityId]));
    const registered = [...batch.registry.values()].flatMap((entry) => (entry ? [registryRow(entry)] : []));
    const released = [...batch.registry].flatMap(([entityId, entry]) => (entry ? [] : [entityId]));
    await this.db.transaction().execute(async (trx) => {
      for (const chunk of chunks(registered, 500)) {
        await trx
          .insertInto('entity_registry')
          .values(chunk)
          .onConflict((oc) =>
            oc.column('entity_id').doUpdateSet((eb) => ({
              owner: eb.ref('excluded.owner'),
              home_id: eb.ref('excluded.home_id'),
              device_id: eb.ref('excluded.device_id'),
              unique_id: eb.ref('excluded.unique_id'),
            })),
          )
          .execute();
      }
      if (released.length > 0) await trx.deleteFrom('entity_registry').where('entity_id', 'in', released).execute();
      for (const chunk of chunks(upserts, 500)) {
        await trx
          .insertInto('entity_states')
          .values(chunk.map(currentRow))
          .onConflict((oc) =>
            oc.column('entity_id').doUpdateSet((eb) => ({
              home_id: eb.ref('excluded.home_id'),
              device_id: eb.ref('excluded.device_id'),
              owner: eb.ref('excluded.owner'),
              state: eb.ref('excluded.state'),
              attributes: eb.ref('excluded.attributes'),
              last_changed: eb.ref('excluded.last_changed'),
              last_updated: eb.ref('excluded.last_updated'),
              context_id: eb.ref('excluded.context_id'),
              context_parent_id: eb.ref('excluded.context_parent_id'),
              context_user_id: eb.ref('excluded.context_user_id'),
            })),
          )
          .execute();
      }
      if (deletes.length > 0) await trx.deleteFrom('entity_states').where('entity_id', 'in', deletes).execute();
      const history = batch.history.map(({ entry, removed }) => ({ ...historyRow(entry), state: removed ? null : entry.state.state }));
      await bulkInsert(trx, 'state_history', HISTORY_COLUMNS, history);
    });
  }
}

function registryRow(entry: RegistryEntry) {
  return { entity_id: entry.entityId, owner: entry.owner, home_id: entry.homeId, device_id: entry.deviceId, unique_id: entry.uniqueId };
}

function currentRow(entry: Entry) {
  return { ...historyRow(entry), state: entry.state.state, device_id: entry.deviceId, owner: entry.owner };
}

const HISTORY_COLUMNS: BulkColumns<ReturnType<typeof historyRow> & { state: string | null }> = {
  entity_id: 'text',
  home_id: 'uuid',
  state: 'text',
  attributes: 'jsonb',
  last_changed: 'timestamptz',
  last_updated: 'timestamptz',
  context_id: 'text',
  context_parent_id: 'text',
  context_user_id: 'uuid',
};

function historyRow(entry: Entry) {
  const { state } = entry;
  return {
    entity_id: state.entity_id,
    home_id: entry.homeId,
    attributes: state.attributes,
    last_changed: state.last_changed,
    last_updated: state.last_updated,
    context_id: state.context.id,
    context_parent_id: state.context.parent_id,
    context_user_id: state.context.user_id,
  };
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** Removes history older than `days`; returns the number of rows removed. */
export async function purgeHistory(db: Kysely<Database>, days: number): Promise<number> {
  const result = await db
    .deleteFrom('state_history')
    .where('last_updated', '<', sql<Date>`now() - make_interval(days => ${days})`)
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
