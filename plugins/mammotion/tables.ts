/** The plugin's tables (sql/0001_mammotion.sql), for `ctx.db.withTables<MammotionTables>()`. */
import type { Generated, Kysely } from 'kysely';
import type { Database } from '../../core/db/index.js';

// A type alias, not an interface: withTables needs an index-signature-compatible shape.
export type MammotionTables = {
  mammotion_accounts: {
    id: Generated<string>;
    home_id: string;
    email: string;
    sealed_session: string | null;
    status: Generated<string>;
    status_detail: string | null;
    created_by: string | null;
    created_at: Generated<Date>;
  };
  mammotion_mowers: {
    iot_id: string;
    account_id: string;
    home_id: string;
    device_name: string;
    product_key: Generated<string>;
    model: string;
    /** The mower's entity id, as the hub's entity registry gave it. */
    entity_id: string;
    firmware: string | null;
  };
  mammotion_sessions: {
    id: Generated<string>;
    home_id: string;
    iot_id: string;
    entity_id: string;
    started_at: Date;
    ended_at: Date | null;
    area_m2: Generated<number>;
    minutes: Generated<number>;
    zones: Generated<string[]>;
    outcome: 'finished' | 'interrupted' | null;
  };
};

/** The hub's database with the plugin's tables. */
export type MammotionDb = Kysely<Database & MammotionTables>;
