-- PostgreSQL's step 10 drops the instances' foreign key to their definition (the definitions
-- are locked once per batch instead), the index that served its cascade, and the history
-- index on id alone (see its file). SQLite keeps all three: its key check is an index lookup
-- in the same process, with one writer at a time no start can race a delete, and its history
-- id is the rowid, which costs no index. The step exists so that both backends keep the same
-- numbered steps.
SELECT 1;
