-- History kept compact: ONE row per instance per commit instead of one row per event. `events`
-- is a JSON array of the commit's entries in the order they happened, each
-- {"element_id", "element_type", "name", "event", "at"} (event: STARTED, COMPLETED, CANCELLED,
-- TERMINATED or FAILED; at: epoch milliseconds); `entries` is its length, so that counting and
-- paging need not parse it. Rows of an instance are ordered by id; GET .../activities pages over
-- the flattened entries.
CREATE TABLE history_compact (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id  uuid NOT NULL,
    entries      integer NOT NULL CHECK (entries > 0),
    events       jsonb NOT NULL
);

-- The rows written before this migration: one row per instance, its entries in their order.
INSERT INTO history_compact (instance_id, entries, events)
SELECT instance_id, count(*),
       jsonb_agg(jsonb_build_object('element_id', element_id, 'element_type', element_type,
                                    'name', coalesce(name, ''), 'event', event, 'at', at)
                 ORDER BY id)
FROM history GROUP BY instance_id ORDER BY min(id);

DROP TABLE history;
ALTER TABLE history_compact RENAME TO history;
ALTER INDEX history_compact_pkey RENAME TO history_pkey;
CREATE INDEX history_instance_idx ON history (instance_id, id);
