/**
 * What the hub's Node-RED nodes use in "this hub" mode: the kernel's states, events, actions and
 * history, handed to Node-RED as the `hub` setting (`RED.settings.hub` in a node's runtime file).
 * Flows act as the hub itself: whoever may deploy flows may act on every home.
 *
 * @module
 */
import type { Kysely } from 'kysely';
import type { ActionDescription, ActionRegistry } from '../actions/index.js';
import { refuseReserved, type EventBus, type HubEvent } from '../bus/index.js';
import type { Database } from '../db/index.js';
import { historyPeriod, type StateMachine, type State } from '../states/index.js';

export interface StateChange {
  entity_id: string;
  old_state: State | null;
  new_state: State | null;
}

export interface HubBridge {
  /** Resolves once the hub's states are loaded: nodes send nothing before. */
  readonly ready: Promise<void>;
  state(entityId: string): State | undefined;
  states(): State[];
  /** Every state change; returns the function that stops listening. */
  onStateChanged(listener: (change: StateChange) => void): () => void;
  /** Events of one type, or `*` for all; returns the function that stops listening. */
  onEvent(eventType: string, listener: (event: HubEvent) => void): () => void;
  /**
   * Fires an event as the hub. Throws HUB_ERR_FORBIDDEN for reserved types (the kernel's, and
   * those a plugin reserved): flows are deployed by users with `can_automate`, not only admins.
   */
  fireEvent(eventType: string, data: Record<string, unknown>, homeId?: string): void;
  /** Calls `domain.action`; rejects with the hub's coded error when the data or target is wrong. */
  callAction(domain: string, action: string, data: Record<string, unknown>, target?: { entity_id?: string | string[] }): Promise<{ response: unknown }>;
  /** The actions with their JSON Schemas (for the editor's pickers and validation). */
  actions(): ActionDescription[];
  /** States over a period, Home Assistant's history shape (one list per entity). */
  history(entityIds: string[], start: Date, end: Date): Promise<unknown[][]>;
}

export function createBridge(kernel: { db: Kysely<Database>; bus: EventBus; states: StateMachine; actions: ActionRegistry }): HubBridge {
  const { db, bus, states, actions } = kernel;
  return {
    ready: Promise.resolve(),
    state: (entityId) => states.get(entityId),
    states: () => [...states.entries()].map((entry) => entry.state),
    onStateChanged: (listener) => bus.on('state_changed', (event) => listener(event.data as StateChange)),
    onEvent: (eventType, listener) => bus.on(eventType, listener as (event: HubEvent) => void),
    fireEvent(eventType, data, homeId) {
      refuseReserved(bus, eventType);
      bus.fire(eventType, data, homeId ? { homeId } : {});
    },
    async callAction(domain, action, data, target) {
      // Ask for a response only where the action gives one (asking others is an error).
      const returnResponse = (actions.describe(domain, action)?.response ?? 'none') !== 'none';
      const result = await actions.call(domain, action, data, { principal: null, target, returnResponse });
      return { response: result.response ?? null };
    },
    actions: () => actions.list(null),
    history: (entityIds, start, end) => historyPeriod(db, null, { entityIds, start, end, minimalResponse: false, noAttributes: false, significantChangesOnly: false }),
  };
}
