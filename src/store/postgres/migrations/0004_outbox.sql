-- The outbox: effects carried out after a batch commits (thrown signals and messages, child
-- instance starts, a child's answer to its parent, cancelling a child), written in the same
-- transaction as the state change that caused them and deleted once delivered. A replica's
-- sweeper re-delivers rows that outlive outbox_grace_ms (FOR UPDATE SKIP LOCKED, lock expiry).
CREATE TABLE outbox (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       bigint NOT NULL,
    lock_owner       text,
    lock_expires_at  bigint
);
-- Acquisition: oldest rows first.
CREATE INDEX outbox_created_idx ON outbox (created_at);

-- Definitions whose start-event rows were written (possibly as none): a deploy whose start-event
-- write failed has no mark, and an identical redeploy writes them then.
CREATE TABLE start_event_marks (
    definition_id  uuid PRIMARY KEY REFERENCES definitions (id) ON DELETE CASCADE
);
-- Definitions deployed before this migration had their start events written at deploy.
INSERT INTO start_event_marks (definition_id) SELECT id FROM definitions;
