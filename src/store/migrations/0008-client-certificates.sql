-- Client certificates verified by the TLS listener against TLS_CLIENT_CA are credentials of their own:
-- registered on first use (trust on first use within that CA), keyed by the SHA-256 fingerprint of the
-- DER certificate (lowercase hex, no colons), revocable one by one.
create table client_certificates (
  id          bigserial primary key,
  fingerprint text not null unique check (fingerprint ~ '^[0-9a-f]{64}$'),
  subject     text not null,
  issuer      text not null,
  serial      text,
  not_before  timestamptz,
  not_after   timestamptz,
  first_seen  timestamptz not null,
  last_seen   timestamptz not null,
  revoked_at  timestamptz,
  revoked_by  text
);

-- A device registered through a certificate is pinned to it, like a device registered by a client.
alter table devices
  add column registered_cert_id bigint references client_certificates (id) on delete set null;
create index devices_registered_cert_idx on devices (registered_cert_id) where registered_cert_id is not null;

-- Which certificate a request came with (also for a client's certificate whose CN is its client id).
alter table registrations
  add column cert_fingerprint text,
  add column cert_subject     text;
