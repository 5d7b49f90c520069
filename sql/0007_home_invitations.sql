-- Invitations to join a home. A member is added only when the invitee accepts; the owner's
-- request answers the same whether or not the email has an account. An invitation is to an
-- email, so someone who registers later with it can still accept it.

create table home_invitations (
  id uuid primary key default gen_random_uuid(),
  home_id uuid not null references homes (id) on delete cascade,
  email text not null check (email = lower(email)),
  role text not null check (role in ('admin', 'owner', 'technician', 'viewer')),
  invited_by uuid not null references users (id) on delete cascade,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  unique (home_id, email)
);
create index home_invitations_email on home_invitations (email);
