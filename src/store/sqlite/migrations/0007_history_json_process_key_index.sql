-- Same step as the PostgreSQL schema. History's `events` is already text here (the PostgreSQL
-- half changes its jsonb column to json). The unfinished instances of a process key from a
-- partial index: an instance that has ended leaves no entry in it. The queries that use it spell
-- the predicate exactly as below (store::kUnfinishedStatuses), as SQLite needs to match it.
DROP INDEX instances_process_key_idx;
CREATE INDEX instances_process_key_unfinished_idx ON instances (process_key, status)
    WHERE status IN ('RUNNING', 'SUSPENDED', 'ERROR');
