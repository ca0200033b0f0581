-- Runtime rows the app's RuntimeStore port needs: the engine's per-instance wait and incident ids
-- on every row that stands for a wait or an incident, the instance's waiting elements and parent
-- call wait, a maintained count of open incidents, timer repeats, and an index per query.

ALTER TABLE instances ADD COLUMN active_elements text NOT NULL DEFAULT '[]';
ALTER TABLE instances ADD COLUMN parent_wait_id bigint;
-- Kept equal to the OPEN incidents of the instance by every commit that opens or resolves one.
ALTER TABLE instances ADD COLUMN open_incidents bigint NOT NULL DEFAULT 0;

ALTER TABLE user_tasks ADD COLUMN wait_id bigint NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN wait_id bigint NOT NULL DEFAULT 0;
-- Timers: firings left after the next one (-1 unbounded, 0 none).
ALTER TABLE jobs ADD COLUMN repeat_count bigint NOT NULL DEFAULT 0;
ALTER TABLE message_subscriptions ADD COLUMN wait_id bigint NOT NULL DEFAULT 0;
ALTER TABLE signal_subscriptions ADD COLUMN wait_id bigint NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN engine_incident_id bigint NOT NULL DEFAULT 0;

-- (instance, wait) lookups of closed waits; they replace the instance-only indexes.
DROP INDEX user_tasks_instance_idx;
CREATE INDEX user_tasks_wait_idx ON user_tasks (instance_id, wait_id);
DROP INDEX jobs_instance_idx;
CREATE INDEX jobs_wait_idx ON jobs (instance_id, wait_id) WHERE instance_id IS NOT NULL;
DROP INDEX message_subscriptions_instance_idx;
CREATE INDEX message_subscriptions_wait_idx ON message_subscriptions (instance_id, wait_id)
    WHERE instance_id IS NOT NULL;
DROP INDEX signal_subscriptions_instance_idx;
CREATE INDEX signal_subscriptions_wait_idx ON signal_subscriptions (instance_id, wait_id)
    WHERE instance_id IS NOT NULL;
DROP INDEX incidents_instance_idx;
CREATE INDEX incidents_engine_idx ON incidents (instance_id, engine_incident_id, state);

-- Message correlation: oldest subscription of a name (and key) first.
DROP INDEX message_subscriptions_name_idx;
CREATE INDEX message_subscriptions_name_idx ON message_subscriptions
    (name, correlation_key, created_at);
-- Due timers in due order, and the earliest due time.
CREATE INDEX jobs_timer_due_idx ON jobs (due_at) WHERE kind = 'timer';
-- Instance lists filtered by process or business key, newest first.
CREATE INDEX instances_process_key_created_idx ON instances (process_key, created_at DESC);
-- Task lists by instance or element, newest first.
CREATE INDEX user_tasks_element_idx ON user_tasks (element_id, state, created_at DESC);
