-- Device search ("contains" in name, serial, UUID, deviceid, MACs) as one indexed expression (issue 17).
-- 0012's trigram index covered the five columns, but the query OR'd five ILIKEs and the planner preferred
-- a sequential scan over five bitmap index scans OR'd together (143 ms at 10k devices, more at 100k). One
-- text holding the five fields, separated by a control character no search text contains (the query
-- builder strips control characters), is matched by one ILIKE served by one trigram index: a match can
-- never span two fields, so the answers are those of the five ILIKEs.
create function agentgate_device_search_text(name text, serial text, uuid text, deviceid text, macs text[])
  returns text language sql immutable parallel safe
  as $$ select coalesce(name, '') || chr(1) || coalesce(serial, '') || chr(1) || coalesce(uuid, '') || chr(1)
               || coalesce(deviceid, '') || chr(1) || coalesce(array_to_string(macs, ' '), '') $$;

drop index if exists devices_search_trgm_idx;
do $$
declare
  ext_schema text;
begin
  select n.nspname into ext_schema from pg_extension e join pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'pg_trgm';
  if ext_schema is not null then
    execute format('create index devices_search_trgm_idx on devices using gin '
      '(agentgate_device_search_text(name, serial, uuid, deviceid, macs) %1$I.gin_trgm_ops)', ext_schema);
  end if;
exception when others then
  raise notice 'device search index not created (%): device search runs unindexed', sqlerrm;
end $$;

-- Deleting a submission sets inventories.full_submission_id null (on delete set null): without an index
-- that is a scan of inventories per deleted row. At 100k devices a retention batch of 1000 submissions
-- took ~3.5 s for it.
create index if not exists inventories_full_submission_idx on inventories (full_submission_id)
  where full_submission_id is not null;
