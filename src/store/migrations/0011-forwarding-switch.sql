-- Forwarding to GLPI is decided by the database, not by the environment of whichever process approves:
-- once any gateway (or `agent-gate forward`) with UPSTREAM_URL has started, `forwarding.enabled` is true,
-- and every path that accepts or releases an approved device's inventory — a gateway without UPSTREAM_URL,
-- the CLI from an admin's shell, the admin API on any replica, a policy — writes its outbox rows in its
-- own transaction. `agent-gate forward disable` turns it off; `forward backfill` enqueues what was
-- accepted before it was on.
create table forwarding (
  id         boolean primary key default true check (id),
  enabled    boolean not null default false,
  enabled_at timestamptz,
  enabled_by text
);
insert into forwarding (id, enabled) values (true, false);

-- The processes that forward (one row each, heartbeat every 30 s), with their circuit breaker: what
-- `agent-gate forward status` shows. A process removes its row when it stops.
create table forwarders (
  name          text primary key,
  upstream_host text not null,
  workers       integer not null,
  breaker       text not null default 'closed' check (breaker in ('closed', 'open')),
  breaker_since timestamptz,
  last_error    text,
  started_at    timestamptz not null,
  seen_at       timestamptz not null
);
