-- A new instance's first commit of history (its entries as one json array, as a history row
-- holds them) is written in its instances row, not as a history row: a straight-through start
-- is then one row and five index entries instead of two rows and seven, one statement fewer
-- per batch (docs/benchmarks.md, "Session 10"). Later commits add history rows as before; a
-- history page reads this chunk first (it is always the instance's first), then the rows by id.
-- Rows written before have 0 entries here and all of their history in rows.
ALTER TABLE instances ADD COLUMN history_entries integer NOT NULL DEFAULT 0,
    ADD COLUMN history_events json;
