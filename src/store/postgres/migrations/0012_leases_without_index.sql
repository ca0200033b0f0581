-- Taking a lease on due timers and jobs (UPDATE jobs SET lock_owner, lock_expires_at) becomes a
-- HOT update: no lease column is in an index any more, and every page of jobs keeps 60 % of its
-- room free for the new row versions, which the lease makes longer (fillfactor; a burst
-- acquisition leases every row of a page: at 50, a quarter of 30,000 timer leases still left
-- their page; at 40, none). Before, each lease wrote a new entry into each of the table's seven
-- indexes for a row that the firing deletes moments later: 22 µs of PostgreSQL time per timer,
-- as much as the firing's own instance update (docs/benchmarks.md, "Session 13"). The
-- scheduler's question that index served (when the first locked timer's lease runs out) is
-- answered from the due-time index instead (postgres_store.cpp, next_timer_due). Pages written
-- before this step stay as full as they are; new pages get the room.
DROP INDEX jobs_lock_expires_idx;
ALTER TABLE jobs SET (fillfactor = 40);
