-- Room on each devices page for HOT updates: a message that changes no indexed column (a PROLOG or CONTACT
-- within LAST_SEEN_RESOLUTION of the recorded last_seen, see store/agent-store.ts) writes its new row
-- version on the same page and adds no entry to any of the table's twelve indexes. Pages filled from now
-- on keep 15% free; existing pages get there as their rows move.
alter table devices set (fillfactor = 85);
