/**
 * A stand-in for the Mammotion plugin, for cluster tests that drive the walk themselves: it
 * registers `mammotion.start_zones` and `lawn_mower.dock` (refusing entities that are not its
 * mowers, as Mammotion does), reserves `mowing_session_ended`, and ends sessions as Mammotion
 * would: a row in `mammotion_sessions` (Mammotion's own migrations create the table, so the
 * columns the cluster plugin reads are checked against the real schema), then the event.
 */
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { hubError } from '../../../core/errors/index.js';
import { definePlugin, type PluginContext } from '../../../core/plugin.js';
import type { PluginSource } from '../../../core/plugins/index.js';
import type { MammotionTables } from '../../../plugins/mammotion/tables.js';

const MAMMOTION_DIR = fileURLToPath(new URL('../../../plugins/mammotion', import.meta.url));

export interface SessionOptions {
  area: number;
  outcome?: 'finished' | 'interrupted';
  /** Default: the zones of the last start. */
  zones?: string[];
  /** Default: a second ago. */
  startedAt?: Date;
  /** What the event says, when it should differ from what is stored (a forged area). */
  eventArea?: number;
  /** Store nothing: only the event is fired. */
  unstored?: boolean;
}

export function standInMower(entityId = 'lawn_mower.fake') {
  /** Every start, in call order. */
  const starts: string[][] = [];
  /** What the mower did, in the order it finished doing it. */
  const effects: string[] = [];
  let gate: Promise<void> | undefined;
  let entered: (() => void) | undefined;
  let context: PluginContext<unknown> | undefined;
  const targets = z.union([z.string(), z.array(z.string())]).optional();
  const mine = (ids: string[]) => {
    for (const id of ids) if (id !== entityId) throw hubError('HUB_ERR_ENTITY_NOT_FOUND', `${id} is not a Mammotion mower`);
  };

  const definition = definePlugin({
    id: 'standin',
    version: '1.0.0',
    hub: '*',
    reservedEvents: ['mowing_session_ended'],
    setup(ctx) {
      context = ctx;
      ctx.actions.register({
        domain: 'mammotion',
        name: 'start_zones',
        role: 'technician',
        target: { domain: 'lawn_mower' },
        schema: z.object({ entity_id: targets, zones: z.array(z.string()).min(1) }),
        handler: async ({ data, entityIds }) => {
          mine(entityIds);
          starts.push(data.zones);
          entered?.();
          await gate;
          effects.push(`start:${data.zones.join(',')}`);
        },
      });
      ctx.actions.register({
        domain: 'lawn_mower',
        name: 'dock',
        role: 'technician',
        target: { domain: 'lawn_mower' },
        schema: z.object({ entity_id: targets }),
        handler: ({ entityIds }) => {
          mine(entityIds);
          effects.push('dock');
        },
      });
    },
  });

  return {
    /** Mammotion's migrations give the stand-in the real `mammotion_sessions`. */
    source: { definition, dir: MAMMOTION_DIR } satisfies PluginSource,
    entityId,
    starts,
    effects,
    addMower: (homeId: string) => context!.entities.register({ entity_id: entityId, home_id: homeId, initial: { state: 'docked' } }),
    /** Holds the next starts until the returned `release` is called; `entered` resolves when one is waiting. */
    hold() {
      let release!: () => void;
      gate = new Promise<void>((resolve) => (release = resolve));
      const waiting = new Promise<void>((resolve) => (entered = resolve));
      return {
        entered: waiting,
        release: () => {
          gate = undefined;
          entered = undefined;
          release();
        },
      };
    },
    /** Ends a session as Mammotion does: stores it, then fires `mowing_session_ended`. */
    async endSession(homeId: string, options: SessionOptions): Promise<string> {
      const ctx = context!;
      const endedAt = new Date();
      const startedAt = options.startedAt ?? new Date(endedAt.getTime() - 1000);
      const zones = options.zones ?? starts.at(-1) ?? [];
      const outcome = options.outcome ?? 'finished';
      let sessionId: string = crypto.randomUUID();
      if (!options.unstored) {
        const row = await ctx.db
          .withTables<MammotionTables>()
          .insertInto('mammotion_sessions')
          .values({ home_id: homeId, iot_id: 'standin', entity_id: entityId, started_at: startedAt, ended_at: endedAt, area_m2: options.area, minutes: 1, zones, outcome })
          .returning('id')
          .executeTakeFirstOrThrow();
        sessionId = row.id;
      }
      ctx.bus.fire(
        'mowing_session_ended',
        {
          session_id: sessionId,
          home_id: homeId,
          entity_id: entityId,
          iot_id: 'standin',
          started_at: startedAt.toISOString(),
          ended_at: endedAt.toISOString(),
          area_m2: options.eventArea ?? options.area,
          minutes: 1,
          zones,
          outcome,
        },
        { homeId },
      );
      return sessionId;
    },
  };
}
