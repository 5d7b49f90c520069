-- Threshold rules on telemetry metrics, maintenance tasks, and the alerts both raise.

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

create table maintenance_tasks (
  id uuid primary key default gen_random_uuid(),
  home_id uuid not null references homes (id) on delete cascade,
  device_id uuid not null references devices (id) on delete cascade,
  title text not null,
  type text not null check (type in ('preventive', 'corrective')),
  due_at timestamptz, -- due on a date…
  due_metric text, -- …or when this metric (operating hours) reaches due_value
  due_value double precision,
  status text not null default 'open' check (status in ('open', 'done', 'cancelled')),
  assignee_id uuid references users (id) on delete set null,
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  check ((due_metric is null) = (due_value is null))
);
create index maintenance_tasks_home_status on maintenance_tasks (home_id, status);

create table alerts (
  id uuid primary key default gen_random_uuid(),
  rule_id uuid references alert_rules (id) on delete cascade, -- a threshold alert…
  task_id uuid references maintenance_tasks (id) on delete cascade, -- …or a maintenance task that is due
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
-- At most one open alert per rule and device, and per task.
create unique index alerts_open_per_rule_device on alerts (rule_id, device_id) where status <> 'resolved';
create unique index alerts_open_per_task on alerts (task_id) where status <> 'resolved';
