-- Threshold rules on telemetry metrics, and the alerts they raise.

create table alert_rules (
  id uuid primary key default gen_random_uuid(),
  home_id uuid not null references homes (id) on delete cascade,
  device_id uuid references devices (id) on delete cascade, -- null: every device of the home
  metric text not null,
  direction text not null check (direction in ('above', 'below')),
  warning double precision,
  critical double precision,
  for_seconds integer not null default 0 check (for_seconds >= 0),
  hysteresis double precision not null default 0 check (hysteresis >= 0),
  enabled boolean not null default true,
  created_at timestamptz not null default now(),
  check (warning is not null or critical is not null)
);
create index alert_rules_home_id on alert_rules (home_id);

create table alerts (
  id uuid primary key default gen_random_uuid(),
  rule_id uuid not null references alert_rules (id) on delete cascade,
  home_id uuid not null references homes (id) on delete cascade,
  device_id uuid not null references devices (id) on delete cascade,
  metric text not null,
  severity text not null check (severity in ('warning', 'critical')),
  status text not null check (status in ('active', 'acknowledged', 'resolved')),
  value double precision not null, -- the value that raised (or last escalated) it
  threshold double precision not null,
  raised_at timestamptz not null default now(),
  acknowledged_at timestamptz,
  acknowledged_by uuid references users (id) on delete set null,
  resolved_at timestamptz,
  resolved_by uuid references users (id) on delete set null -- null with resolved_at: resolved by itself
);
create index alerts_home_status on alerts (home_id, status);
-- At most one open alert per rule and device.
create unique index alerts_open_per_rule_device on alerts (rule_id, device_id) where status <> 'resolved';
