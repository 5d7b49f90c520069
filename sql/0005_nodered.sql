-- Node-RED inside the hub: who may open the editor, and its storage (flows versioned per deploy).

-- Besides hub administrators, users an administrator allows to build automations.
alter table users add column can_automate boolean not null default false;

-- Every deploy is a version; the newest is what runs. Credentials are Node-RED's own encrypted
-- blob (under a key derived from the hub's secret key).
create table nodered_deployments (
  id bigserial primary key,
  flows jsonb not null,
  credentials jsonb,
  deployed_by uuid references users (id) on delete set null,
  deployed_at timestamptz not null default now(),
  restored_from bigint references nodered_deployments (id) on delete set null
);

-- Node-RED's runtime settings and editor sessions, by name.
create table nodered_store (
  key text primary key,
  value jsonb not null
);

create table nodered_library (
  type text not null,
  path text not null,
  meta jsonb not null default '{}',
  body text not null,
  primary key (type, path)
);
