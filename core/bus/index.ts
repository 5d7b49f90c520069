/**
 * The event bus. Every event has Home Assistant's fields (`event_type`, `data`, `origin`,
 * `time_fired`, `context`) plus `home_id`: the home it belongs to, or null for hub-wide
 * events. Subscribers outside the kernel see only their homes' events (see {@link canSee}).
 *
 * @module
 */
import type { Logger } from '../log/index.js';
import { createContext, type Context } from './context.js';
import type { CoreEvents } from './events.js';

export { createContext, ulid, type Context } from './context.js';
export type { CoreEvents, StateChangedData } from './events.js';
export { EVENT_TYPE, eventRoutes, fireAsCaller, refuseReserved } from './routes.js';

export interface HubEvent<D = Record<string, unknown>> {
  event_type: string;
  data: D;
  /** `LOCAL` when fired on this instance, `REMOTE` when relayed from another. */
  origin: 'LOCAL' | 'REMOTE';
  time_fired: string;
  context: Context;
  /** The home the event belongs to; null for hub-wide events. */
  home_id: string | null;
}

/** The data of an event type: typed for the core's events, a JSON object for any other. */
export type EventData<T extends string> = T extends keyof CoreEvents ? CoreEvents[T] : Record<string, unknown>;

export type Listener<T extends string = string> = (event: HubEvent<EventData<T>>) => void | Promise<void>;

/** `'*'` listens to every event type. */
export const ALL_EVENTS = '*';

/**
 * Carries events between hub instances (implemented by the scale-out work). `publish` gets
 * every local event; `subscribe` delivers other instances' events, which are fired here as
 * `REMOTE` and never published again.
 */
export interface EventRelay {
  publish(event: HubEvent): void;
  subscribe(deliver: (event: HubEvent) => void): () => void;
}

export interface FireOptions {
  context?: Context;
  homeId?: string | null;
}

/** Who reserved the kernel's own event types (see {@link EventBus.reservedBy}). */
export const KERNEL = 'hub';

/** Events only the kernel fires: a client faking them would mislead every subscriber. */
const KERNEL_EVENTS: readonly (keyof CoreEvents)[] = [
  'state_changed',
  'call_service',
  'service_registered',
  'service_removed',
  'plugin_loaded',
  'plugin_failed',
  'plugin_stopped',
  'home_created',
  'home_updated',
  'home_deleted',
  'alert_raised',
  'alert_acknowledged',
  'alert_resolved',
  'hub_started',
  'hub_stop',
];

export class EventBus {
  readonly #listeners = new Map<string, Set<Listener>>();
  /** Event type → who alone may fire it: {@link KERNEL}, or `plugin:<id>`. */
  readonly #reserved = new Map<string, string>(KERNEL_EVENTS.map((type) => [type, KERNEL]));
  #relay: { relay: EventRelay; unsubscribe: () => void } | undefined;

  constructor(private readonly log: Logger) {}

  /** Fires an event to every listener of its type and of `'*'`; returns the event. */
  fire<T extends string>(eventType: T, data: EventData<T>, options: FireOptions = {}): HubEvent<EventData<T>> {
    const event: HubEvent<EventData<T>> = {
      event_type: eventType,
      data,
      origin: 'LOCAL',
      time_fired: new Date().toISOString(),
      context: options.context ?? createContext(),
      home_id: options.homeId ?? null,
    };
    this.#dispatch(event as HubEvent);
    this.#relay?.relay.publish(event as HubEvent);
    return event;
  }

  /**
   * Listens to one event type, or to all with `'*'`. A listener that throws (or rejects) is
   * logged and does not keep the event from the others.
   *
   * @returns a function that removes the listener.
   */
  on<T extends string>(eventType: T, listener: Listener<T>): () => void {
    let set = this.#listeners.get(eventType);
    if (!set) this.#listeners.set(eventType, (set = new Set()));
    set.add(listener as Listener);
    return () => this.off(eventType, listener);
  }

  /** Like {@link on}, for the next event only. */
  once<T extends string>(eventType: T, listener: Listener<T>): () => void {
    const off = this.on(eventType, (event) => {
      off();
      return listener(event);
    });
    return off;
  }

  off<T extends string>(eventType: T, listener: Listener<T>): void {
    const set = this.#listeners.get(eventType);
    set?.delete(listener as Listener);
    if (set?.size === 0) this.#listeners.delete(eventType);
  }

  /**
   * Reserves event types for `owner`: from now on callers (REST, WebSocket) and flows
   * (Node-RED) may not fire them, and neither may other plugins (see a plugin's
   * `reservedEvents`). Reservations are never released: the loader makes them for every
   * installed plugin, running or not. The bus's own {@link fire} stays open: it is the
   * kernel's and the owner's way to fire them.
   *
   * @throws when another owner holds one of the types; nothing is reserved then.
   */
  reserve(owner: string, eventTypes: readonly string[]): void {
    const taken = eventTypes.find((type) => (this.#reserved.get(type) ?? owner) !== owner);
    if (taken) throw new Error(`${taken} is reserved by ${this.#reserved.get(taken)}`);
    for (const type of eventTypes) this.#reserved.set(type, owner);
  }

  /** Who alone may fire `eventType` ({@link KERNEL} or `plugin:<id>`), or undefined when anyone may. */
  reservedBy(eventType: string): string | undefined {
    return this.#reserved.get(eventType);
  }

  /** Event types that have listeners (not counting `'*'`), sorted. */
  eventTypes(): string[] {
    return [...this.#listeners.keys()].filter((t) => t !== ALL_EVENTS).sort();
  }

  /** Number of listeners of a type (`'*'` counts the wildcard ones); for diagnostics. */
  listenerCount(eventType: string): number {
    return this.#listeners.get(eventType)?.size ?? 0;
  }

  /** Connects the bus to other hub instances; replaces any earlier relay. */
  setRelay(relay: EventRelay | undefined): void {
    this.#relay?.unsubscribe();
    this.#relay = relay && {
      relay,
      unsubscribe: relay.subscribe((event) => this.#dispatch({ ...event, origin: 'REMOTE' })),
    };
  }

  #dispatch(event: HubEvent): void {
    for (const type of [event.event_type, ALL_EVENTS]) {
      const set = this.#listeners.get(type);
      if (!set) continue;
      for (const listener of [...set]) {
        try {
          const result = listener(event);
          if (result instanceof Promise) result.catch((error: unknown) => this.#listenerFailed(event, error));
        } catch (error) {
          this.#listenerFailed(event, error);
        }
      }
    }
  }

  #listenerFailed(event: HubEvent, error: unknown): void {
    this.log.error({ err: error, eventType: event.event_type }, 'event listener failed');
  }
}

/**
 * Hub-wide events every signed-in caller may see. Other events without a home (an admin's
 * action, a call touching several homes) are for administrators only.
 */
const PUBLIC_HUB_EVENTS = new Set(['hub_started', 'hub_stop', 'service_registered', 'service_removed', 'plugin_loaded', 'plugin_failed', 'plugin_stopped']);

/** Whether a caller who can see `homes` (or everything, as admin) may see this event. */
export function canSee(
  event: Pick<HubEvent, 'home_id' | 'event_type'>,
  viewer: { isAdmin: boolean; homes: ReadonlyMap<string, unknown> },
): boolean {
  if (viewer.isAdmin) return true;
  return event.home_id === null ? PUBLIC_HUB_EVENTS.has(event.event_type) : viewer.homes.has(event.home_id);
}
