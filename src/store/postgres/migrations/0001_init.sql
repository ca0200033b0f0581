-- Pythmata schema, PostgreSQL. Conventions shared with the SQLite schema:
--   * every instant is a bigint of milliseconds since the Unix epoch, UTC (pythmata::to_epoch_ms);
--   * ids are UUIDs; JSON is jsonb; engine state is bytea;
--   * rows that belong to an instance cascade when it is deleted; history has no foreign key (it
--     is most of the rows and is written in multi-row batches) and is deleted explicitly.

CREATE TABLE definitions (
    id          uuid PRIMARY KEY,
    key         text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    name        text NOT NULL DEFAULT '',
    bpmn_xml    text NOT NULL,
    hash        text NOT NULL,
    created_at  bigint NOT NULL,
    CONSTRAINT definitions_key_version_uq UNIQUE (key, version)
);
CREATE INDEX definitions_created_at_idx ON definitions (created_at DESC);

CREATE TABLE instances (
    id                  uuid PRIMARY KEY,
    definition_id       uuid NOT NULL REFERENCES definitions (id) ON DELETE CASCADE,
    process_key         text NOT NULL,
    process_version     integer NOT NULL,
    business_key        text,
    status              text NOT NULL
        CHECK (status IN ('RUNNING', 'SUSPENDED', 'ERROR', 'COMPLETED', 'CANCELLED')),
    variables           jsonb NOT NULL DEFAULT '{}'::jsonb,
    state               bytea,
    version             bigint NOT NULL DEFAULT 0,
    parent_instance_id  uuid REFERENCES instances (id) ON DELETE CASCADE,
    created_at          bigint NOT NULL,
    updated_at          bigint NOT NULL,
    ended_at            bigint
);
CREATE INDEX instances_status_idx ON instances (status, created_at DESC);
CREATE INDEX instances_definition_idx ON instances (definition_id);
CREATE INDEX instances_process_key_idx ON instances (process_key, status);
CREATE INDEX instances_business_key_idx ON instances (business_key) WHERE business_key IS NOT NULL;
CREATE INDEX instances_parent_idx ON instances (parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
CREATE INDEX instances_created_at_idx ON instances (created_at DESC);

CREATE TABLE user_tasks (
    id                uuid PRIMARY KEY,
    instance_id       uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    element_id        text NOT NULL,
    token_id          text,
    name              text NOT NULL DEFAULT '',
    assignee          text,
    candidate_users   jsonb NOT NULL DEFAULT '[]'::jsonb,
    candidate_groups  jsonb NOT NULL DEFAULT '[]'::jsonb,
    form_key          text,
    state             text NOT NULL CHECK (state IN ('OPEN', 'COMPLETED', 'CANCELLED')),
    created_at        bigint NOT NULL,
    due_at            bigint,
    completed_at      bigint
);
CREATE INDEX user_tasks_instance_idx ON user_tasks (instance_id);
CREATE INDEX user_tasks_state_idx ON user_tasks (state, created_at DESC);
CREATE INDEX user_tasks_assignee_idx ON user_tasks (assignee, state) WHERE assignee IS NOT NULL;

-- External jobs and timers. A row is due when due_at <= now; it is acquired with
-- SELECT ... WHERE kind = $1 AND type = $2 AND due_at <= $now
--   AND (lock_expires_at IS NULL OR lock_expires_at < $now) ORDER BY due_at
--   FOR UPDATE SKIP LOCKED LIMIT n
-- so that replicas share the work and a crashed replica's locks expire.
CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('job', 'timer')),
    type             text NOT NULL,
    instance_id      uuid REFERENCES instances (id) ON DELETE CASCADE,
    definition_id    uuid REFERENCES definitions (id) ON DELETE CASCADE,
    element_id       text NOT NULL,
    token_id         text,
    due_at           bigint NOT NULL,
    repeat           text,
    lock_owner       text,
    lock_expires_at  bigint,
    retries          integer NOT NULL DEFAULT 3,
    error_message    text,
    payload          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       bigint NOT NULL
);
CREATE INDEX jobs_acquire_idx ON jobs (kind, type, due_at) WHERE retries > 0;
CREATE INDEX jobs_due_idx ON jobs (due_at) WHERE retries > 0;
CREATE INDEX jobs_lock_expires_idx ON jobs (lock_expires_at) WHERE lock_expires_at IS NOT NULL;
CREATE INDEX jobs_instance_idx ON jobs (instance_id) WHERE instance_id IS NOT NULL;
CREATE INDEX jobs_definition_idx ON jobs (definition_id) WHERE definition_id IS NOT NULL;

-- Waiting message catch events (instance_id set) and message start events (definition_id set).
CREATE TABLE message_subscriptions (
    id               uuid PRIMARY KEY,
    name             text NOT NULL,
    correlation_key  text,
    instance_id      uuid REFERENCES instances (id) ON DELETE CASCADE,
    definition_id    uuid REFERENCES definitions (id) ON DELETE CASCADE,
    element_id       text NOT NULL,
    token_id         text,
    created_at       bigint NOT NULL,
    CHECK (instance_id IS NOT NULL OR definition_id IS NOT NULL)
);
CREATE INDEX message_subscriptions_name_idx ON message_subscriptions (name, correlation_key);
CREATE INDEX message_subscriptions_instance_idx ON message_subscriptions (instance_id)
    WHERE instance_id IS NOT NULL;
CREATE INDEX message_subscriptions_definition_idx ON message_subscriptions (definition_id)
    WHERE definition_id IS NOT NULL;

CREATE TABLE signal_subscriptions (
    id             uuid PRIMARY KEY,
    name           text NOT NULL,
    instance_id    uuid REFERENCES instances (id) ON DELETE CASCADE,
    definition_id  uuid REFERENCES definitions (id) ON DELETE CASCADE,
    element_id     text NOT NULL,
    token_id       text,
    created_at     bigint NOT NULL,
    CHECK (instance_id IS NOT NULL OR definition_id IS NOT NULL)
);
CREATE INDEX signal_subscriptions_name_idx ON signal_subscriptions (name);
CREATE INDEX signal_subscriptions_instance_idx ON signal_subscriptions (instance_id)
    WHERE instance_id IS NOT NULL;
CREATE INDEX signal_subscriptions_definition_idx ON signal_subscriptions (definition_id)
    WHERE definition_id IS NOT NULL;

CREATE TABLE incidents (
    id           uuid PRIMARY KEY,
    instance_id  uuid NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    job_id       uuid,
    element_id   text NOT NULL,
    kind         text NOT NULL,
    message      text NOT NULL DEFAULT '',
    state        text NOT NULL CHECK (state IN ('OPEN', 'RESOLVED')),
    created_at   bigint NOT NULL,
    resolved_at  bigint
);
CREATE INDEX incidents_instance_idx ON incidents (instance_id);
CREATE INDEX incidents_state_idx ON incidents (state, created_at DESC);

-- Activity history: compact and append-only, ordered by id within an instance.
CREATE TABLE history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id   uuid NOT NULL,
    element_id    text NOT NULL,
    element_type  text NOT NULL,
    name          text,
    event         text NOT NULL
        CHECK (event IN ('STARTED', 'COMPLETED', 'CANCELLED', 'TERMINATED', 'FAILED')),
    at            bigint NOT NULL
);
CREATE INDEX history_instance_idx ON history (instance_id, id);

-- Idempotency-Key replays: status is NULL while the first request is in flight.
CREATE TABLE idempotency_keys (
    key           text PRIMARY KEY,
    request_hash  text NOT NULL,
    status        integer,
    body          text,
    created_at    bigint NOT NULL
);
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
