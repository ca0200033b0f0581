-- Same step as the PostgreSQL schema: one index for the tasks of an instance in a state (the
-- task page by instance) and for closing a task wait (instance, wait, state = 'OPEN').
DROP INDEX user_tasks_wait_idx;
CREATE INDEX user_tasks_instance_state_idx ON user_tasks (instance_id, state, wait_id);
