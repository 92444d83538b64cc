-- A 100,000-device fleet over years: what retention deletes by, and queries whose cost follows the fleet
-- rather than the history (issue 17).

-- Key usage: one small row per (key version, deviceid, address), kept up to date on the ingest path, so
-- `secrets usage` and the rotation check never read the registrations history. requests is a running count.
create table key_version_usage (
  id             bigserial primary key,
  key_version_id bigint not null references key_versions (id) on delete cascade,
  deviceid       text,
  remote_addr    text,
  device_id      bigint references devices (id) on delete set null,
  requests       bigint not null default 0,
  first_used     timestamptz not null,
  last_used      timestamptz not null,
  constraint key_version_usage_uniq unique nulls not distinct (key_version_id, deviceid, remote_addr)
);
-- Key usage pages: one version's rows, most recently used first (keyset on (last_used, id)).
create index key_version_usage_version_idx on key_version_usage (key_version_id, last_used, id);
-- The rotation check: has this device used a newer version of the key since?
create index key_version_usage_deviceid_idx on key_version_usage (deviceid, key_version_id);
create index key_version_usage_device_idx on key_version_usage (device_id) where device_id is not null;
insert into key_version_usage (key_version_id, deviceid, remote_addr, device_id, requests, first_used, last_used)
select key_version_id, deviceid, remote_addr, max(device_id), count(*), min(received_at), max(received_at)
from registrations where key_version_id is not null
group by key_version_id, deviceid, remote_addr;

-- Retention walks registrations and submissions by time (keyset on (received_at, id)); deleting a
-- registration sets submissions.registration_id null, which needs an index to find them.
drop index if exists registrations_time_idx;
create index registrations_time_idx on registrations (received_at, id);
create index submissions_time_idx on submissions (received_at, id);
create index submissions_registration_idx on submissions (registration_id) where registration_id is not null;

-- Device lists: every filter the console uses, in the list's order (last_seen desc, id desc), so a page
-- (offset or keyset cursor) reads only its rows.
drop index if exists devices_state_idx;
create index devices_state_idx on devices (state, last_seen, id);
create index devices_last_seen_idx on devices (last_seen, id);
create index devices_assigned_tag_idx on devices (assigned_tag, last_seen, id) where assigned_tag is not null;
create index devices_key_idx on devices (registered_key_id, last_seen, id) where registered_key_id is not null;

-- Free-text search ("contains" in name, serial, UUID, deviceid, MACs): trigram indexes where pg_trgm exists
-- (PostgreSQL contrib; PGlite loads it from @electric-sql/pglite/contrib/pg_trgm). Without it the same
-- query runs as a scan: slower on a large fleet, same answers.
create function agentgate_macs_text(macs text[]) returns text language sql immutable parallel safe
  as $$ select array_to_string(macs, ' ') $$;
do $$
declare
  ext_schema text;
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_trgm') then
    -- In public, not in the first schema of search_path (which may be a tenant's, or a test's, that is dropped).
    create extension if not exists pg_trgm schema public;
    select n.nspname into ext_schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace
      where e.extname = 'pg_trgm';
    execute format('create index devices_search_trgm_idx on devices using gin ('
      'name %1$I.gin_trgm_ops, serial %1$I.gin_trgm_ops, uuid %1$I.gin_trgm_ops, deviceid %1$I.gin_trgm_ops, '
      'agentgate_macs_text(macs) %1$I.gin_trgm_ops)', ext_schema);
  end if;
exception when others then
  -- e.g. not allowed to create the extension: search still works, unindexed.
  raise notice 'pg_trgm unavailable (%): device search runs unindexed', sqlerrm;
end $$;

-- The device page's inventory summary, written by a background pass after a full inventory is stored
-- (services/inventory-summary.ts), so the page never parses a stored XML body. summary_submission_id says
-- which full inventory it describes: a newer full inventory makes it stale until the pass has run.
alter table inventories
  add column summary jsonb,
  add column summary_submission_id bigint;
create index inventories_summary_todo_idx on inventories (device_id)
  where full_submission_id is not null and view is null and summary_submission_id is distinct from full_submission_id;
