-- Users, homes and who may act on them; sessions and API tokens.
-- Secrets are never stored: sessions and tokens keep only the SHA-256 of the token,
-- users keep a scrypt hash of the password.

create table users (
  id uuid primary key default gen_random_uuid(),
  email text not null unique check (email = lower(email)),
  name text not null default '',
  password_hash text not null,
  is_admin boolean not null default false,
  disabled boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table homes (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  address text,
  latitude double precision check (latitude between -90 and 90),
  longitude double precision check (longitude between -180 and 180),
  timezone text not null default 'UTC',
  parcel jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table home_members (
  home_id uuid not null references homes (id) on delete cascade,
  user_id uuid not null references users (id) on delete cascade,
  role text not null check (role in ('admin', 'owner', 'technician', 'viewer')),
  created_at timestamptz not null default now(),
  primary key (home_id, user_id)
);
create index home_members_user_id on home_members (user_id);

create table sessions (
  id text primary key, -- hex SHA-256 of the session token
  user_id uuid not null references users (id) on delete cascade,
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  user_agent text,
  ip text
);
create index sessions_user_id on sessions (user_id);
create index sessions_expires_at on sessions (expires_at);

create table api_tokens (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references users (id) on delete cascade,
  home_id uuid not null references homes (id) on delete cascade,
  role text not null check (role in ('admin', 'owner', 'technician', 'viewer')),
  name text not null,
  token_hash text not null unique, -- hex SHA-256 of the token
  hint text not null, -- the token's last four characters, to tell tokens apart in a list
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  expires_at timestamptz
);
create index api_tokens_user_id on api_tokens (user_id);
