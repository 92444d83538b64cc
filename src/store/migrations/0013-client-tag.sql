-- Per-agent clients carry a tag like registration keys (clients create --tag): the tag of the devices they
-- register, sent to GLPI in place of the agent's (UPSTREAM_TAG=key). Each registration records the tag the
-- message claimed (inventory TAG, CONTACT tag), so a device whose agent claims another tag than its
-- credential's can be found.
alter table agent_clients add column tag text;
alter table registrations add column claimed_tag text;
