/**
 * The plugin loader: discovers, orders, checks, configures, starts and stops plugins, and
 * owns what each one registers (see `core/plugin.ts` for the contract).
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { MiddlewareHandler } from 'hono';
import type { Kysely } from 'kysely';
import semver from 'semver';
import { z } from 'zod';
import type { ActionRegistry } from '../actions/index.js';
import { createRouter, type HubEnv, type HubRouter } from '../api/rest/index.js';
import { EVENT_TYPE, refuseReserved, type EventBus } from '../bus/index.js';
import { migrate, type Database } from '../db/index.js';
import { hubError } from '../errors/index.js';
import { requireHome } from '../homes/index.js';
import type { Logger } from '../log/index.js';
import type { EntityHandle, EntityRegistration, PluginContext, PluginDefinition } from '../plugin.js';
import type { MqttService } from '../mqtt/index.js';
import type { SecretBox } from '../secrets/index.js';
import type { PluginNodes } from '../nodered/plugin-nodes.js';
import { pluginGauge } from '../metrics/index.js';
import type { Registry } from 'prom-client';
import type { Scheduler } from '../scheduler/index.js';
import type { StateMachine } from '../states/index.js';
import { Scope, type StopReason } from './scope.js';

export { pluginRoutes } from './routes.js';

export type PluginStatus = 'running' | 'failed' | 'disabled' | 'stopped';

export interface PluginInfo {
  id: string;
  version: string;
  description: string;
  hub: string;
  depends_on: string[];
  status: PluginStatus;
  /** Why the plugin failed, or is disabled. */
  error: string | null;
}

/** The kernel services plugins are given. */
export interface Kernel {
  db: Kysely<Database>;
  bus: EventBus;
  states: StateMachine;
  actions: ActionRegistry;
  scheduler: Scheduler;
  mqtt: MqttService;
  secrets: SecretBox;
  /** The registry `/metrics` serves; plugins' gauges go here. */
  metrics: Registry;
  /** Node-RED node packages plugins add. */
  pluginNodes: PluginNodes;
  log: Logger;
  hubVersion: string;
  /** Source of `PLUGIN_<ID>_*` variables. */
  env: Record<string, string | undefined>;
  /** Plugins the deployment turned off (`HUB_DISABLED_PLUGINS`); admins cannot enable them. */
  disabledByConfig: ReadonlySet<string>;
}

/** A plugin module on disk, or an in-memory definition (tests, built-ins). */
export interface PluginSource {
  definition: PluginDefinition;
  /** The plugin's folder; its `sql/` holds its migrations. */
  dir?: string;
}

interface Loaded {
  source: PluginSource;
  status: PluginStatus;
  error: string | null;
  scope?: Scope;
  router?: HubRouter;
}

const SETUP_TIMEOUT_MS = 30_000;
const PLUGIN_ID = /^[a-z][a-z0-9_]*$/;

const definitionShape = z.object({
  id: z.string().regex(PLUGIN_ID, 'must match [a-z][a-z0-9_]*'),
  version: z.string().refine((v) => semver.valid(v) !== null, 'must be a semver version'),
  hub: z.string().refine((v) => semver.validRange(v) !== null, 'must be a semver range'),
  dependsOn: z.array(z.string()).optional(),
  reservedEvents: z.array(z.string().regex(EVENT_TYPE, 'must be event types (letters, digits, _ . : -, at most 64)')).optional(),
  setup: z.function(),
});

/** Imports `<dir>/<id>/index.ts` for every plugin folder; a module that does not load is reported, not thrown. */
export async function discoverPlugins(dir: string, log: Logger): Promise<PluginSource[]> {
  if (!existsSync(dir)) return [];
  const sources: PluginSource[] = [];
  for (const entry of (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const index = path.join(dir, entry.name, 'index.ts');
    if (!existsSync(index)) continue;
    try {
      const module = (await import(pathToFileURL(index).href)) as { default?: PluginDefinition };
      if (!module.default) throw new Error('index.ts has no default export; export default definePlugin({...})');
      sources.push({ definition: module.default, dir: path.join(dir, entry.name) });
    } catch (error) {
      log.error({ err: error, plugin: entry.name }, 'plugin module failed to load');
      sources.push({ definition: brokenModule(entry.name, error), dir: path.join(dir, entry.name) });
    }
  }
  return sources;
}

function brokenModule(id: string, error: unknown): PluginDefinition {
  return {
    id,
    version: '0.0.0',
    hub: '*',
    description: 'This plugin module could not be loaded',
    setup() {
      throw new Error(`The module did not load: ${error instanceof Error ? error.message : String(error)}`);
    },
  };
}

/** SNAKE_CASE → camelCase, for `PLUGIN_<ID>_<KEY>` variables. */
const camelCase = (key: string) => key.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

export class PluginManager {
  readonly #plugins = new Map<string, Loaded>();
  #order: string[] = [];
  /** Raised body limits of plugin routes, by `METHOD /api/plugins/<id>/path`. */
  readonly #bodyLimits = new Map<string, number>();

  constructor(private readonly kernel: Kernel) {}

  /** Loads the enabled plugins in dependency order. Failures are recorded, never thrown. */
  async startAll(sources: PluginSource[]): Promise<void> {
    for (const source of sources) {
      const id = source.definition?.id;
      if (this.#plugins.has(id)) {
        this.kernel.log.error({ plugin: id }, 'two plugins have the same id; the second is ignored');
        continue;
      }
      this.#plugins.set(id, { source, status: 'stopped', error: null });
    }
    this.#order = this.#dependencyOrder();
    for (const id of this.#order) this.#reserveEvents(this.#plugins.get(id)!);
    const settings = await this.kernel.db.selectFrom('plugin_settings').select(['plugin_id', 'enabled']).execute();
    const disabledInDb = new Set(settings.filter((s) => !s.enabled).map((s) => s.plugin_id));
    for (const id of this.#order) {
      const loaded = this.#plugins.get(id)!;
      if (loaded.status === 'failed') continue; // failed the ordering
      const notRunning = (loaded.source.definition.dependsOn ?? []).find((dep) => this.#plugins.get(dep)?.status !== 'running');
      if (this.kernel.disabledByConfig.has(id)) this.#mark(loaded, 'disabled', 'Disabled by HUB_DISABLED_PLUGINS');
      else if (disabledInDb.has(id)) this.#mark(loaded, 'disabled', 'Disabled by an administrator');
      else if (notRunning) this.#mark(loaded, 'failed', `Depends on "${notRunning}", which is not running`);
      else await this.#start(loaded);
    }
  }

  list(): PluginInfo[] {
    return this.#order.map((id) => this.#info(this.#plugins.get(id)!));
  }

  get(id: string): PluginInfo | undefined {
    const loaded = this.#plugins.get(id);
    return loaded && this.#info(loaded);
  }

  /** Starts a disabled or failed plugin and remembers that it is enabled. */
  async enable(id: string): Promise<PluginInfo> {
    const loaded = this.#require(id);
    if (this.kernel.disabledByConfig.has(id)) {
      throw hubError('HUB_ERR_PLUGIN_DEPENDENCY', `${id} is disabled by HUB_DISABLED_PLUGINS in the hub's configuration`);
    }
    const missing = (loaded.source.definition.dependsOn ?? []).filter((dep) => this.#plugins.get(dep)?.status !== 'running');
    if (missing.length > 0) throw hubError('HUB_ERR_PLUGIN_DEPENDENCY', `${id} needs ${missing.join(', ')} running first`);
    await this.#saveEnabled(id, true);
    if (loaded.status !== 'running') await this.#start(loaded);
    return this.#info(loaded);
  }

  /** Stops a plugin, removes everything it registered, and remembers that it is disabled. */
  async disable(id: string): Promise<PluginInfo> {
    const loaded = this.#require(id);
    const dependents = this.#order.filter(
      (other) => this.#plugins.get(other)!.status === 'running' && this.#plugins.get(other)!.source.definition.dependsOn?.includes(id),
    );
    if (dependents.length > 0) throw hubError('HUB_ERR_PLUGIN_DEPENDENCY', `${dependents.join(', ')} depend on ${id}; disable them first`);
    await this.#saveEnabled(id, false);
    await this.#stop(loaded, 'disable');
    this.#mark(loaded, 'disabled', 'Disabled by an administrator');
    return this.#info(loaded);
  }

  /** Stops every plugin, dependents first, keeping what must survive a restart. */
  async stopAll(): Promise<void> {
    for (const id of [...this.#order].reverse()) await this.#stop(this.#plugins.get(id)!, 'shutdown');
  }

  /** Sends `/api/plugins/<id>/*` to the running plugin's router; a stopped plugin answers 404. */
  dispatcher(): MiddlewareHandler<HubEnv> {
    return async (c) => {
      const loaded = this.#plugins.get(c.req.param('id') ?? '');
      if (!loaded?.router || loaded.status !== 'running') throw hubError('HUB_ERR_NOT_FOUND', `No plugin routes at ${c.req.path}`);
      return loaded.router.fetch(c.req.raw, { principal: c.var.principal, log: c.var.log, reqId: c.var.reqId });
    };
  }

  /** The body limit a plugin raised for this request's route, if any (see `ctx.bodyLimit`). */
  bodyLimit(method: string, path: string): number | undefined {
    return this.#bodyLimits.get(`${method.toUpperCase()} ${path}`);
  }

  #require(id: string): Loaded {
    const loaded = this.#plugins.get(id);
    if (!loaded) throw hubError('HUB_ERR_PLUGIN_NOT_FOUND', `No plugin ${id}`);
    return loaded;
  }

  async #saveEnabled(id: string, enabled: boolean): Promise<void> {
    await this.kernel.db
      .insertInto('plugin_settings')
      .values({ plugin_id: id, enabled })
      .onConflict((oc) => oc.column('plugin_id').doUpdateSet({ enabled, updated_at: new Date() }))
      .execute();
  }

  #info({ source, status, error }: Loaded): PluginInfo {
    const d = source.definition;
    return {
      id: d.id,
      version: d.version,
      description: d.description ?? '',
      hub: d.hub,
      depends_on: d.dependsOn ?? [],
      status,
      error,
    };
  }

  #mark(loaded: Loaded, status: PluginStatus, error: string | null): void {
    loaded.status = status;
    loaded.error = error;
  }

  /** Topological order by `dependsOn` (stable: by id among equals); marks cycles and unknown dependencies failed. */
  #dependencyOrder(): string[] {
    const order: string[] = [];
    const visiting = new Set<string>();
    const visit = (id: string, path: string[]): boolean => {
      const loaded = this.#plugins.get(id)!;
      if (order.includes(id)) return loaded.status !== 'failed';
      if (visiting.has(id)) {
        this.#mark(loaded, 'failed', `Circular dependency: ${[...path, id].join(' → ')}`);
        return false;
      }
      visiting.add(id);
      let ok = true;
      for (const dep of loaded.source.definition.dependsOn ?? []) {
        if (!this.#plugins.has(dep)) {
          this.#mark(loaded, 'failed', `Depends on "${dep}", which is not installed`);
          ok = false;
        } else if (!visit(dep, [...path, id])) {
          if (loaded.status !== 'failed') this.#mark(loaded, 'failed', `Depends on "${dep}", which cannot start`);
          ok = false;
        }
      }
      visiting.delete(id);
      if (!order.includes(id)) order.push(id);
      return ok;
    };
    for (const id of [...this.#plugins.keys()].sort()) visit(id, []);
    return order;
  }

  async #start(loaded: Loaded): Promise<void> {
    const { definition, dir } = loaded.source;
    const log = this.kernel.log.child({ plugin: definition.id });
    const scope = new Scope();
    loaded.scope = scope;
    try {
      this.#check(definition);
      if (dir && existsSync(path.join(dir, 'sql'))) {
        await migrate(this.kernel.db, [{ scope: definition.id, dir: path.join(dir, 'sql') }], log);
      }
      const config = await this.#config(definition);
      const { ctx, router } = this.#context(definition, config, scope, log);
      await withTimeout(Promise.resolve(definition.setup(ctx)), SETUP_TIMEOUT_MS, `setup did not finish within ${SETUP_TIMEOUT_MS / 1000} s`);
      loaded.router = router;
      this.#mark(loaded, 'running', null);
      log.info({ version: definition.version }, 'plugin started');
      this.kernel.bus.fire('plugin_loaded', { plugin: definition.id, version: definition.version });
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      await scope.dispose('failed', (e) => log.warn({ err: e }, 'cleanup after a failed setup failed'));
      loaded.router = undefined;
      this.#mark(loaded, 'failed', message);
      log.error({ err: error }, 'plugin failed to start');
      this.kernel.bus.fire('plugin_failed', { plugin: definition.id, error: message });
    }
  }

  async #stop(loaded: Loaded, reason: StopReason): Promise<void> {
    if (loaded.status !== 'running' || !loaded.scope) return;
    const id = loaded.source.definition.id;
    const log = this.kernel.log.child({ plugin: id });
    loaded.router = undefined;
    await loaded.scope.dispose(reason, (error) => log.warn({ err: error }, 'plugin cleanup step failed'));
    loaded.scope = undefined;
    this.#mark(loaded, 'stopped', null);
    log.info({ reason }, 'plugin stopped');
    if (reason !== 'shutdown') this.kernel.bus.fire('plugin_stopped', { plugin: id });
  }

  /**
   * Reserves the plugin's declared events for as long as it is installed (the whole process):
   * a disabled or failed plugin's events stay closed to everyone else. A clash is left for
   * {@link #check} to report when the plugin starts.
   */
  #reserveEvents({ source: { definition } }: Loaded): void {
    // A malformed list is #check's to report, with the rest of the definition.
    const types = definitionShape.shape.reservedEvents.safeParse(definition.reservedEvents);
    if (!types.success || !types.data) return;
    try {
      this.kernel.bus.reserve(`plugin:${definition.id}`, types.data);
    } catch {
      // #check names the holder when the plugin starts.
    }
  }

  #check(definition: PluginDefinition): void {
    const shape = definitionShape.safeParse(definition);
    if (!shape.success) {
      throw new Error(`Invalid plugin definition: ${shape.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ')}`);
    }
    const owner = `plugin:${definition.id}`;
    const heldByOther = definition.reservedEvents?.find((type) => this.kernel.bus.reservedBy(type) !== owner);
    if (heldByOther) throw new Error(`${heldByOther} is reserved by ${this.kernel.bus.reservedBy(heldByOther)}`);
    if (!semver.satisfies(this.kernel.hubVersion, definition.hub, { includePrerelease: true })) {
      throw new Error(
        `Needs hub ${definition.hub}, but this hub is ${this.kernel.hubVersion}; install a version of the plugin made for this hub`,
      );
    }
  }

  async #config(definition: PluginDefinition): Promise<unknown> {
    const stored = await this.kernel.db.selectFrom('plugin_settings').select('config').where('plugin_id', '=', definition.id).executeTakeFirst();
    const prefix = `PLUGIN_${definition.id.toUpperCase()}_`;
    const fromEnv = Object.fromEntries(
      Object.entries(this.kernel.env)
        .filter(([key, value]) => key.startsWith(prefix) && value !== undefined && value !== '')
        .map(([key, value]) => [camelCase(key.slice(prefix.length)), value]),
    );
    const input = { ...(stored?.config ?? {}), ...fromEnv };
    if (!definition.config) return input;
    const parsed = definition.config.safeParse(input);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${prefix}${String(i.path[0] ?? '').replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}: ${i.message}`);
      throw new Error(`Invalid configuration: ${problems.join('; ')}`);
    }
    return parsed.data;
  }

  #context(definition: PluginDefinition, config: unknown, scope: Scope, log: Logger): { ctx: PluginContext; router: HubRouter } {
    const { bus, states, actions, scheduler, db, mqtt, secrets, metrics, pluginNodes } = this.kernel;
    const owner = `plugin:${definition.id}`;
    const router = pluginRouter(definition.id);
    const ctx: PluginContext = {
      id: definition.id,
      config,
      log,
      db,
      routes: router,
      bodyLimit: (method, routePath, maxBytes) => {
        const key = `${method.toUpperCase()} /api/plugins/${definition.id}${routePath}`;
        this.#bodyLimits.set(key, maxBytes);
        scope.add(() => this.#bodyLimits.delete(key));
      },
      actions: {
        register: (action) => scope.add(actions.register(action)),
        call: async (domain, action, data, options = {}) => {
          // Ask for a response only where the action gives one (asking others is an error).
          const returnResponse = (actions.describe(domain, action)?.response ?? 'none') !== 'none';
          const result = await actions.call(domain, action, data, { principal: null, target: options.target, context: options.context, returnResponse });
          return { response: result.response, context: result.context };
        },
      },
      entities: {
        register: async (entity) => {
          await requireHome(db, entity.home_id);
          const handle = registerEntity(states, owner, entity);
          scope.add(() => states.remove(handle.entityId), { keepOnShutdown: true });
          return handle;
        },
      },
      states: {
        get: (entityId) => states.get(entityId),
        all: () => [...states.entries()].map((e) => e.state),
        homeOf: (entityId) => states.entry(entityId)?.homeId,
      },
      bus: {
        fire: (type, data, options) => {
          if ((bus.reservedBy(type) ?? owner) !== owner) refuseReserved(bus, type);
          return bus.fire(type, data, options);
        },
        on: (type, listener) => scope.add(bus.on(type, listener)),
        once: (type, listener) => scope.add(bus.once(type, listener)),
      },
      jobs: {
        schedule: async (name, schedule, run, options = {}) => {
          const unregister = await scheduler.register({ owner, name, schedule, homeId: options.homeId ?? null, run });
          scope.add(unregister, { keepOnShutdown: true });
        },
      },
      mqtt: {
        root: mqtt.root,
        publish: (topic, payload, options) => mqtt.publish(topic, payload, options),
        subscribe: async (filter, handler) => scope.add(await mqtt.subscribe(filter, handler)),
      },
      nodeRed: {
        nodes: (dir) => {
          const module = pluginNodes.add(dir);
          void pluginNodes.setEnabled(module, true);
          scope.add(() => pluginNodes.setEnabled(module, false));
        },
      },
      metrics: {
        gauge: (spec) => scope.add(pluginGauge(metrics, definition.id, spec, (error) => log.warn({ err: error, metric: spec.name }, 'plugin gauge failed'))),
      },
      secrets: {
        seal: (plaintext, context) => secrets.seal(plaintext, `plugin:${definition.id}:${context}`),
        open: (sealed, context) => secrets.open(sealed, `plugin:${definition.id}:${context}`),
      },
      onStop: (fn) => scope.add(fn),
    };
    return { ctx, router };
  }
}

function registerEntity(states: StateMachine, owner: string, entity: EntityRegistration): EntityHandle {
  const options = { homeId: entity.home_id, owner, deviceId: entity.device_id ?? null };
  const entityId =
    entity.unique_id === undefined ? entity.entity_id : states.claim({ ...options, uniqueId: entity.unique_id, preferredId: entity.entity_id });
  const existing = states.entry(entityId);
  if (existing && existing.owner !== owner) {
    throw hubError('HUB_ERR_ENTITY_OWNED', `${entityId} is managed by ${existing.owner}`);
  }
  // The plugin moves its own entity (a mower linked from another home): a state change never
  // moves one, so it leaves the old home and starts afresh in the new.
  if (existing && (existing.homeId !== options.homeId || existing.deviceId !== options.deviceId)) states.remove(entityId);
  if (!states.entry(entityId)) {
    states.set(entityId, entity.initial?.state ?? 'unknown', entity.initial?.attributes ?? {}, options);
  }
  return {
    entityId,
    set: (state, attributes = {}, context) => states.set(entityId, state, attributes, { ...options, context }),
    get: () => states.get(entityId),
    remove: () => {
      if (states.entry(entityId)?.owner === owner) states.remove(entityId);
    },
  };
}

/** A plugin's router, mounted under `/api/plugins/<id>`; it takes the caller from the dispatcher. */
function pluginRouter(id: string): HubRouter {
  const router = createRouter().basePath(`/api/plugins/${id}`) as HubRouter;
  router.use('*', async (c, next) => {
    const env = c.env as HubEnv['Variables'];
    c.set('principal', env.principal);
    c.set('log', env.log.child({ plugin: id }));
    c.set('reqId', env.reqId);
    await next();
  });
  // Errors and misses go back to the hub's app, which owns the one error shape.
  router.onError((error) => {
    throw error;
  });
  router.notFound((c) => {
    throw hubError('HUB_ERR_NOT_FOUND', `No route for ${c.req.method} ${c.req.path}`);
  });
  return router;
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
