-- How large each stored section is, decoded (its jsonb size before compression), so a partial inventory can
-- be refused when it would grow the device's stored inventory past INFLATE_LIMIT or past a few hundred
-- sections. Stored as one document (until 0017) a view could not outgrow jsonb's 255 MB; as rows, partials
-- that each bring new sections could pile up without end under one device.
alter table inventory_sections add column size integer;
-- content::text::jsonb: a fresh, uncompressed value, so pg_column_size reads its decoded size (as the
-- writers do with the values they insert).
update inventory_sections set size = pg_column_size(content::text::jsonb);
-- No default: a writer that forgot the size fails here instead of undercounting.
alter table inventory_sections alter column size set not null;
