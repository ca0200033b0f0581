-- PostgreSQL's step 11 writes a new instance's first commit of history in its instances row
-- (one statement, row and index entries fewer per start; see its file). SQLite writes every
-- commit of history as a row, as before: its inserts are calls into the same process, which
-- that saving does not move. The step exists so that both backends keep the same numbered
-- steps.
SELECT 1;
