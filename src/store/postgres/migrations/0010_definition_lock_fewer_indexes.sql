-- Fewer index entries and no per-row trigger for every new instance and history row
-- (docs/benchmarks.md, "Session 10").
--
-- Instances without a foreign key to their definition. The key's trigger ran one
-- `SELECT ... FOR KEY SHARE` on the definition for every inserted instance (about a tenth of
-- PostgreSQL's CPU per straight-through start). The guarantee it gave is kept by the store: a
-- batch's INSERT locks the definitions it names FOR KEY SHARE once and joins them in, so that
-- a vanished one leaves definition_id NULL and fails the statement (DB_CONFLICT, as with the
-- key), and delete_key's last pass locks the key's definitions FOR UPDATE, which waits for the
-- starts in flight, before it deletes the remaining instances and then the definitions.
ALTER TABLE instances DROP CONSTRAINT instances_definition_id_fkey;
-- Only that key's cascade looked instances up by definition; nothing else does.
DROP INDEX instances_definition_idx;
-- History is read and deleted by instance only (ordered by id): its key becomes (instance_id,
-- id), which that index was already, and the separate index on id alone goes.
ALTER TABLE history DROP CONSTRAINT history_pkey;
DROP INDEX history_instance_idx;
ALTER TABLE history ADD CONSTRAINT history_pkey PRIMARY KEY (instance_id, id);
