-- The message key of an inventory that may be spooled (issue 16): at most one registration per key, so a
-- spooled message replayed again after a crash between its commit and its deletion from the spool, or
-- recorded late by a first attempt that outlived its deadline, is never recorded twice.
alter table registrations add column message_key text;
create unique index registrations_message_key_idx on registrations (message_key) where message_key is not null;
