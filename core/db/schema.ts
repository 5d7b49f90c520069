/**
 * The database as kysely sees it: one interface per table, matching `sql/*.sql`.
 *
 * @module
 */
import type { ColumnType, Generated, RawBuilder, Selectable } from 'kysely';

/** A timestamp column: read as a Date, written as a Date or an ISO string. */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;

/** Roles a user can hold in a home, weakest first. */
export const ROLES = ['viewer', 'technician', 'owner', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface UsersTable {
  id: Generated<string>;
  email: string;
  name: Generated<string>;
  password_hash: string;
  is_admin: Generated<boolean>;
  /** May open the embedded Node-RED editor without being an administrator. */
  can_automate: Generated<boolean>;
  disabled: Generated<boolean>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface HomesTable {
  id: Generated<string>;
  name: string;
  address: string | null;
  latitude: number | null;
  longitude: number | null;
  timezone: Generated<string>;
  /** A GeoJSON Polygon or MultiPolygon geometry; the drivers encode and decode the JSON. */
  parcel: ColumnType<unknown, object | null | undefined, object | null>;
  created_at: DefaultTimestamp;
  updated_at: DefaultTimestamp;
}

export interface HomeMembersTable {
  home_id: string;
  user_id: string;
  role: Role;
  created_at: DefaultTimestamp;
}

export interface HomeInvitationsTable {
  id: Generated<string>;
  home_id: string;
  email: string;
  role: Role;
  invited_by: string;
  created_at: DefaultTimestamp;
  expires_at: Timestamp;
}

export interface SessionsTable {
  id: string;
  user_id: string;
  expires_at: Timestamp;
  created_at: DefaultTimestamp;
  user_agent: string | null;
  ip: string | null;
}

export interface ApiTokensTable {
  id: Generated<string>;
  user_id: string;
  home_id: string;
  role: Role;
  name: string;
  token_hash: string;
  hint: string;
  created_at: DefaultTimestamp;
  last_used_at: Timestamp | null;
  expires_at: Timestamp | null;
}

/** The columns a current state and a history row share. */
interface StateColumns {
  entity_id: string;
  home_id: string;
  attributes: ColumnType<Record<string, unknown>, Record<string, unknown>, Record<string, unknown>>;
  last_changed: Timestamp;
  last_updated: Timestamp;
  context_id: string;
  context_parent_id: string | null;
  context_user_id: string | null;
}

export interface EntityStatesTable extends StateColumns {
  device_id: string | null;
  owner: string;
  state: string;
}

/** Which entity id each owner, device and unique id holds (core/states/registry). */
export interface EntityRegistryTable {
  entity_id: string;
  owner: string;
  home_id: string;
  device_id: string | null;
  unique_id: string;
  created_at: DefaultTimestamp;
}

export interface StateHistoryTable extends StateColumns {
  id: Generated<string>;
  /** Null records the entity's removal. */
  state: string | null;
}

export interface JobsTable {
  id: string;
  owner: string;
  name: string;
  home_id: string | null;
  schedule: string;
  timezone: Generated<string>;
  active: Generated<boolean>;
  next_run: Timestamp | null;
  last_run: Timestamp | null;
  last_error: string | null;
  last_duration_ms: number | null;
  run_count: Generated<number>;
  lease_holder: string | null;
  lease_until: Timestamp | null;
}

export interface PluginSettingsTable {
  plugin_id: string;
  enabled: Generated<boolean>;
  config: ColumnType<Record<string, unknown>, Record<string, unknown> | undefined, Record<string, unknown>>;
  updated_at: DefaultTimestamp;
}

export interface DevicesTable {
  id: Generated<string>;
  home_id: string;
  name: string;
  slug: string;
  kind: string;
  model: string | null;
  firmware: string | null;
  mqtt_secret_hash: string;
  broker_password_hash: string;
  online: Generated<boolean>;
  last_seen: Timestamp | null;
  created_at: DefaultTimestamp;
}

export interface ReadingsTable {
  device_id: string;
  metric: string;
  ts: Timestamp;
  value: number | null;
  text_value: string | null;
}

/** A rollup bucket of a numeric metric (minute or hour). */
export interface RollupsTable {
  device_id: string;
  metric: string;
  bucket: Timestamp;
  min: number;
  max: number;
  avg: number;
  count: number;
}

export interface AlertRulesTable {
  id: Generated<string>;
  home_id: string;
  device_id: string | null;
  metric: string;
  direction: 'above' | 'below';
  warning: number | null;
  critical: number | null;
  for_seconds: Generated<number>;
  hysteresis: Generated<number>;
  enabled: Generated<boolean>;
  created_at: DefaultTimestamp;
}

export interface MaintenanceTasksTable {
  id: Generated<string>;
  home_id: string;
  device_id: string;
  title: string;
  type: 'preventive' | 'corrective';
  due_at: Timestamp | null;
  due_metric: string | null;
  due_value: number | null;
  status: Generated<'open' | 'done' | 'cancelled'>;
  assignee_id: string | null;
  created_at: DefaultTimestamp;
  completed_at: Timestamp | null;
}

export interface AlertsTable {
  id: Generated<string>;
  rule_id: string | null;
  task_id: Generated<string | null>;
  home_id: string;
  device_id: string;
  metric: string;
  severity: 'warning' | 'critical';
  status: 'active' | 'acknowledged' | 'resolved';
  value: number;
  threshold: number;
  raised_at: DefaultTimestamp;
  acknowledged_at: Timestamp | null;
  acknowledged_by: string | null;
  resolved_at: Timestamp | null;
  resolved_by: string | null;
}

export interface MigrationsTable {
  scope: string;
  name: string;
  checksum: string;
  applied_at: DefaultTimestamp;
}

export interface Database {
  users: UsersTable;
  homes: HomesTable;
  home_members: HomeMembersTable;
  home_invitations: HomeInvitationsTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  hub_migrations: MigrationsTable;
  entity_states: EntityStatesTable;
  entity_registry: EntityRegistryTable;
  state_history: StateHistoryTable;
  jobs: JobsTable;
  plugin_settings: PluginSettingsTable;
  devices: DevicesTable;
  readings: ReadingsTable;
  readings_minute: RollupsTable;
  readings_hour: RollupsTable;
  alert_rules: AlertRulesTable;
  alerts: AlertsTable;
  maintenance_tasks: MaintenanceTasksTable;
  nodered_deployments: NodeRedDeploymentsTable;
  nodered_store: NodeRedStoreTable;
  nodered_library: NodeRedLibraryTable;
}

/** A JSON value written through {@link jsonb} (core/db), read back parsed. */
type JsonColumn<T> = ColumnType<T, RawBuilder<unknown>, RawBuilder<unknown>>;

export interface NodeRedDeploymentsTable {
  id: Generated<string>;
  flows: JsonColumn<unknown[]>;
  credentials: JsonColumn<Record<string, unknown> | null>;
  deployed_by: string | null;
  deployed_at: DefaultTimestamp;
  restored_from: string | null;
}

export interface NodeRedStoreTable {
  key: string;
  value: JsonColumn<Record<string, unknown>>;
}

export interface NodeRedLibraryTable {
  type: string;
  path: string;
  meta: JsonColumn<Record<string, unknown>>;
  body: string;
}

export type MaintenanceTask = Selectable<MaintenanceTasksTable>;

export type AlertRule = Selectable<AlertRulesTable>;
export type Alert = Selectable<AlertsTable>;

export type Device = Selectable<DevicesTable>;

export type User = Selectable<UsersTable>;
export type Home = Selectable<HomesTable>;
export type ApiToken = Selectable<ApiTokensTable>;
