-- Where each host home was last planned, and when a plan last followed a move (moves.ts): a home
-- planned from point after point would locate a hidden neighbour from its distance bands, so a
-- plan at a new point waits a while after the last one.
create table cluster_plan_points (
  home_id uuid primary key references homes (id) on delete cascade,
  latitude double precision not null,
  longitude double precision not null,
  moved_plan_at timestamptz              -- the last plan made after the home moved; null: none yet
);
