-- Plans waiting to be accepted, the address identity the compatibility API deduplicates on,
-- and one extract per Overpass query.

-- A plan shown to a host home (POST /plan), kept for an hour so that POST /clusters/{plan id}/accept
-- turns exactly what the owner saw into a cluster, on any hub instance.
create table cluster_proposals (
  id uuid primary key default gen_random_uuid(),
  host_home_id uuid not null references homes (id) on delete cascade,
  extract_id uuid references cluster_road_extracts (id) on delete cascade,
  plan jsonb not null,
  created_by uuid references users (id) on delete set null,
  created_at timestamptz not null default now()
);
create index cluster_proposals_created on cluster_proposals (created_at);

-- The planner's address identity (normalised street and city, see planner/addresses.ts): one row
-- per address, however it was typed, so a home is never registered twice nor its own neighbour.
alter table cluster_addresses add column address_key text;
create unique index cluster_addresses_key on cluster_addresses (address_key);

-- One stored extract per Overpass query: two identical fetches at once (one instance or two)
-- store it once; the second finds the first's row (on conflict) and answers with it.
create unique index cluster_road_extracts_query_once on cluster_road_extracts (query) where query is not null;
