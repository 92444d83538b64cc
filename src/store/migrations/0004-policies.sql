-- Auto-approval policies: ordered rules over device attributes (first match decides) and the allowlists
-- they may refer to. A registration key can be frozen for auto-approval (spike detector, or by hand).

create table policy_rules (
  id         bigserial primary key,
  position   integer not null,
  action     text not null check (action in ('approve', 'quarantine', 'reject')),
  match      jsonb not null default '{}',
  comment    text,
  created_by text not null,
  created_at timestamptz not null
);
create index policy_rules_position_idx on policy_rules (position, id);

create table policy_allowlists (
  name  text not null,
  kind  text not null check (kind in ('serial', 'uuid', 'mac')),
  value text not null,
  primary key (name, kind, value)
);

alter table registration_keys
  add column frozen_at     timestamptz,
  add column frozen_reason text;
