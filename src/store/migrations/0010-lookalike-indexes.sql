-- Look-alikes (services/lookalikes.ts): the device list asks, once per page, which other devices share a
-- serial, a UUID, a MAC or a name with the devices shown. serial and uuid are indexed already (0001);
-- these two make the MAC overlap (macs && …) and the case-insensitive name match index scans too.
create index devices_macs_gin_idx on devices using gin (macs);
create index devices_name_lower_idx on devices (lower(name)) where name is not null and name <> '';
