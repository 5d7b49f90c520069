/**
 * The plugin's tables (`sql/`), the database handle typed with them, and the cluster id as a
 * path parameter: what every module of the plugin shares about its storage.
 *
 * @module
 */
import { z } from '@hono/zod-openapi';
import type { Generated, Kysely } from 'kysely';
import type { Database } from '../../core/db/index.js';

export type ConsentState = 'invited' | 'accepted' | 'declined';
export type RunStatus = 'running' | 'finished' | 'failed' | 'cancelled';
/** How a yard visit ended: mowed to the end, stopped early, not mowed (consent, no zones), or never started. */
export type VisitOutcome = 'finished' | 'interrupted' | 'skipped' | 'failed';

/** A cluster's weekly plan: the days (0 = Sunday) and local time the run starts. */
export type WeeklyPlan = { days: number[]; time: string; timezone: string };

// A type alias, not an interface: withTables needs an index-signature-compatible shape.
/** Every table of `sql/0001_cluster.sql`, `sql/0002_plans_and_address_keys.sql` and `sql/0003_plan_points.sql`. */
export type ClusterTables = {
  cluster_road_extracts: {
    id: Generated<string>;
    name: string;
    source: 'geojson' | 'osm-xml' | 'osm-pbf' | 'overpass';
    query: string | null;
    bbox: [number, number, number, number];
    features: unknown;
    way_count: number;
    barrier_count: number;
    fetched_at: Generated<Date>;
    created_by: string | null;
  };
  cluster_addresses: {
    id: Generated<string>;
    role: Generated<'prospect' | 'host' | 'neighbor'>;
    address: string;
    city: Generated<string>;
    state: Generated<string>;
    latitude: number | null;
    longitude: number | null;
    footprint: unknown;
    geocode_quality: Generated<string>;
    source: Generated<string>;
    created_by: string | null;
    created_at: Generated<Date>;
    /** The planner's address identity (`planner/addresses.ts`); unique (0002). */
    address_key: string | null;
  };
  /** Plans shown by `POST /plan`, kept for an hour to be accepted (0002). */
  cluster_proposals: {
    id: Generated<string>;
    host_home_id: string;
    extract_id: string | null;
    plan: unknown;
    created_by: string | null;
    created_at: Generated<Date>;
  };
  /** Where each host home was last planned, and when a plan last followed a move (0003, `moves.ts`). */
  cluster_plan_points: {
    home_id: string;
    latitude: number;
    longitude: number;
    moved_plan_at: Date | null;
  };
  cluster_clusters: {
    id: Generated<string>; // bigint: postgres drivers return it as a string
    host_home_id: string;
    extract_id: string | null;
    plan: unknown;
    schedule: WeeklyPlan | null;
    schedule_set_at: Date | null;
    next_position: Generated<number>;
    created_by: string | null;
    accepted_at: Generated<Date>;
  };
  cluster_members: {
    cluster_id: string;
    candidate_id: string;
    home_id: string | null;
    position: number;
    consent: Generated<ConsentState>;
    zones: Generated<string[]>;
    updated_at: Generated<Date>;
  };
  /** Runs and visits are billing records: they outlive their cluster (`cluster_id` null). */
  cluster_runs: {
    id: Generated<string>;
    cluster_id: string | null;
    started_at: Generated<Date>;
    ended_at: Date | null;
    status: Generated<RunStatus>;
    position: Generated<number>;
    entity_id: string | null;
    slot: Date | null;
    detail: string | null;
    cancelled_by: string | null;
  };
  cluster_yard_visits: {
    id: Generated<string>;
    run_id: string | null;
    cluster_id: string | null;
    candidate_id: string;
    home_id: string | null;
    zones: Generated<string[]>;
    session_id: string | null;
    started_at: Generated<Date>;
    ended_at: Date | null;
    area_m2: Generated<number>;
    outcome: VisitOutcome | null;
    detail: string | null;
  };
};

/** The database as the plugin reads it: the hub's tables and {@link ClusterTables}. */
export type ClusterDb = Kysely<Database & ClusterTables>;

/**
 * `{id}` of every `/clusters/{id}/…` route. Cluster ids are a bigint column, which the
 * postgres drivers hand over as text: digits only, at most 18 of them (within int8).
 */
export const ClusterIdParam = z.object({
  id: z
    .string()
    .regex(/^[0-9]{1,18}$/, 'a cluster id (digits)')
    .openapi({ param: { name: 'id', in: 'path' }, example: '1' }),
});
