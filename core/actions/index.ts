/**
 * Actions (Home Assistant's "services"): `domain.action`, with a zod schema for its data,
 * the role it needs and a handler. REST, WebSocket, Node-RED, the scheduler and the UI all
 * call actions through {@link ActionRegistry.call}, so validation and access rules are one.
 *
 * @module
 */
import { z } from 'zod';
import { homeRole, requireHomeRole, roleAtLeast, type Principal, type PublicUser } from '../auth/index.js';
import { createContext, type Context, type EventBus, type HubEvent } from '../bus/index.js';
import type { Role } from '../db/index.js';
import { hubError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { State, StateMachine } from '../states/index.js';

/** What a handler receives. */
export interface ActionCall<D> {
  domain: string;
  action: string;
  /** The validated data. */
  data: D;
  context: Context;
  /** Who called; null when the hub itself did (a job, an automation). */
  user: PublicUser | null;
  /**
   * For entity actions: the targeted entities (from `target` and `data.entity_id`), each
   * checked for access. Act on these, never on ids of your own choosing.
   */
  entityIds: string[];
  /** For home actions: the `home_id` from the data, checked for access. */
  homeId: string | null;
  log: Logger;
}

export interface ActionDefinition<S extends z.ZodType = z.ZodType> {
  domain: string;
  name: string;
  description?: string;
  /** Validates the call's data; its JSON Schema documents the action everywhere. */
  schema: S;
  /** The least role, in every home the call touches, that may call it. */
  role: Role;
  /**
   * Entity actions name their targets (`target.entity_id`, or `entity_id` in the data);
   * `domain` restricts them to one entity domain. Without `target`, an action belongs to
   * the home given as `home_id` in its data, or, without one, to hub administrators only.
   */
  target?: { domain?: string };
  /** Whether the handler's return value is the action's response (`return_response`). */
  response?: 'none' | 'optional' | 'only';
  handler(call: ActionCall<z.output<S>>): unknown;
}

export interface CallOptions {
  /** Null: the hub itself calls, with every right. */
  principal: Principal | null;
  context?: Context;
  target?: { entity_id?: string | string[] };
  returnResponse?: boolean;
}

export interface CallResult {
  context: Context;
  response: unknown;
  /** States changed under this call's context while it ran (Home Assistant's REST answer). */
  changedStates: State[];
}

/** An action as listed for docs, the UI and Node-RED. */
export interface ActionDescription {
  domain: string;
  name: string;
  description: string;
  role: Role;
  target: { domain?: string } | null;
  response: 'none' | 'optional' | 'only';
  /** JSON Schema of the data. */
  fields: Record<string, unknown>;
}

export { actionRoutes } from './routes.js';
export { servicesByDomain, type ServiceDescription } from './describe.js';

const toArray = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export class ActionRegistry {
  readonly #actions = new Map<string, ActionDefinition>();
  /** Descriptions by definition: a schema's JSON Schema is built once, not per listing. */
  readonly #descriptions = new WeakMap<ActionDefinition, ActionDescription>();

  constructor(
    private readonly bus: EventBus,
    private readonly states: StateMachine,
    private readonly log: Logger,
  ) {}

  /** Registers an action; returns the function that removes it. */
  register<S extends z.ZodType>(definition: ActionDefinition<S>): () => void {
    const key = `${definition.domain}.${definition.name}`;
    if (!/^[a-z0-9_]+\.[a-z0-9_]+$/.test(key)) throw new Error(`Invalid action name "${key}"; use domain.action in a-z, 0-9 and _`);
    if (this.#actions.has(key)) throw new Error(`The action ${key} is already registered`);
    this.#actions.set(key, definition as unknown as ActionDefinition);
    this.bus.fire('service_registered', { domain: definition.domain, service: definition.name });
    return () => {
      if (this.#actions.get(key) !== (definition as unknown)) return;
      this.#actions.delete(key);
      this.bus.fire('service_removed', { domain: definition.domain, service: definition.name });
    };
  }

  has(domain: string, action: string): boolean {
    return this.#actions.has(`${domain}.${action}`);
  }

  /** Every action the caller could call somewhere, sorted by name. */
  list(principal: Principal | null): ActionDescription[] {
    return [...this.#actions.values()]
      .filter((d) => principal === null || this.#couldCall(principal, d))
      .sort((a, b) => `${a.domain}.${a.name}`.localeCompare(`${b.domain}.${b.name}`))
      .map((d) => this.#describe(d));
  }

  /** One action's description, or undefined when there is no such action. */
  describe(domain: string, action: string): ActionDescription | undefined {
    const definition = this.#actions.get(`${domain}.${action}`);
    return definition && this.#describe(definition);
  }

  #describe(d: ActionDefinition): ActionDescription {
    let description = this.#descriptions.get(d);
    if (!description) {
      description = {
        domain: d.domain,
        name: d.name,
        description: d.description ?? '',
        role: d.role,
        target: d.target ?? null,
        response: d.response ?? 'none',
        fields: z.toJSONSchema(d.schema, { io: 'input', unrepresentable: 'any' }),
      };
      this.#descriptions.set(d, description);
    }
    return description;
  }

  /**
   * Validates and runs an action.
   *
   * @throws HUB_ERR_ACTION_NOT_FOUND, HUB_ERR_VALIDATION (bad data or target),
   *   HUB_ERR_ENTITY_NOT_FOUND / HUB_ERR_HOME_NOT_FOUND (not visible), HUB_ERR_FORBIDDEN,
   *   HUB_ERR_NO_RESPONSE, or whatever HubError the handler throws.
   */
  async call(domain: string, action: string, data: unknown, options: CallOptions): Promise<CallResult> {
    const definition = this.#actions.get(`${domain}.${action}`);
    if (!definition) throw hubError('HUB_ERR_ACTION_NOT_FOUND', `No action ${domain}.${action}`);
    const response = definition.response ?? 'none';
    if (options.returnResponse && response === 'none') throw hubError('HUB_ERR_NO_RESPONSE');

    const parsed = definition.schema.safeParse(data ?? {});
    if (!parsed.success) {
      const details = parsed.error.issues.map(({ path, message, code }) => ({ path, message, code }));
      throw hubError('HUB_ERR_VALIDATION', `Invalid data for ${domain}.${action}`, { details });
    }
    const principal = options.principal;
    const { entityIds, homeId, eventHome } = this.#authorize(definition, parsed.data, options);
    const context = options.context ?? createContext({ user_id: principal?.user.id ?? null });

    this.bus.fire(
      'call_service',
      { domain, service: action, service_data: (parsed.data ?? {}) as Record<string, unknown> },
      { context, homeId: eventHome },
    );
    const changedStates: State[] = [];
    const stopCollecting = this.bus.on('state_changed', (event: HubEvent<{ new_state: State | null }>) => {
      if (event.context.id === context.id && event.data.new_state) changedStates.push(event.data.new_state);
    });
    try {
      const result = await definition.handler({
        domain,
        action,
        data: parsed.data,
        context,
        user: principal?.user ?? null,
        entityIds,
        homeId,
        log: this.log.child({ action: `${domain}.${action}`, contextId: context.id }),
      });
      return { context, response: result ?? null, changedStates };
    } finally {
      stopCollecting();
    }
  }

  #authorize(definition: ActionDefinition, data: unknown, options: CallOptions) {
    const principal = options.principal;
    if (definition.target) {
      // Targets may come in `target` and in the data; every one of them is checked.
      const fromData = (data as { entity_id?: string | string[] } | undefined)?.entity_id;
      const entityIds = [...new Set([...toArray(options.target?.entity_id), ...toArray(fromData)])];
      if (entityIds.length === 0) throw hubError('HUB_ERR_VALIDATION', 'This action needs target.entity_id');
      const homes = new Set<string>();
      for (const entityId of entityIds) {
        const entry = this.states.entry(entityId);
        if (!entry || (principal && !homeRole(principal, entry.homeId))) {
          throw hubError('HUB_ERR_ENTITY_NOT_FOUND', `Entity ${entityId} not found`);
        }
        if (definition.target.domain && !entityId.startsWith(`${definition.target.domain}.`)) {
          throw hubError('HUB_ERR_VALIDATION', `${definition.domain}.${definition.name} acts on ${definition.target.domain} entities, not ${entityId}`);
        }
        if (principal) requireHomeRole(principal, entry.homeId, definition.role);
        homes.add(entry.homeId);
      }
      return { entityIds, homeId: null, eventHome: homes.size === 1 ? [...homes][0]! : null };
    }
    const homeId = (data as { home_id?: unknown } | undefined)?.home_id;
    if (typeof homeId === 'string') {
      if (principal) requireHomeRole(principal, homeId, definition.role);
      return { entityIds: [], homeId, eventHome: homeId };
    }
    if (principal && !principal.isAdmin) {
      throw hubError('HUB_ERR_FORBIDDEN', `${definition.domain}.${definition.name} without a home_id is for hub administrators`);
    }
    return { entityIds: [], homeId: null, eventHome: null };
  }

  #couldCall(principal: Principal, definition: ActionDefinition): boolean {
    if (principal.isAdmin) return true;
    return [...principal.homes.values()].some((role) => roleAtLeast(role, definition.role));
  }
}
