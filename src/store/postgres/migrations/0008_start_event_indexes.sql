-- The start-event rows of the wait tables (no instance: a definition's timer, message and signal
-- start events) get indexes of their own. Deploying a new version clears the start events of
-- the key's older versions (`definition_id = ANY($1) AND instance_id IS NULL`) and a message
-- that no instance waits for looks for a message start event by name; the indexes by
-- definition and by name also hold every instance's wait rows, so on a large table the plan
-- was a sequential scan (a plan review on 107,000 jobs: docs/benchmarks.md, "Session 7").
-- These hold a few rows per definition: an instance's waits add no entry.
CREATE INDEX jobs_start_event_idx ON jobs (definition_id) WHERE instance_id IS NULL;
CREATE INDEX message_subscriptions_start_event_idx ON message_subscriptions (definition_id)
    WHERE instance_id IS NULL;
CREATE INDEX message_subscriptions_start_name_idx ON message_subscriptions (name)
    WHERE instance_id IS NULL;
CREATE INDEX signal_subscriptions_start_event_idx ON signal_subscriptions (definition_id)
    WHERE instance_id IS NULL;
