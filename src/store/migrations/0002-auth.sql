-- Registration keys with versions (rotation with grace), per-agent clients and their bearer tokens,
-- operators, the audit log and security events. Only SHA-256 hashes of secrets are stored.

create table registration_keys (
  id           bigserial primary key,
  name         text not null unique,
  active       boolean not null default true,
  expires_at   timestamptz,
  max_devices  integer not null default 0 check (max_devices >= 0),
  devices_used integer not null default 0,
  tag          text,
  comment      text,
  created_by   text not null,
  created_at   timestamptz not null
);

create table key_versions (
  id          bigserial primary key,
  key_id      bigint not null references registration_keys (id) on delete cascade,
  version     integer not null,
  prefix      text not null,
  secret_hash bytea not null unique,
  created_at  timestamptz not null,
  expires_at  timestamptz,
  unique (key_id, version)
);

create table agent_clients (
  id            bigserial primary key,
  client_id     text not null unique,
  name          text not null,
  secret_hash   bytea not null,
  secret_prefix text not null,
  deviceid      text,
  comment       text,
  created_by    text not null,
  created_at    timestamptz not null,
  revoked_at    timestamptz,
  last_used_at  timestamptz
);

create table agent_tokens (
  token_hash  bytea primary key,
  client_pk   bigint not null references agent_clients (id) on delete cascade,
  created_at  timestamptz not null,
  expires_at  timestamptz not null
);
create index agent_tokens_expiry_idx on agent_tokens (expires_at);

create table operators (
  id           bigserial primary key,
  name         text not null unique,
  role         text not null check (role in ('reviewer', 'admin')),
  token_hash   bytea not null unique,
  token_prefix text not null,
  created_by   text not null,
  created_at   timestamptz not null,
  revoked_at   timestamptz,
  last_used_at timestamptz
);

-- What people did: every key, client and operator action and every admission decision.
create table audit_log (
  id          bigserial primary key,
  at          timestamptz not null,
  actor       text not null,
  action      text not null,
  target_type text not null,
  target_id   text,
  remote_addr text,
  before      jsonb,
  after       jsonb,
  reason      text
);
create index audit_log_at_idx on audit_log (at desc);

-- What credentials did that they should not: device-bound client used for another device, bad secrets.
create table security_events (
  id          bigserial primary key,
  at          timestamptz not null,
  kind        text not null,
  remote_addr text,
  deviceid    text,
  details     jsonb
);
create index security_events_at_idx on security_events (at desc);

alter table registrations
  add column auth_type      text,
  add column auth_user      text,
  add column key_id         bigint references registration_keys (id) on delete set null,
  add column key_version_id bigint references key_versions (id) on delete set null,
  add column client_pk      bigint references agent_clients (id) on delete set null;
create index registrations_key_version_idx on registrations (key_version_id, received_at desc) where key_version_id is not null;

alter table devices
  add column registered_key_id    bigint references registration_keys (id) on delete set null,
  add column registered_client_pk bigint references agent_clients (id) on delete set null,
  add column assigned_tag         text;
