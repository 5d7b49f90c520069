/**
 * The plugin authors' example: one entity, one action, one job and one route. Read it with
 * `core/plugin.ts` (the contract) open beside it.
 */
import { z } from 'zod';
import { hubError } from '../../core/errors/index.js';
import { definePlugin, type EntityHandle } from '../../core/plugin.js';

export default definePlugin({
  id: 'demo',
  version: '1.0.0',
  hub: '^0.1.0',
  description: 'A counter to show how plugins work',
  // Read from PLUGIN_DEMO_HOME_ID and PLUGIN_DEMO_TICK_SECONDS (or the database).
  config: z.object({
    homeId: z.uuid().optional(),
    tickSeconds: z.coerce.number().int().min(1).default(60),
  }),

  async setup(ctx) {
    // The entity needs a home; without one configured the rest of the plugin still works.
    let counter: EntityHandle | undefined;
    if (ctx.config.homeId) {
      counter = await ctx.entities.register({
        entity_id: 'counter.demo',
        home_id: ctx.config.homeId,
        initial: { state: '0', attributes: { friendly_name: 'Demo counter', step: 1 } },
      });
    } else {
      ctx.log.info('set PLUGIN_DEMO_HOME_ID to give the demo counter a home');
    }

    const increment = (by: number, context?: Parameters<EntityHandle['set']>[2]) => {
      if (!counter) return undefined;
      const value = Number(counter.get()?.state ?? 0) + by;
      counter.set(String(value), { friendly_name: 'Demo counter', step: by }, context);
      return value;
    };

    ctx.actions.register({
      domain: 'demo',
      name: 'increment',
      description: 'Add to the demo counter',
      role: 'technician',
      target: { domain: 'counter' },
      response: 'optional',
      schema: z.object({
        entity_id: z.union([z.string(), z.array(z.string())]).optional(),
        by: z.number().int().min(1).max(100).default(1).describe('How much to add').meta({ examples: [5] }),
      }),
      // Act only on the entities the hub checked the caller may touch.
      handler: ({ data, context, entityIds }) => {
        if (!counter || !entityIds.includes(counter.entityId)) {
          throw hubError('HUB_ERR_VALIDATION', 'demo.increment acts on counter.demo only');
        }
        return { value: increment(data.by, context) };
      },
    });

    await ctx.jobs.schedule('tick', { everyMs: ctx.config.tickSeconds * 1000 }, () => {
      increment(1);
    });

    ctx.routes.get('/hello', (c) => c.json({ hello: c.var.principal.user.name || c.var.principal.user.email, counter: counter?.get()?.state ?? null }));
  },
});
