-- PostgreSQL's step 12 takes the lease columns out of every index, so that a lease is a HOT
-- update there (see its file). SQLite updates an index only when a column of it changes: without
-- this index a lease changes none. The scheduler's next due time is read from the due-time index
-- as on PostgreSQL (sqlite_store.cpp, next_timer_due).
DROP INDEX jobs_lock_expires_idx;
