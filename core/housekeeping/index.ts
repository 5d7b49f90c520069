/**
 * The kernel's own upkeep, written as a plugin on the same contract every plugin uses:
 * expired sessions are deleted hourly, readings are rolled up every minute, and state history
 * and readings past their retention are deleted daily.
 *
 * @module
 */
import { z } from 'zod';
import { deleteExpiredSessions } from '../auth/index.js';
import { definePlugin } from '../plugin.js';
import { purgeHistory } from '../states/index.js';
import { applyRetention, rollUpReadings } from '../telemetry/index.js';

export const housekeeping = definePlugin({
  id: 'housekeeping',
  version: '1.0.0',
  hub: '*',
  description: 'Deletes expired sessions and state history past its retention',
  config: z.object({
    /** `PLUGIN_HOUSEKEEPING_HISTORY_DAYS`: days of state history to keep. */
    historyDays: z.coerce.number().int().min(1).max(3650).default(10),
    /** `PLUGIN_HOUSEKEEPING_RAW_DAYS`, `…_MINUTE_DAYS`, `…_HOUR_DAYS`: retention of readings per resolution. */
    rawDays: z.coerce.number().int().min(1).max(3650).default(7),
    minuteDays: z.coerce.number().int().min(1).max(3650).default(30),
    hourDays: z.coerce.number().int().min(1).max(36500).default(365),
  }),
  async setup(ctx) {
    await ctx.jobs.schedule('expired_sessions', { cron: '17 * * * *' }, async ({ log }) => {
      log.info({ deleted: await deleteExpiredSessions(ctx.db) }, 'expired sessions deleted');
    });
    await ctx.jobs.schedule('purge_history', { cron: '30 3 * * *' }, async ({ log }) => {
      log.info({ deleted: await purgeHistory(ctx.db, ctx.config.historyDays) }, 'old state history purged');
    });
    await ctx.jobs.schedule('roll_up_readings', { cron: '* * * * *' }, async ({ log }) => {
      log.debug(await rollUpReadings(ctx.db), 'readings rolled up');
    });
    await ctx.jobs.schedule('readings_retention', { cron: '45 3 * * *' }, async ({ log }) => {
      log.info({ deleted: await applyRetention(ctx.db, ctx.config) }, 'old readings deleted');
    });
    ctx.actions.register({
      domain: 'hub',
      name: 'purge_history',
      description: 'Delete state history older than keep_days now (hub administrators)',
      role: 'admin',
      response: 'optional',
      schema: z.object({ keep_days: z.number().int().min(0).max(3650).default(ctx.config.historyDays).describe('Days of history to keep') }),
      handler: async ({ data }) => ({ deleted: await purgeHistory(ctx.db, data.keep_days) }),
    });
  },
});
