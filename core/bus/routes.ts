/** `GET /api/events`, `POST /api/events/{event_type}`: Home Assistant's REST shapes. */
import { createRoute, z } from '@hono/zod-openapi';
import { createRouter, errors, json } from '../api/rest/index.js';
import { requireHomeRole, resolveHome, type Principal } from '../auth/index.js';
import { hubError } from '../errors/index.js';
import { createContext, KERNEL, type EventBus, type HubEvent } from './index.js';

/** Event types clients may fire: letters, digits and `_ . : -`. */
export const EVENT_TYPE = /^[a-z0-9_.:-]{1,64}$/i;

const tags = ['Events'];
const routes = {
  list: createRoute({
    method: 'get',
    path: '/events',
    tags,
    summary: 'Event types with listeners, and how many',
    responses: {
      200: json(z.array(z.object({ event: z.string(), listener_count: z.number() })), 'Event types'),
      ...errors(401),
    },
  }),
  fire: createRoute({
    method: 'post',
    path: '/events/{event_type}',
    tags,
    summary: 'Fire an event',
    description:
      'The body is the event data. `home_id` in it scopes the event to that home (you need the owner role ' +
      'there); members of one home may leave it out. Events for the whole hub are for administrators. ' +
      'Event types the hub or a plugin fires (state_changed, mowing_session_ended, …) are refused with 403.',
    request: {
      params: z.object({ event_type: z.string().regex(EVENT_TYPE, 'letters, digits, _ . : - (at most 64)') }),
      body: { content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } }, required: false },
    },
    responses: { 200: json(z.object({ message: z.string() }), 'Fired'), ...errors(400, 401, 403, 404, 415) },
  }),
};

/**
 * Refuses (HUB_ERR_FORBIDDEN, 403) an event type that the kernel or a plugin reserved: what
 * callers and flows fire must never pass for a state change, a mowing session or a billed yard.
 */
export function refuseReserved(bus: EventBus, eventType: string): void {
  const owner = bus.reservedBy(eventType);
  if (owner === undefined) return;
  throw hubError('HUB_ERR_FORBIDDEN', owner === KERNEL ? `${eventType} is fired by the hub only` : `${eventType} is fired by the ${owner.replace(/^plugin:/, '')} plugin only`);
}

/**
 * Fires an event for a caller (REST and WebSocket alike). `home_id` in the data scopes it to
 * that home, where the caller needs the owner role; members of one home may leave it out;
 * hub-wide events are for administrators. Reserved event types (the kernel's, and those a
 * plugin declares in `reservedEvents`) are refused.
 */
export function fireAsCaller(bus: EventBus, principal: Principal, eventType: string, data: Record<string, unknown>): HubEvent {
  refuseReserved(bus, eventType);
  const named = typeof data.home_id === 'string' ? data.home_id : undefined;
  const homeId = principal.isAdmin && !named ? null : resolveHome(principal, named);
  if (homeId) requireHomeRole(principal, homeId, 'owner');
  return bus.fire(eventType, data, { homeId, context: createContext({ user_id: principal.user.id }) });
}

export function eventRoutes({ bus }: { bus: EventBus }) {
  const router = createRouter();

  router.openapi(routes.list, (c) =>
    c.json(bus.eventTypes().map((event) => ({ event, listener_count: bus.listenerCount(event) })), 200),
  );

  router.openapi(routes.fire, (c) => {
    const { event_type } = c.req.valid('param');
    fireAsCaller(bus, c.var.principal, event_type, c.req.valid('json') ?? {});
    return c.json({ message: `Event ${event_type} fired.` }, 200);
  });

  return router;
}
