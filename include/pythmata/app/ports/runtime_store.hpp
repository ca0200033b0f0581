#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/app/records.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/common/time.hpp"

namespace pythmata::app {

// ---------------------------------------------------------------------------------------------
// Rows. Plain data, no engine types: the app translates engine effects into these, the store
// writes them. Ids are UUID strings; `wait_id` is the engine's per-instance WaitId, so a row of
// user_tasks / jobs / subscriptions is (instance_id, wait_id) to the engine and `id` to clients.
// Every instant is a TimePoint (stored as epoch milliseconds).
// ---------------------------------------------------------------------------------------------

/// API status strings: "RUNNING", "SUSPENDED", "ERROR", "COMPLETED", "CANCELLED".
struct InstanceRow {
    std::string id;
    std::string definition_id;
    std::string process_key;
    int process_version = 0;
    std::optional<std::string> business_key;
    std::string status = "RUNNING";
    nlohmann::json variables = nlohmann::json::object();
    std::string state;  ///< engine InstanceState::serialize(); empty in list queries
    /// Optimistic lock: incremented by every update; an update whose expected version differs
    /// from the stored one fails the whole batch with DB_CONFLICT. Inserts store this value;
    /// updates store expected_version + 1 whatever this says.
    std::int64_t version = 0;
    std::optional<std::string> parent_instance_id;  ///< call activities: the calling instance
    std::optional<std::uint64_t> parent_wait_id;    ///< ... and its call wait
    std::vector<std::string> active_elements;       ///< element ids where tokens wait
    std::int64_t open_incidents = 0;                ///< maintained by the store from incident rows
    TimePoint created_at{};
    TimePoint updated_at{};
    std::optional<TimePoint> ended_at;
};

enum class WaitRowKind : std::uint8_t { kUserTask, kJob, kTimer, kMessage, kSignal };

/// A wait the store persists so that it can be found from outside the instance: a user task
/// (user_tasks), an external job or a timer (jobs, kind 'job' / 'timer'), a message or signal
/// subscription. Timer and message/signal *start events* are rows with definition_id set and
/// instance_id empty (wait_id 0).
struct WaitRow {
    std::string id;  ///< UUID: the task / job / timer / subscription id clients see
    WaitRowKind kind = WaitRowKind::kUserTask;
    std::string instance_id;  ///< empty for start-event rows
    std::optional<std::string>
        definition_id;  ///< start-event rows (and jobs/timers: the instance's definition)
    std::uint64_t wait_id = 0;
    std::string element_id;
    std::string name;  ///< task name / message name / signal name / job type / timer: element name
    // User tasks.
    std::optional<std::string> assignee;
    std::vector<std::string> candidate_groups;
    std::optional<TimePoint> due_at;  ///< task due date; timers and jobs: when due (jobs: now)
    // Timers: firings left after the next one (-1 unbounded, 0 none); the repeat text for GET
    // /timers.
    std::int64_t repeat = 0;
    // Jobs.
    int retries = 3;
    nlohmann::json payload = nlohmann::json::object();  ///< jobs: {"variables","headers","service"}
    // Messages.
    std::optional<std::string> correlation_key;
    TimePoint created_at{};
};

enum class HistoryEventKind : std::uint8_t {
    kStarted,
    kCompleted,
    kCancelled,
    kTerminated,
    kFailed
};

struct HistoryRow {
    std::string instance_id;
    std::string element_id;
    std::string element_type;  ///< BPMN local name, e.g. "userTask"
    std::string name;
    HistoryEventKind event = HistoryEventKind::kStarted;
    TimePoint at{};
};

struct IncidentRow {
    std::string id;  ///< UUID
    std::string instance_id;
    std::uint64_t engine_incident_id = 0;  ///< the engine's IncidentId within the instance
    std::optional<std::string> job_id;
    std::string element_id;
    std::string kind;  ///< EXPRESSION, SCRIPT, JOB_FAILED, ...
    std::string message;
    std::string state = "OPEN";  ///< OPEN | RESOLVED
    TimePoint created_at{};
    std::optional<TimePoint> resolved_at;
};

/// Tables of wait rows (WaitRowKind: user tasks; jobs and timers; messages; signals).
struct WaitTables {
    bool user_tasks = true;
    bool jobs = true;
    bool messages = true;
    bool signals = true;
};

/// Everything one instance's command(s) changed, written in the batch's transaction.
struct InstanceWrite {
    InstanceRow instance;  ///< the full new row (state included)
    bool insert = false;  ///< true: a new instance; false: update where version == expected_version
    std::int64_t expected_version = 0;
    /// Waits, history and incident rows with an empty instance_id belong to `instance`. An update
    /// rewrites business_key, status, variables, state, active_elements, updated_at, ended_at.
    std::vector<WaitRow> waits_opened;
    /// Engine wait ids of this instance that closed. User tasks become COMPLETED (when in
    /// `tasks_completed`) or CANCELLED with completed_at = instance.updated_at; jobs, timers and
    /// subscriptions are deleted. Applied BEFORE `waits_opened`: a cycle timer that fired and
    /// re-armed keeps its wait id, so it is listed here (its old row goes) and in waits_opened
    /// (its new row, new id, next due time).
    std::vector<std::uint64_t> waits_closed;
    /// The tables that can hold rows of `waits_closed` (from the closed waits' kinds): the store
    /// closes them only there. Every table unless the writer says otherwise.
    WaitTables closed_in;
    std::vector<std::uint64_t> tasks_completed;
    std::vector<HistoryRow> history;
    std::vector<IncidentRow> incidents_opened;
    std::vector<std::uint64_t> incidents_resolved;  ///< engine incident ids of this instance
};

/// A stored answer to an Idempotency-Key request.
struct IdempotencyRecord {
    std::string key;
    std::string request_hash;  ///< SHA-256 of method, path and body
    int status = 0;
    std::string body;
    TimePoint created_at{};
};

/// An effect to carry out after its batch commits (the outbox): written in the SAME transaction
/// as the state change that caused it, deleted once its delivery is committed, and re-delivered
/// by any replica (InstanceRuntime's outbox sweeper) when it outlives `outbox_grace_ms`.
struct OutboxRow {
    std::string id;  ///< UUID
    /// "child_start" | "parent_notice" | "cancel_child" | "signal" | "message"
    std::string kind;
    nlohmann::json payload = nlohmann::json::object();  ///< kind-specific, written by the app
    TimePoint created_at{};
    std::optional<std::string> lock_owner;  ///< set by acquire_outbox
    std::optional<TimePoint> lock_expires_at;
};

/// One group commit: every write in ONE transaction, one multi-row statement per table.
struct Batch {
    std::vector<InstanceWrite> instances;
    /// Final answers of Idempotency-Key requests made durable with the batch (upsert by key).
    std::vector<IdempotencyRecord> idempotency;
    /// Start-event rows (timer / message / signal start events) of definitions: replaces every
    /// start-event row of each listed definition id.
    std::vector<std::pair<std::string, std::vector<WaitRow>>> start_events;
    /// Outbox rows the batch's instance writes caused (inserted).
    std::vector<OutboxRow> outbox;
    /// Ids of outbox rows whose delivery this batch commits (deleted; an unknown id is no error).
    std::vector<std::string> outbox_done;
};

// ---------------------------------------------------------------------------------------------
// Queries.
// ---------------------------------------------------------------------------------------------

/// created_after and created_before are exclusive bounds.
struct InstanceFilter {
    std::optional<std::string> status;
    std::optional<std::string> process_key;
    std::optional<std::string> business_key;
    std::optional<TimePoint> created_after;
    std::optional<TimePoint> created_before;
};

struct TaskRow {
    std::string id;
    std::string instance_id;
    std::uint64_t wait_id = 0;
    std::string process_key;
    std::string element_id;
    std::string name;
    std::optional<std::string> assignee;
    std::vector<std::string> candidate_groups;
    std::string state;  ///< OPEN | COMPLETED | CANCELLED
    TimePoint created_at{};
    std::optional<TimePoint> due_at;
    std::optional<TimePoint> completed_at;
};

struct TaskFilter {
    std::optional<std::string> instance_id;
    std::optional<std::string> process_key;
    std::optional<std::string> assignee;
    std::optional<std::string> candidate_group;
    std::optional<std::string> element_id;
    std::string state = "OPEN";  ///< empty: any state
};

/// A job or timer row as acquired or listed.
struct JobRow {
    std::string id;
    std::string kind;  ///< "job" | "timer"
    std::string type;  ///< job type; timers: "timer" (instance) or "timer-start" (start event)
    std::string instance_id;  ///< empty for timer start events
    std::optional<std::string> definition_id;
    std::uint64_t wait_id = 0;
    std::string element_id;
    TimePoint due_at{};
    std::int64_t repeat = 0;
    std::optional<std::string> lock_owner;
    std::optional<TimePoint> lock_expires_at;
    int retries = 0;
    std::optional<std::string> error_message;
    nlohmann::json payload = nlohmann::json::object();
    TimePoint created_at{};
};

/// A subscription that matched a message or signal.
struct SubscriptionRow {
    std::string id;
    std::string instance_id;  ///< empty: a start event of definition_id
    std::optional<std::string> definition_id;
    std::uint64_t wait_id = 0;
    std::string element_id;
};

struct IncidentFilter {
    std::optional<std::string> instance_id;
    std::optional<std::string> state;  ///< OPEN | RESOLVED
};

struct InstanceCounts {
    std::int64_t running = 0, suspended = 0, error = 0, completed = 0, cancelled = 0;
    std::int64_t open_tasks = 0, pending_jobs = 0, pending_timers = 0, open_incidents = 0;
};

/// Which process keys a history retention batch may touch: every key, only `keys`, or every key
/// but `keys` (per-process retention overrides sweep their own keys and exclude them from the
/// default sweep).
struct ProcessKeyFilter {
    enum class Mode { kAll, kOnly, kExcept };
    Mode mode = Mode::kAll;
    std::vector<std::string> keys;

    [[nodiscard]] static ProcessKeyFilter all() { return {}; }
    [[nodiscard]] static ProcessKeyFilter only(std::vector<std::string> keys) {
        return {Mode::kOnly, std::move(keys)};
    }
    [[nodiscard]] static ProcessKeyFilter except(std::vector<std::string> keys) {
        return {Mode::kExcept, std::move(keys)};
    }
    /// Whether an instance of `process_key` passes the filter.
    [[nodiscard]] bool admits(const std::string& process_key) const {
        const bool listed = std::find(keys.begin(), keys.end(), process_key) != keys.end();
        return mode == Mode::kAll || (mode == Mode::kOnly ? listed : !listed);
    }
};

/// What one history retention batch deleted.
struct RetentionResult {
    std::int64_t instances = 0;  ///< ended instances (their tasks, waits and incidents cascade)
    /// History entries (activities, as GET .../activities lists them) of those instances, not
    /// stored rows: a stored row holds one commit's entries of one instance.
    std::int64_t history = 0;
};

/// Outcome of claiming an Idempotency-Key before running the request.
struct IdempotencyClaim {
    bool claimed = false;  ///< true: first use; run the request
    std::optional<IdempotencyRecord>
        stored;  ///< false: the first request's record (status 0 = still in flight)
};

/// Runtime storage of instances and everything that waits. Implemented by store/sqlite and
/// store/postgres, both passing tests/integration/store's runtime suite. Thread-safe; calls block
/// (never on I/O threads). Failures are values: DB_UNAVAILABLE / DB_POOL_TIMEOUT / DB_TIMEOUT
/// (kUnavailable, retry_after_seconds), DB_CONFLICT (kConflict) for a stale expected_version or
/// a duplicate id.
class RuntimeStore {
  public:
    virtual ~RuntimeStore() = default;

    /// Writes the batch in ONE transaction with one multi-row statement per table, or nothing.
    [[nodiscard]] virtual Status commit(const Batch& batch) = 0;

    [[nodiscard]] virtual Result<std::optional<InstanceRow>> instance(const std::string& id,
                                                                      bool with_state) = 0;
    /// The instances of `ids` in one call (unknown ids are left out; any order). A store with
    /// round trips overrides it with one query; this default asks `instance` once per id.
    [[nodiscard]] virtual Result<std::vector<InstanceRow>> instances(
        const std::vector<std::string>& ids, bool with_state) {
        std::vector<InstanceRow> rows;
        for (const auto& id : ids) {
            auto row = instance(id, with_state);
            if (!row) {
                return std::move(row).error();
            }
            if (row.value()) {
                rows.push_back(std::move(*row.value()));
            }
        }
        return rows;
    }
    /// Newest first, without state.
    [[nodiscard]] virtual Result<PageResult<InstanceRow>> list_instances(
        const InstanceFilter& filter, const PageRequest& page) = 0;
    /// Ids of every RUNNING / SUSPENDED / ERROR instance of `process_key` (for DELETE cascade).
    [[nodiscard]] virtual Result<std::vector<std::string>> unfinished_instances(
        const std::string& process_key) = 0;

    [[nodiscard]] virtual Result<std::optional<TaskRow>> task(const std::string& id) = 0;
    [[nodiscard]] virtual Result<PageResult<TaskRow>> list_tasks(const TaskFilter& filter,
                                                                 const PageRequest& page) = 0;
    /// Sets the assignee of an OPEN task; false when the task is not OPEN or unknown.
    [[nodiscard]] virtual Result<bool> claim_task(const std::string& id,
                                                  const std::string& assignee) = 0;

    /// The oldest instance subscription to message `name` with `correlation_key` (nullopt: any
    /// key), else a message start event of the latest version of a definition.
    [[nodiscard]] virtual Result<std::optional<SubscriptionRow>> find_message_subscription(
        const std::string& name, const std::optional<std::string>& correlation_key) = 0;
    /// Every instance subscription and every start event (latest definition versions) of signal
    /// `name`.
    [[nodiscard]] virtual Result<std::vector<SubscriptionRow>> signal_subscriptions(
        const std::string& name) = 0;

    /// Locks up to `max` due jobs of `type` (FOR UPDATE SKIP LOCKED, or the SQLite equivalent)
    /// whose lock is free or expired, for `owner` until `lock_until`, and returns them.
    [[nodiscard]] virtual Result<std::vector<JobRow>> acquire_jobs(const std::string& type,
                                                                   const std::string& owner,
                                                                   int max, TimePoint now,
                                                                   TimePoint lock_until) = 0;
    /// Same for timers (instance timers and timer start events) due at or before `now`.
    [[nodiscard]] virtual Result<std::vector<JobRow>> acquire_timers(const std::string& owner,
                                                                     int max, TimePoint now,
                                                                     TimePoint lock_until) = 0;
    [[nodiscard]] virtual Result<std::optional<JobRow>> job(const std::string& id) = 0;
    /// A failed attempt: sets retries, error_message, due_at = retry_at and frees the lock. A job
    /// with 0 retries is never acquired again. JOB_NOT_FOUND (kNotFound) for an unknown id.
    [[nodiscard]] virtual Status fail_job(const std::string& id, int retries,
                                          const std::string& error_message, TimePoint retry_at) = 0;
    /// Timer start events after a firing: next due time (lock freed), or deleted when nullopt.
    /// TIMER_NOT_FOUND (kNotFound) for an unknown id.
    [[nodiscard]] virtual Status reschedule_timer(const std::string& id,
                                                  std::optional<TimePoint> next_due,
                                                  std::int64_t repeat) = 0;
    /// The earliest due_at of any timer, for the scheduler's sleep; a locked timer counts from
    /// when its lock expires (so that timers being fired do not wake the scheduler again).
    [[nodiscard]] virtual Result<std::optional<TimePoint>> next_timer_due() = 0;
    /// One page of the timers (of one instance, or all), in due order.
    [[nodiscard]] virtual Result<PageResult<JobRow>> list_timers(
        const std::optional<std::string>& instance_id, const PageRequest& page) = 0;

    [[nodiscard]] virtual Result<std::optional<IncidentRow>> incident(const std::string& id) = 0;
    [[nodiscard]] virtual Result<PageResult<IncidentRow>> list_incidents(
        const IncidentFilter& filter, const PageRequest& page) = 0;
    /// History of one instance in the order it happened; `page` counts entries (the store keeps
    /// one row per instance per commit and flattens them).
    [[nodiscard]] virtual Result<PageResult<HistoryRow>> history(const std::string& instance_id,
                                                                 const PageRequest& page) = 0;

    /// Records `key` as in flight with `request_hash`, or returns the stored record when the key
    /// exists (created after `not_before`; older records are replaced).
    [[nodiscard]] virtual Result<IdempotencyClaim> claim_idempotency_key(
        const std::string& key, const std::string& request_hash, TimePoint now,
        TimePoint not_before) = 0;
    /// Drops an in-flight key whose request failed (so a retry may run); a key with a stored
    /// answer stays.
    [[nodiscard]] virtual Status release_idempotency_key(const std::string& key) = 0;

    [[nodiscard]] virtual Result<InstanceCounts> counts() = 0;

    /// Outbox recovery: locks up to `max` outbox rows created at or before `created_before`
    /// whose lock is free or expired at `now` (FOR UPDATE SKIP LOCKED, or the SQLite
    /// single-writer equivalent), oldest first, for `owner` until `lock_until`, and returns them.
    [[nodiscard]] virtual Result<std::vector<OutboxRow>> acquire_outbox(const std::string& owner,
                                                                        int max,
                                                                        TimePoint created_before,
                                                                        TimePoint now,
                                                                        TimePoint lock_until) = 0;
    /// Deletes delivered outbox rows in one statement; unknown ids are ignored.
    [[nodiscard]] virtual Status delete_outbox(const std::vector<std::string>& ids) = 0;
    /// Whether outbox row `id` is still there (not yet delivered).
    [[nodiscard]] virtual Result<bool> outbox_row_exists(const std::string& id) = 0;
    /// Outbox rows not yet delivered (the pending gauge).
    [[nodiscard]] virtual Result<std::int64_t> outbox_pending() = 0;

    /// True when a Batch::start_events entry of `definition_id` was ever committed (the
    /// definition's start-event rows were written, even as none). A deploy whose start-event
    /// write failed has none, and an identical redeploy repairs it.
    [[nodiscard]] virtual Result<bool> start_events_written(const std::string& definition_id) = 0;

    /// History retention: in ONE short transaction, deletes up to `max_instances` instances that
    /// ended (COMPLETED / CANCELLED) before `cutoff` and have no child instance left, oldest
    /// first, with their history rows (tasks, waits and incidents cascade). A parent goes in a
    /// later batch than its children. Call again until it deletes fewer than `max_instances`.
    /// Only instances whose process key `filter` admits are considered (kOnly with no keys
    /// deletes nothing; kExcept with no keys is kAll).
    [[nodiscard]] virtual Result<RetentionResult> delete_ended_instances(
        TimePoint cutoff, std::size_t max_instances, const ProcessKeyFilter& filter) = 0;
};

}  // namespace pythmata::app
