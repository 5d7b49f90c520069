-- Mammotion accounts linked to homes, their mowers, and the mowing sessions read from reports.

create table mammotion_accounts (
  id uuid primary key default gen_random_uuid(),
  home_id uuid not null references homes (id) on delete cascade,
  email text not null,
  -- The cloud session (refresh token and friends), sealed with the hub's secret key. The
  -- password is never stored: when the refresh token dies, the owner links the account again.
  sealed_session text,
  status text not null default 'connecting', -- connecting | connected | reconnecting | reauth_required | failed
  status_detail text,
  created_by uuid references users (id) on delete set null,
  created_at timestamptz not null default now(),
  unique (home_id, email)
);

create table mammotion_mowers (
  iot_id text primary key,
  account_id uuid not null references mammotion_accounts (id) on delete cascade,
  home_id uuid not null references homes (id) on delete cascade,
  device_name text not null,
  product_key text not null default '',
  model text not null,
  entity_slug text not null unique,
  firmware text
);

create table mammotion_sessions (
  id uuid primary key default gen_random_uuid(),
  home_id uuid not null references homes (id) on delete cascade,
  iot_id text not null,
  entity_id text not null,
  started_at timestamptz not null,
  ended_at timestamptz,
  area_m2 double precision not null default 0,
  minutes double precision not null default 0,
  zones text[] not null default '{}',
  outcome text -- finished | interrupted; null while mowing
);
create index mammotion_sessions_home_started on mammotion_sessions (home_id, started_at desc);
create index mammotion_sessions_open on mammotion_sessions (iot_id) where ended_at is null;
