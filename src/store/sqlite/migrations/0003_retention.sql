-- History retention (RuntimeStore::delete_ended_instances) finds ended instances by end time.
CREATE INDEX instances_ended_at_idx ON instances (ended_at) WHERE ended_at IS NOT NULL;
