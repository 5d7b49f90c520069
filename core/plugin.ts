/**
 * The plugin contract: everything a plugin may rely on, in one file.
 *
 * A plugin is a module whose default export is `definePlugin({...})`. The hub discovers
 * `plugins/<id>/index.ts`, checks the plugin's `hub` range and `dependsOn`, validates its
 * config, applies its migrations (`plugins/<id>/sql/NNNN_name.sql`) and calls `setup(ctx)`.
 * Everything the plugin registers through `ctx` is owned by the plugin and removed by the hub
 * when the plugin stops or is disabled: a plugin never cleans up by hand, except what it
 * starts outside `ctx` (sockets, timers), which it hands to `ctx.onStop`.
 *
 * @example
 * export default definePlugin({
 *   id: 'demo',
 *   version: '1.0.0',
 *   hub: '^0.1.0',
 *   config: z.object({ greeting: z.string().default('hello') }),
 *   async setup(ctx) {
 *     ctx.routes.get('/hello', (c) => c.json({ greeting: ctx.config.greeting }));
 *   },
 * });
 *
 * @module
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { ActionDefinition } from './actions/index.js';
import type { HubRouter } from './api/rest/index.js';
import type { Context, EventData, FireOptions, HubEvent, Listener } from './bus/index.js';
import type { Database } from './db/index.js';
import type { Logger } from './log/index.js';
import type { Schedule } from './scheduler/index.js';
import type { State } from './states/index.js';

/** What a plugin module exports (through {@link definePlugin}). */
export interface PluginDefinition<C extends z.ZodType = z.ZodType> {
  /**
   * Unique id, `[a-z][a-z0-9_]*`. It names the plugin's routes (`/api/plugins/<id>/`), its
   * tables (`<id>_*`), its config variables (`PLUGIN_<ID>_*`) and its log lines.
   */
  id: string;
  /** The plugin's own version (semver), shown in `/api/plugins`. */
  version: string;
  /** The hub versions the plugin works with, as a semver range (`^1.0.0`). Checked before setup. */
  hub: string;
  /** Plugins that must be running before this one's `setup`; the hub orders and checks them. */
  dependsOn?: string[];
  /** One sentence for `/api/plugins` and the UI. */
  description?: string;
  /**
   * Event types only this plugin may fire: events others act on as facts (a mowing session
   * that bills a yard). Users get a coded 403 (HUB_ERR_FORBIDDEN) from `POST /api/events/{type}`
   * and the WebSocket `fire_event`, flows get the same refusal from the Node-RED bridge, and
   * other plugins' `ctx.bus.fire` throws it.
   *
   * The hub reserves them when it finds the plugin, and they stay reserved as long as the
   * plugin is installed — running, stopped, disabled or failed — so that disabling a plugin
   * never opens its events to forgery. A plugin that declares a type the kernel or another
   * installed plugin holds fails to start, with the reason.
   *
   * @example
   * reservedEvents: ['mowing_session_ended'],
   */
  reservedEvents?: readonly string[];
  /**
   * Schema of the plugin's settings. The hub builds the input from the database
   * (`plugin_settings.config`) and environment variables `PLUGIN_<ID>_<KEY>` (which win; KEY
   * in SNAKE_CASE maps to camelCase, values are strings, so use `z.coerce` for numbers and
   * booleans) and validates it before `setup`; a failure marks the plugin failed with the issues.
   */
  config?: C;
  /**
   * Called once per start of the plugin (at hub start, or when an admin enables it). Register
   * everything through `ctx`. Throwing (or taking longer than 30 s) marks the plugin failed:
   * what it registered so far is removed, and the hub keeps running without it.
   */
  setup(ctx: PluginContext<z.output<C>>): void | Promise<void>;
}

/** The plugin's view of the hub, scoped to the plugin. */
export interface PluginContext<Config = unknown> {
  /** The plugin's id. */
  readonly id: string;
  /** The validated config. */
  readonly config: Config;
  /** A logger whose lines carry `{plugin: id}`. */
  readonly log: Logger;
  /**
   * The database. Plugin tables are named `<id>_*` and created by the plugin's migrations;
   * type them with `ctx.db.withTables<MyTables>()`. Inside a transaction use its `trx` only.
   */
  readonly db: Kysely<Database>;
  /**
   * A router mounted at `/api/plugins/<id>/`. Every route requires an authenticated caller;
   * use `c.var.principal` and the auth helpers to scope data to the caller's homes.
   * Routes disappear (404) when the plugin stops.
   */
  readonly routes: HubRouter;
  /**
   * Raises the request body limit (`HUB_BODY_LIMIT`, 1 MiB by default) for one of the plugin's
   * routes, for bulk imports. `path` is the route's path under the plugin's prefix, without
   * parameters (`/roads`). It applies to administrators only (bulk imports are theirs; nobody
   * else may make the hub hold that much), never lowers the hub's limit, and is removed when
   * the plugin stops.
   */
  bodyLimit(method: string, path: string, maxBytes: number): void;
  readonly actions: {
    /** Registers `domain.action`; see {@link ActionDefinition}. Removed when the plugin stops. */
    register<S extends z.ZodType>(definition: ActionDefinition<S>): void;
    /**
     * Calls any registered action (another plugin's too) as the hub itself, with every right:
     * use it for work the plugin does on its own (a job, a reaction to an event), and check the
     * caller's access yourself before calling on a user's behalf. The data is validated as for
     * every caller; bad data or a failing handler rejects with the hub's coded error
     * (HUB_ERR_ACTION_NOT_FOUND when the action's plugin is not running). Resolves with the
     * action's response where it gives one (null otherwise) and the call's context.
     *
     * @example
     * await ctx.actions.call('lawn_mower', 'dock', {}, { target: { entity_id: 'lawn_mower.luba' } });
     */
    call(
      domain: string,
      action: string,
      data: Record<string, unknown>,
      options?: { target?: { entity_id?: string | string[] }; context?: Context },
    ): Promise<{ response: unknown; context: Context }>;
  };
  readonly entities: {
    /**
     * Creates (or takes back, after a restart) an entity owned by the plugin. Only the plugin
     * can change it; it is removed when the plugin is disabled, and kept (persisted) when the
     * hub stops. Registering it again for another home moves it there (removed from the old
     * home, created in the new one). Rejects when the home does not exist, when the home holds
     * as many entities as the hub allows (HUB_ERR_ENTITY_QUOTA) and, without a `unique_id`,
     * when another owner has the entity id (HUB_ERR_ENTITY_OWNED).
     */
    register(entity: EntityRegistration): Promise<EntityHandle>;
  };
  /** Read access to every entity's state (the plugin sees all homes: filter for callers). */
  readonly states: {
    get(entityId: string): State | undefined;
    all(): State[];
    /** The home an entity belongs to, or `undefined` when there is no such entity. */
    homeOf(entityId: string): string | undefined;
  };
  readonly bus: {
    /**
     * Fires an event; give `homeId` for events that belong to a home. Throws HUB_ERR_FORBIDDEN
     * for types the kernel or another plugin reserved (see {@link PluginDefinition.reservedEvents}).
     */
    fire<T extends string>(eventType: T, data: EventData<T>, options?: FireOptions): HubEvent<EventData<T>>;
    /** Listens to an event type (`'*'` for all); removed when the plugin stops. */
    on<T extends string>(eventType: T, listener: Listener<T>): void;
    /** Listens for the next event of a type; removed when the plugin stops if still waiting. */
    once<T extends string>(eventType: T, listener: Listener<T>): void;
  };
  readonly jobs: {
    /**
     * Schedules `run` by cron (in `homeId`'s time zone, else `timezone` or UTC) or every N ms.
     * Runs are recorded in `/api/jobs` as `plugin:<id>:<name>`; one instance runs each tick.
     */
    schedule(name: string, schedule: Schedule, run: (run: { log: Logger }) => unknown, options?: { homeId?: string }): Promise<void>;
  };
  /** The hub's MQTT connection (embedded broker, or the one in `MQTT_URL`). */
  readonly mqtt: {
    /** First level of every hub topic (`HUB_MQTT_ROOT`, default `mowthos`). */
    readonly root: string;
    publish(topic: string, payload: string | Buffer, options?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
    /** Subscribes to a filter (`+`, `#`); removed when the plugin stops. */
    subscribe(filter: string, handler: (topic: string, payload: Buffer) => void): Promise<void>;
  };
  readonly nodeRed: {
    /**
     * Adds a Node-RED node package (a directory with a package.json that has a `name` and a
     * `node-red.nodes` map) to the embedded Node-RED. Call it in `setup`: Node-RED loads the
     * packages when the hub starts listening. The node types leave the palette when the plugin
     * stops and come back when it starts again.
     */
    nodes(dir: string): void;
  };
  readonly metrics: {
    /**
     * A Prometheus gauge `hub_<plugin id>_<name>` on `/metrics`, read from `collect` at each
     * scrape (keep it cheap: no I/O). Removed when the plugin stops.
     */
    gauge(spec: { name: string; help: string; labelNames?: string[]; collect: () => { labels?: Record<string, string>; value: number }[] }): void;
  };
  /**
   * Encrypts what the plugin must store but nobody may read from a database dump (AES-256-GCM
   * under the hub's key). `context` names where the value lives (e.g. `account:<id>`); a value
   * opens only under the plugin id and context it was sealed with.
   */
  readonly secrets: {
    seal(plaintext: string, context: string): string;
    /** Throws when the value was altered, moved, or sealed under another key. */
    open(sealed: string, context: string): string;
  };
  /** Calls `fn` when the plugin stops, after the hub removed its registrations (last first). */
  onStop(fn: () => void | Promise<void>): void;
}

export interface EntityRegistration {
  /**
   * The entity id. With a `unique_id` it is the id the plugin would like: the hub gives it
   * unless someone else holds it (a device, another home, another plugin), then `<id>_2`,
   * `_3`, …; read the one given from {@link EntityHandle.entityId}.
   */
  entity_id: string;
  /**
   * What the entity stands for, stable within the plugin and the entity's domain (a mower's
   * cloud id and what the entity shows: `<iot id>_battery`). The hub's entity registry keeps
   * the id it gave for it across restarts, so the entity never changes id and never collides.
   * Without it the `entity_id` is taken as it is.
   */
  unique_id?: string;
  home_id: string;
  device_id?: string;
  /** The state when the entity has none yet (first registration, not after a restart). */
  initial?: { state: string; attributes?: Record<string, unknown> };
}

/** An entity the plugin owns. */
export interface EntityHandle {
  readonly entityId: string;
  /** Sets the state (and attributes: the full set, not a patch). */
  set(state: string, attributes?: Record<string, unknown>, context?: Context): State;
  get(): State | undefined;
  /** Removes the entity now (its device is gone); `set` brings it back. */
  remove(): void;
}

/**
 * Declares a plugin. Only returns its argument, so that TypeScript infers `ctx.config` from
 * the `config` schema.
 */
export function definePlugin<C extends z.ZodType = z.ZodObject<Record<string, never>>>(
  definition: PluginDefinition<C>,
): PluginDefinition<C> {
  return definition;
}

/**
 * A boolean plugin setting: `true`/`false` in JSON config, or `true|false|1|0` from an
 * environment variable (`PLUGIN_<ID>_<SETTING>`).
 */
export const configFlag = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);
