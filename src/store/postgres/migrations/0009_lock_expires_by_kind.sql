-- The locked rows of jobs by kind first. The scheduler asks on every pass when the next timer
-- is due, locked timers included (`kind = 'timer' AND lock_expires_at IS NOT NULL`); by lock
-- expiry alone that read every job a worker holds too (0.5-2 ms with 2,000 activated jobs,
-- growing with them; docs/benchmarks.md, "Session 7"). The index holds the same rows as before.
DROP INDEX jobs_lock_expires_idx;
CREATE INDEX jobs_lock_expires_idx ON jobs (kind, lock_expires_at)
    WHERE lock_expires_at IS NOT NULL;
