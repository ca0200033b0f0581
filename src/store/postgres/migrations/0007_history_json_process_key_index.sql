-- History's `events` as json (the text as written, checked to be valid JSON) instead of jsonb.
-- Nothing queries inside it but the history page, which unpacks the arrays of the few rows it
-- overlaps; converting each commit's array to jsonb was most of the row's insert cost (psql
-- micro-test, rows shaped like bench/models/straight.bpmn's 16 entries: ~57 -> ~32 us per row).
-- For those rows json is also smaller (1.5 KB against 1.9 KB). A row whose jsonb passes the 2 KB
-- TOAST threshold was compressed as jsonb; as json text it is compressed only past the same
-- threshold of its (shorter) text. See docs/benchmarks.md, "History as json, instances indexes
-- (session 4)".
ALTER TABLE history ALTER COLUMN events TYPE json USING events::json;

-- The unfinished instances of a process key (the count and the id list of a process delete, a
-- list filtered by key and an unfinished status) from a partial index. An instance inserted
-- already ended (a straight-through start) gets no entry in it, and an instance's update to an
-- ended status adds none, where (process_key, status) took one entry per insert and per
-- non-HOT update. Lists by key and an ended status, and deletes by key, use
-- instances_process_key_created_idx (EXPLAIN on 200k rows in docs/benchmarks.md).
DROP INDEX instances_process_key_idx;
CREATE INDEX instances_process_key_unfinished_idx ON instances (process_key, status)
    WHERE status IN ('RUNNING', 'SUSPENDED', 'ERROR');
