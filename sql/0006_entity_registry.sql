-- The entity registry: entity ids are allocated, not derived from names. Each owner
-- ('telemetry', 'plugin:<id>') holds one id per device, domain and unique id (a metric name,
-- a plugin's own key); the first holder keeps an id and later claimants get `<id>_2`, … Rows
-- go with their home (cascade) and, for telemetry, with their device (the hub deletes them).
create table entity_registry (
  entity_id text primary key,
  owner text not null,
  home_id uuid not null references homes (id) on delete cascade,
  device_id text,
  unique_id text not null,
  created_at timestamptz not null default now()
);
create index entity_registry_home_id on entity_registry (home_id);
create index entity_registry_device_id on entity_registry (device_id);
