-- The open tasks of one instance (GET /tasks?instance_id=..., which filters on state too) and the
-- closing of a task wait (instance, wait, state = 'OPEN') from one index. With only
-- (instance_id, wait_id) beside (state, created_at), the planner ANDed both bitmaps: the
-- state = 'OPEN' half visits an index entry for every task that was open since the last vacuum
-- (completing a task moves it out of the OPEN range only in a new index entry; the old one stays
-- until vacuum), i.e. thousands of entries per page request under load. Here such dead entries
-- are only those of the same instance.
DROP INDEX user_tasks_wait_idx;
CREATE INDEX user_tasks_instance_state_idx ON user_tasks (instance_id, state, wait_id);
