/** `GET /api/plugins`, `POST /api/plugins/{id}/enable|disable`. */
import { createRoute, z } from '@hono/zod-openapi';
import { createRouter, errors, json } from '../api/rest/index.js';
import { requireAdmin } from '../auth/index.js';
import { hubError } from '../errors/index.js';
import type { PluginManager } from './index.js';

const PluginSchema = z
  .object({
    id: z.string(),
    version: z.string(),
    description: z.string(),
    hub: z.string().describe('Hub versions the plugin supports (semver range)'),
    depends_on: z.array(z.string()),
    status: z.enum(['running', 'failed', 'disabled', 'stopped']),
    error: z.string().nullable().describe('Why it failed or is disabled'),
  })
  .openapi('Plugin');

const Params = z.object({ id: z.string().max(100) });
const tags = ['Plugins'];
const toggle = (verb: 'enable' | 'disable') =>
  createRoute({
    method: 'post',
    path: `/plugins/{id}/${verb}`,
    tags,
    summary: verb === 'enable' ? 'Start a plugin and keep it enabled (admin)' : 'Stop a plugin, remove all it registered, keep it disabled (admin)',
    request: { params: Params },
    responses: { 200: json(PluginSchema, 'The plugin now'), ...errors(401, 403, 404, 409) },
  });

const routes = {
  list: createRoute({
    method: 'get',
    path: '/plugins',
    tags,
    summary: 'Installed plugins, in load order, with their status',
    responses: { 200: json(z.array(PluginSchema), 'Plugins'), ...errors(401) },
  }),
  enable: toggle('enable'),
  disable: toggle('disable'),
};

export function pluginRoutes({ plugins }: { plugins: PluginManager }) {
  const router = createRouter();
  router.openapi(routes.list, (c) => c.json(plugins.list(), 200));
  for (const verb of ['enable', 'disable'] as const) {
    router.openapi(routes[verb], async (c) => {
      requireAdmin(c.var.principal);
      const { id } = c.req.valid('param');
      if (!plugins.get(id)) throw hubError('HUB_ERR_PLUGIN_NOT_FOUND', `No plugin ${id}`);
      const info = await plugins[verb](id);
      c.var.log.info({ plugin: id, status: info.status }, `plugin ${verb}d by an administrator`);
      return c.json(info, 200);
    });
  }
  return router;
}
