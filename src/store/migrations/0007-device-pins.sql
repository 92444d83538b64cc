-- A per-agent client created for one device (clients create --device) is that device's own credential:
-- every message for the deviceid looks it up, so it is indexed.
create index agent_clients_bound_deviceid_idx on agent_clients (deviceid) where deviceid is not null and revoked_at is null;
