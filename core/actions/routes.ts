/** `GET /api/services`, `POST /api/services/{domain}/{service}`: Home Assistant's REST shapes. */
import { createRoute, z } from '@hono/zod-openapi';
import { createRouter, errors, json } from '../api/rest/index.js';
import { ROLES } from '../db/index.js';
import { StateSchema } from '../states/index.js';
import { servicesByDomain } from './describe.js';
import type { ActionRegistry } from './index.js';

const Services = z
  .array(z.object({ domain: z.string(), services: z.record(z.string(), z.unknown()) }))
  .openapi('ServiceDomains');
const CallResponse = z
  .object({ changed_states: z.array(StateSchema), service_response: z.unknown() })
  .openapi('ServiceResponse');

const ActionSchema = z
  .object({
    domain: z.string(),
    name: z.string(),
    description: z.string(),
    role: z.enum(ROLES).describe('Least role needed in the home the call touches'),
    target: z.object({ domain: z.string().optional() }).nullable().describe('Set for entity actions'),
    response: z.enum(['none', 'optional', 'only']),
    fields: z.record(z.string(), z.unknown()).describe('JSON Schema of the data'),
  })
  .openapi('Action');

const tags = ['Actions'];
const routes = {
  actions: createRoute({
    method: 'get',
    path: '/actions',
    tags,
    summary: 'Actions you can call, each with the JSON Schema of its data (for editors and tools)',
    responses: { 200: json(z.array(ActionSchema), 'Actions by name'), ...errors(401) },
  }),
  list: createRoute({
    method: 'get',
    path: '/services',
    tags,
    summary: 'Actions you can call, by domain, with their fields',
    responses: { 200: json(Services, 'Actions'), ...errors(401) },
  }),
  call: createRoute({
    method: 'post',
    path: '/services/{domain}/{service}',
    tags,
    summary: 'Call an action',
    description:
      'The body is the action data; `entity_id` in it targets entities. Answers the states the call changed, ' +
      'or with `?return_response` `{changed_states, service_response}`.',
    request: {
      params: z.object({ domain: z.string().max(100), service: z.string().max(100) }),
      query: z.object({ return_response: z.string().optional().describe('Present = return the response') }),
      body: { content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } }, required: false },
    },
    responses: {
      200: json(z.union([z.array(StateSchema), CallResponse]), 'Changed states, or them and the response'),
      ...errors(400, 401, 403, 404, 415),
    },
  }),
};

export function actionRoutes({ actions }: { actions: ActionRegistry }) {
  const router = createRouter();

  router.openapi(routes.actions, (c) => c.json(actions.list(c.var.principal), 200));

  router.openapi(routes.list, (c) => {
    const byDomain = servicesByDomain(actions.list(c.var.principal));
    return c.json(Object.entries(byDomain).map(([domain, services]) => ({ domain, services })), 200);
  });

  router.openapi(routes.call, async (c) => {
    const { domain, service } = c.req.valid('param');
    const returnResponse = c.req.valid('query').return_response !== undefined;
    const result = await actions.call(domain, service, c.req.valid('json'), { principal: c.var.principal, returnResponse });
    if (returnResponse) return c.json({ changed_states: result.changedStates, service_response: result.response }, 200);
    return c.json(result.changedStates, 200);
  });

  return router;
}
