-- The inventory view (a device's whole inventory as jsonb, ~140 KB of JSON for a desktop) is rewritten by
-- every partial inventory: read, merged, written again, so TOAST compresses it on every GLPI Agent run.
-- pglz made that merge the costliest statement of a steady fleet (pg_stat_statements under `npm run load`:
-- 8.7 ms per partial inventory, three quarters of the database's time); lz4 compresses 3-4x faster for ~10 %
-- more space. Values written from now on use it; older ones stay readable and change as they are rewritten.
-- A server built without lz4 (PGlite, the embedded database of `npm start`) keeps pglz.
do $$
begin
  execute 'alter table inventories alter column view set compression lz4';
exception when feature_not_supported then
  raise notice 'lz4 not available on this server: inventories.view stays pglz';
end
$$;
