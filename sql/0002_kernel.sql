-- The kernel: current entity states and their history, scheduled jobs, plugin settings.

create table entity_states (
  entity_id text primary key,
  home_id uuid not null references homes (id) on delete cascade,
  device_id text,
  owner text not null, -- who may change it: 'api' (virtual entities) or 'plugin:<id>'
  state text not null,
  attributes jsonb not null default '{}',
  last_changed timestamptz not null,
  last_updated timestamptz not null,
  context_id text not null,
  context_parent_id text,
  context_user_id uuid
);
create index entity_states_home_id on entity_states (home_id);

create table state_history (
  id bigserial primary key,
  entity_id text not null,
  home_id uuid not null references homes (id) on delete cascade,
  state text, -- null: the entity was removed
  attributes jsonb not null default '{}',
  last_changed timestamptz not null,
  last_updated timestamptz not null,
  context_id text not null,
  context_parent_id text,
  context_user_id uuid
);
create index state_history_entity_time on state_history (entity_id, last_updated);
create index state_history_home_time on state_history (home_id, last_updated);

create table jobs (
  id text primary key, -- '<owner>:<name>'
  owner text not null,
  name text not null,
  home_id uuid references homes (id) on delete cascade,
  schedule text not null, -- a cron expression, or 'every <ms>ms'
  timezone text not null default 'UTC',
  active boolean not null default true,
  next_run timestamptz,
  last_run timestamptz,
  last_error text,
  last_duration_ms integer,
  run_count integer not null default 0,
  lease_holder text, -- the instance running it now
  lease_until timestamptz
);

create table plugin_settings (
  plugin_id text primary key,
  enabled boolean not null default true,
  config jsonb not null default '{}',
  updated_at timestamptz not null default now()
);
