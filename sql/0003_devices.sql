-- Devices that talk to the hub over MQTT, and the telemetry they send.

create table devices (
  id uuid primary key default gen_random_uuid(),
  home_id uuid not null references homes (id) on delete cascade,
  name text not null,
  slug text not null unique, -- names its entities: sensor.<slug>_<metric>
  kind text not null,
  model text,
  firmware text,
  mqtt_secret_hash text not null, -- hex SHA-256 of the MQTT password; the password is shown once
  broker_password_hash text not null, -- the same password as Mosquitto's password_file wants it ($7$, PBKDF2-SHA512)
  online boolean not null default false,
  last_seen timestamptz,
  created_at timestamptz not null default now()
);
create index devices_home_id on devices (home_id);

create table readings (
  device_id uuid not null references devices (id) on delete cascade,
  metric text not null,
  ts timestamptz not null,
  value double precision, -- numbers and booleans (1/0)
  text_value text -- strings
);
create index readings_device_metric_ts on readings (device_id, metric, ts);

-- Rollups of numeric readings, kept by the housekeeping jobs (raw → minute → hour).
create table readings_minute (
  device_id uuid not null references devices (id) on delete cascade,
  metric text not null,
  bucket timestamptz not null,
  min double precision not null,
  max double precision not null,
  avg double precision not null,
  count integer not null,
  primary key (device_id, metric, bucket)
);

create table readings_hour (
  device_id uuid not null references devices (id) on delete cascade,
  metric text not null,
  bucket timestamptz not null,
  min double precision not null,
  max double precision not null,
  avg double precision not null,
  count integer not null,
  primary key (device_id, metric, bucket)
);
