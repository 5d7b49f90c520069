/** `GET /api/events`, `POST /api/events/{event_type}`: Home Assistant's REST shapes. */
import { createRoute, z } from '@hono/zod-openapi';
import { createRouter, errors, json } from '../api/rest/index.js';
import { requireHomeRole, resolveHome } from '../auth/index.js';
import { hubError } from '../errors/index.js';
import { createContext, type EventBus } from './index.js';

/** Events only the kernel fires: a client faking them would mislead every subscriber. */
const RESERVED = new Set([
  'state_changed',
  'call_service',
  'service_registered',
  'service_removed',
  'plugin_loaded',
  'plugin_failed',
  'plugin_stopped',
  'home_deleted',
  'hub_started',
  'hub_stop',
]);

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
      'there); members of one home may leave it out. Events for the whole hub are for administrators.',
    request: {
      params: z.object({ event_type: z.string().regex(/^[a-z0-9_.:-]{1,64}$/i, 'letters, digits, _ . : - (at most 64)') }),
      body: { content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } }, required: false },
    },
    responses: { 200: json(z.object({ message: z.string() }), 'Fired'), ...errors(400, 401, 403, 404, 415) },
  }),
};

export function eventRoutes({ bus }: { bus: EventBus }) {
  const router = createRouter();

  router.openapi(routes.list, (c) =>
    c.json(bus.eventTypes().map((event) => ({ event, listener_count: bus.listenerCount(event) })), 200),
  );

  router.openapi(routes.fire, (c) => {
    const principal = c.var.principal;
    const { event_type } = c.req.valid('param');
    if (RESERVED.has(event_type)) throw hubError('HUB_ERR_FORBIDDEN', `${event_type} is fired by the hub only`);
    const data = c.req.valid('json') ?? {};
    const named = typeof data.home_id === 'string' ? data.home_id : undefined;
    let homeId: string | null;
    if (principal.isAdmin && !named) {
      homeId = null; // a hub-wide event
    } else {
      homeId = resolveHome(principal, named);
      requireHomeRole(principal, homeId, 'owner');
    }
    bus.fire(event_type, data, { homeId, context: createContext({ user_id: principal.user.id }) });
    return c.json({ message: `Event ${event_type} fired.` }, 200);
  });

  return router;
}
