-- Road extracts, address points for prospecting, accepted clusters with their members' consent,
-- weekly cluster mowing runs and the area mowed per yard (for billing).

-- One road extract (an area's OSM ways as a GeoJSON FeatureCollection). The planner builds its
-- road model once per extract and keeps it in memory.
create table cluster_road_extracts (
  id uuid primary key default gen_random_uuid(),
  name text not null,
  source text not null,                 -- geojson | osm-xml | osm-pbf | overpass
  query text,                           -- the Overpass query, for source = overpass
  bbox double precision[4] not null,    -- west, south, east, north
  features jsonb not null,              -- FeatureCollection of OSM ways, tags in properties
  way_count integer not null,
  barrier_count integer not null,
  fetched_at timestamptz not null default now(),
  created_by uuid references users (id) on delete set null
);

-- Address points outside the hub's homes: imported for prospecting, or registered through the
-- original API's compatibility endpoints (role host or neighbor).
create table cluster_addresses (
  id uuid primary key default gen_random_uuid(),
  role text not null default 'prospect', -- prospect | host | neighbor
  address text not null,
  city text not null default '',
  state text not null default '',
  latitude double precision check (latitude between -90 and 90),
  longitude double precision check (longitude between -180 and 180),
  footprint jsonb,                       -- GeoJSON Polygon of the building, when known
  geocode_quality text not null default 'unknown',
  source text not null default 'api',    -- api | import | compat
  created_by uuid references users (id) on delete set null,
  created_at timestamptz not null default now()
);
create index cluster_addresses_role on cluster_addresses (role);

-- An accepted cluster: a host home whose mower serves member yards in route order.
create table cluster_clusters (
  id bigint generated always as identity primary key,
  host_home_id uuid not null references homes (id) on delete cascade,
  extract_id uuid references cluster_road_extracts (id) on delete set null,
  plan jsonb not null,                   -- the ClusterPlan as accepted (members, rejected, route, warnings)
  schedule jsonb,                        -- weekly plan: { days: [0..6], time: "HH:MM", timezone }
  schedule_set_at timestamptz,           -- when the plan was last saved: earlier slots never start
  next_position integer not null default 0,
  created_by uuid references users (id) on delete set null,
  accepted_at timestamptz not null default now()
);
create index cluster_clusters_host on cluster_clusters (host_home_id);

-- A yard in a cluster, in route order (position 0 = the host's own yard).
create table cluster_members (
  cluster_id bigint not null references cluster_clusters (id) on delete cascade,
  candidate_id text not null,            -- planner id: a home id, or 'address:<uuid>'
  home_id uuid references homes (id) on delete cascade,
  position integer not null,
  consent text not null default 'invited', -- invited | accepted | declined (the host: accepted)
  zones text[] not null default '{}',    -- the host mower's area hashes for this yard
  updated_at timestamptz not null default now(),
  primary key (cluster_id, candidate_id)
);
create index cluster_members_home on cluster_members (home_id);

-- One walk of a cluster's route by the host mower. Runs and their visits are billing records:
-- they outlive their cluster (deleted, or gone with its host home), which leaves cluster_id null.
create table cluster_runs (
  id uuid primary key default gen_random_uuid(),
  cluster_id bigint references cluster_clusters (id) on delete set null,
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  status text not null default 'running', -- running | finished | failed | cancelled
  position integer not null default 0,      -- the member position of the yard being mowed
  entity_id text,                           -- the host's mower walking the route; null if none was there
  slot timestamptz,                         -- the weekly-plan time it started for; null when started by hand
  detail text,                              -- why it failed or was cancelled; shown to the host home
  cancelled_by uuid references users (id) on delete set null -- who cancelled it (never shown in detail)
);
-- One open run per cluster, and one run per weekly slot, whichever instance starts it.
create unique index cluster_runs_open on cluster_runs (cluster_id) where ended_at is null;
create unique index cluster_runs_slot on cluster_runs (cluster_id, slot); -- nulls (runs started by hand) never clash
create index cluster_runs_mower on cluster_runs (entity_id) where status = 'running';

-- A yard mowed during a run: the area counted for that yard's home (billing reads this). It
-- keeps its home, candidate, area and times when its run or cluster is deleted.
create table cluster_yard_visits (
  id uuid primary key default gen_random_uuid(),
  run_id uuid references cluster_runs (id) on delete set null,
  cluster_id bigint references cluster_clusters (id) on delete set null,
  candidate_id text not null,
  home_id uuid references homes (id) on delete set null,
  zones text[] not null default '{}',      -- the zones the mower was sent to: a session must overlap them
  session_id uuid,                         -- the mower's mowing session
  started_at timestamptz not null default now(),
  ended_at timestamptz,
  area_m2 double precision not null default 0,
  outcome text,                            -- finished | interrupted | skipped | failed; null while mowing
  detail text,                             -- why a yard was skipped or failed
  -- A yard is visited once per run: two instances advancing the same run cannot both start it.
  unique (run_id, candidate_id)
);
create index cluster_yard_visits_home on cluster_yard_visits (home_id, started_at desc);
create index cluster_yard_visits_cluster on cluster_yard_visits (cluster_id, started_at);
-- A session bills at most one yard, whichever instance hears of it first.
create unique index cluster_yard_visits_session on cluster_yard_visits (session_id);
