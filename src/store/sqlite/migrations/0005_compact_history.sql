-- History kept compact: ONE row per instance per commit instead of one row per event. `events`
-- is a JSON array of the commit's entries in the order they happened, each
-- {"element_id", "element_type", "name", "event", "at"} (event: STARTED, COMPLETED, CANCELLED,
-- TERMINATED or FAILED; at: epoch milliseconds); `entries` is its length, so that counting and
-- paging need not parse it. Rows of an instance are ordered by id; GET .../activities pages over
-- the flattened entries.
CREATE TABLE history_compact (
    id           integer PRIMARY KEY AUTOINCREMENT,
    instance_id  text NOT NULL,
    entries      integer NOT NULL CHECK (entries > 0),
    events       text NOT NULL
);

-- The rows written before this migration, one entry each, in their order.
INSERT INTO history_compact (instance_id, entries, events)
SELECT instance_id, 1,
       json_array(json_object('element_id', element_id, 'element_type', element_type,
                              'name', coalesce(name, ''), 'event', event, 'at', at))
FROM history ORDER BY id;

DROP TABLE history;
ALTER TABLE history_compact RENAME TO history;
CREATE INDEX history_instance_idx ON history (instance_id, id);
