-- Forwarding to GLPI: one row per accepted inventory to send upstream, written in the transaction that
-- accepted it (or that released it on approval), so nothing accepted can be lost before it is sent.
-- Per device, rows are sent one at a time in id order (the id order is the order they were enqueued in).
--   pending    waiting; next_attempt_at is when it is due
--   in_flight  claimed by a worker; next_attempt_at is the end of its lease (due again after it: a crashed
--              worker's row is sent again — at least once)
--   delivered  GLPI answered 2xx
--   dead       GLPI refused it (4xx other than 429) UPSTREAM_MAX_ATTEMPTS times, or its device was rejected;
--              kept with the answer for inspection, retryable by an admin
-- The body is not copied: it is the submission's, sent exactly as stored.

create table outbox (
  id              bigserial primary key,
  submission_id   bigint not null references submissions (id) on delete cascade,
  device_id       bigint not null references devices (id) on delete cascade,
  deviceid        text not null,
  state           text not null default 'pending' check (state in ('pending', 'in_flight', 'delivered', 'dead')),
  attempts        integer not null default 0,
  next_attempt_at timestamptz,
  last_status     integer,
  last_error      text,
  -- the start of the upstream's last answer (truncated)
  last_response   text,
  created_at      timestamptz not null,
  delivered_at    timestamptz
);
-- What the worker polls: rows still to send, by due time.
create index outbox_due_idx on outbox (next_attempt_at, id) where state in ('pending', 'in_flight');
-- Per-device order: the oldest unsent row of a device is the only one that may be claimed.
create index outbox_device_idx on outbox (device_id, id) where state in ('pending', 'in_flight');
-- Listings and the undo of an approval (rows of submissions that go back to held).
create index outbox_submission_idx on outbox (submission_id);
create index outbox_state_idx on outbox (state, id);
