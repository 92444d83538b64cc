-- Quarantine: devices start held until a person (or, later, a policy) approves them; every transition is
-- recorded; submissions of held devices are kept until the decision.

alter table devices alter column state set default 'quarantined';
alter table devices
  add column state_changed_at timestamptz,
  add column state_reason     text,
  add column conflict_with    bigint references devices (id) on delete set null,
  add column conflict_details jsonb;

create table device_transitions (
  id         bigserial primary key,
  device_id  bigint not null references devices (id) on delete cascade,
  at         timestamptz not null,
  from_state text,
  to_state   text not null,
  actor      text not null,
  reason     text
);
create index device_transitions_device_idx on device_transitions (device_id, id);

-- stored: accepted from an approved device; held: waiting for a decision; released: held, then approved;
-- rejected: held, then rejected (kept for the retention period).
alter table submissions add column state text not null default 'stored'
  check (state in ('stored', 'held', 'released', 'rejected'));
create index submissions_held_idx on submissions (device_id, id) where state = 'held';
