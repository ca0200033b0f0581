-- Same step as the PostgreSQL schema, and the same index name. History's `events` is already
-- text here (the PostgreSQL half changes its jsonb column to json). On PostgreSQL the index is
-- partial (unfinished instances only); here it stays a full (process_key, status) index under
-- the new name: as a partial index it made every user task start and completion cost about a
-- quarter more server CPU on SQLite (docs/benchmarks.md, "SQLite commit path"), and the queries
-- that spell the unfinished predicate use a full index as well.
DROP INDEX instances_process_key_idx;
CREATE INDEX instances_process_key_unfinished_idx ON instances (process_key, status);
