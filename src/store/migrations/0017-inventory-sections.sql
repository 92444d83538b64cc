-- The inventory view, one row per section instead of one jsonb document per device. A GLPI Agent's partial
-- inventory carries a few small sections (hardware, bios, versionprovider… ~1.4 KB) and replaces them whole;
-- stored as one document, every partial rebuilt and re-TOASTed the whole ~140 KB view, mostly software that
-- had not changed (still the database's costliest statement under `npm run load` after lz4 and the one-||
-- merge: 3.7-4.9 ms per merge, half of the statement time). Now a partial rewrites only its own sections.
create table inventory_sections (
  device_id  bigint not null references inventories (device_id) on delete cascade,
  section    text not null,
  content    jsonb not null,
  -- how many elements a list section holds (null when it is not a list), kept so the device page counts
  -- software without reading the software section
  items      integer generated always as (case jsonb_typeof(content) when 'array' then jsonb_array_length(content) end) stored,
  primary key (device_id, section)
);

-- The software section is still ~130 KB; written once per full inventory, lz4 keeps that cheap (0016).
do $$
begin
  execute 'alter table inventory_sections alter column content set compression lz4';
exception when feature_not_supported then
  raise notice 'lz4 not available on this server: inventory_sections.content stays pglz';
end
$$;

-- has_view: the sections are built for the current full inventory (until then readers and the first
-- partial build them from the stored body). A view with no section at all is still a built view.
alter table inventories add column has_view boolean not null default false;

insert into inventory_sections (device_id, section, content)
select i.device_id, e.key, e.value
from inventories i cross join lateral jsonb_each(i.view) e
where jsonb_typeof(i.view) = 'object';

update inventories set has_view = true where view is not null;

drop index inventories_summary_todo_idx;
alter table inventories drop column view;
create index inventories_summary_todo_idx on inventories (device_id)
  where full_submission_id is not null and not has_view and summary_submission_id is distinct from full_submission_id;

-- The whole view as one document, for psql and the tests (the gateway reads sections where it can).
create view inventory_views as
select i.device_id,
       case when i.has_view then coalesce(
         (select jsonb_object_agg(s.section, s.content) from inventory_sections s where s.device_id = i.device_id),
         '{}'::jsonb) end as view
from inventories i;
