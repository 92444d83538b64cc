-- Webhook notifications: one row per event and receiver URL, written in the transaction of what caused the
-- event (so no event is lost once its cause is committed) and delivered at least once by a worker.
-- next_attempt_at is when the row is next due (pushed forward while a worker is sending it); null once
-- delivered, or once every attempt failed (the row stays, with last_status / last_error, for inspection).

create table webhook_deliveries (
  id              bigserial primary key,
  event           text not null,
  payload         jsonb not null,
  url             text not null,
  attempts        integer not null default 0,
  next_attempt_at timestamptz,
  delivered_at    timestamptz,
  last_status     integer,
  last_error      text,
  created_at      timestamptz not null
);
-- What the worker polls: undelivered rows still to be tried, by due time.
create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at, id)
  where delivered_at is null and next_attempt_at is not null;
