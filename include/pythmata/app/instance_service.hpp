#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/app/records.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/common/time.hpp"

namespace pythmata::app {

// ---------------------------------------------------------------------------------------------
// Views and requests of the runtime use cases (API.md: Instances, User tasks, Messages and
// signals, External jobs, Timers/incidents/clock, stats). Plain data: no engine types; variables
// are JSON objects. The http layer maps them to and from the wire in one place.
// ---------------------------------------------------------------------------------------------

/// A user task as a start or a completion answer names it: enough to complete it next.
struct TaskRef {
    std::string id;
    std::string element_id;
    std::string name;
    bool operator==(const TaskRef&) const = default;
};

/// GET /instances/{id} and every call that answers "the instance".
struct InstanceView {
    std::string id;
    std::string process_key;
    int process_version = 0;
    std::string definition_id;
    std::optional<std::string> business_key;
    /// RUNNING, SUSPENDED, ERROR (uncaught error or an open incident), COMPLETED, CANCELLED.
    std::string status;
    nlohmann::json variables = nlohmann::json::object();
    std::vector<std::string> active_elements;  ///< element ids where tokens wait
    std::int64_t incidents = 0;                ///< open incidents
    std::optional<std::string> parent_instance_id;
    TimePoint created_at{};
    TimePoint updated_at{};
    std::optional<TimePoint> ended_at;
    /// Start and task completion answers only: the user tasks this request opened in the
    /// instance (after a start, all of its open tasks), so a client can complete one without
    /// asking GET /tasks first. Absent from every other answer.
    std::optional<std::vector<TaskRef>> opened_tasks;
};

/// POST /processes/{key}/instances.
struct StartInstanceRequest {
    std::string process_key;
    std::optional<int> version;  ///< none: the latest version
    std::optional<std::string> business_key;
    nlohmann::json variables = nlohmann::json::object();
};

/// GET /instances and GET /processes/{key}/instances filters.
struct InstanceQuery {
    std::optional<std::string> status;
    std::optional<std::string> process_key;
    std::optional<std::string> business_key;
    std::optional<TimePoint> created_after;
    std::optional<TimePoint> created_before;
};

struct TokenView {
    std::string element_id;
    std::string state;  ///< ARRIVING, WAITING, COMPLETING, JOINING, INCIDENT, COMPENSATING
    std::uint32_t scope_id = 0;
};

struct ActivityView {
    std::string element_id;
    std::string element_type;  ///< BPMN local name, e.g. "userTask"
    std::string name;
    std::string event;  ///< STARTED, COMPLETED, CANCELLED, TERMINATED, FAILED
    TimePoint at{};
};

struct TaskView {
    std::string id;
    std::string instance_id;
    std::string process_key;
    std::string element_id;
    std::string name;
    std::optional<std::string> assignee;
    std::vector<std::string> candidate_groups;
    std::string state;  ///< OPEN, COMPLETED, CANCELLED
    TimePoint created_at{};
    std::optional<TimePoint> due_at;
    std::optional<TimePoint> completed_at;
    /// GET /tasks/{id} only: the instance's variables (null in lists).
    nlohmann::json variables;
};

struct TaskQuery {
    std::optional<std::string> instance_id;
    std::optional<std::string> process_key;
    std::optional<std::string> assignee;
    std::optional<std::string> candidate_group;
    std::optional<std::string> element_id;
    std::string state = "OPEN";  ///< OPEN | COMPLETED
};

/// POST /messages.
struct MessageRequest {
    std::string name;
    std::optional<std::string> correlation_key;
    std::optional<std::string> business_key;  ///< for an instance a message start event creates
    nlohmann::json variables = nlohmann::json::object();
};

struct MessageCorrelation {
    std::string instance_id;
    std::string element_id;
    bool started = false;  ///< true: a message start event created the instance
};

/// POST /signals.
struct SignalRequest {
    std::string name;
    nlohmann::json variables = nlohmann::json::object();
};

struct SignalResult {
    std::int64_t triggered = 0;  ///< waits that fired plus instances that started
};

/// POST /jobs/activate.
struct ActivateJobsRequest {
    std::string type;
    std::string worker;
    int max_jobs = 10;
    std::chrono::milliseconds lock{60'000};
    std::chrono::milliseconds wait{0};  ///< long poll; capped by EngineSettings::max_job_wait
};

struct JobView {
    std::string id;
    std::string type;
    std::string instance_id;
    std::string element_id;
    nlohmann::json variables = nlohmann::json::object();
    int retries = 0;
    nlohmann::json headers = nlohmann::json::object();
};

/// POST /jobs/{id}/fail.
struct FailJobRequest {
    std::string error_message;
    int retries = 0;  ///< retries left; 0 opens an incident
    std::chrono::milliseconds retry_backoff{0};
};

/// POST /jobs/{id}/error.
struct JobErrorRequest {
    std::string error_code;
    std::string error_message;
    nlohmann::json variables = nlohmann::json::object();
};

struct TimerView {
    std::string id;
    std::string instance_id;  ///< empty for a timer start event
    std::string element_id;
    TimePoint due_at{};
    std::int64_t repeat = 0;  ///< firings left after the next one (-1 unbounded)
};

struct IncidentView {
    std::string id;
    std::string instance_id;
    std::string element_id;
    std::string kind;
    std::string message;
    std::string state;  ///< OPEN | RESOLVED
    TimePoint created_at{};
    std::optional<TimePoint> resolved_at;
};

struct IncidentQuery {
    std::optional<std::string> instance_id;
    std::optional<std::string> state;  ///< OPEN | RESOLVED
};

struct ClockView {
    TimePoint now{};
    bool adjusted = false;  ///< true while an advance is in effect
};

/// GET /stats.
struct StatsView {
    // Stored counts.
    std::int64_t running = 0, suspended = 0, error = 0, completed = 0, cancelled = 0;
    std::int64_t open_tasks = 0, pending_jobs = 0, pending_timers = 0, open_incidents = 0;
    // This replica since start-up.
    std::int64_t instances_started = 0;
    std::int64_t instances_ended = 0;
    std::int64_t commands_processed = 0;
    std::int64_t batches_committed = 0;
    double uptime_seconds = 0;
    double started_per_second = 0;     ///< instances_started / uptime
    double commands_per_second = 0;    ///< commands_processed / uptime
    std::int64_t queued_commands = 0;  ///< waiting for an engine worker now
};

/// The runtime use cases the http layer calls, one method per API.md operation. Blocking calls
/// (run them on the blocking pool, never on I/O threads); thread-safe.
///
/// Mutating calls return only after the change is durably committed. Failures are values:
/// PROCESS_NOT_FOUND / PROCESS_VERSION_NOT_FOUND / INSTANCE_NOT_FOUND / TASK_NOT_FOUND /
/// JOB_NOT_FOUND / INCIDENT_NOT_FOUND (404), MESSAGE_NOT_CORRELATED (404), INSTANCE_NOT_RUNNING /
/// INSTANCE_SUSPENDED / TASK_ALREADY_COMPLETED / JOB_NOT_ACTIVE (409), VARIABLE_TOO_LARGE /
/// VARIABLES_TOO_LARGE (413), INVALID_ARGUMENT (400), OVERLOADED (503, the engine queue is
/// full), and the store's DB_UNAVAILABLE / DB_POOL_TIMEOUT / DB_TIMEOUT (503).
///
/// Idempotency-Key handling is a separate use case (IdempotencyService): the http layer wraps
/// any mutating call in it.
class InstanceService {
  public:
    virtual ~InstanceService() = default;

    // Instances.
    /// 201 semantics: returns after the commit; a straight-through process answers COMPLETED.
    [[nodiscard]] virtual Result<InstanceView> start_instance(StartInstanceRequest request) = 0;
    /// Newest first.
    [[nodiscard]] virtual Result<PageResult<InstanceView>> list_instances(
        const InstanceQuery& query, const PageRequest& page) = 0;
    [[nodiscard]] virtual Result<InstanceView> instance(const std::string& id) = 0;
    /// DELETE /instances/{id}: status CANCELLED; its tasks, timers, jobs, subscriptions go.
    [[nodiscard]] virtual Result<InstanceView> cancel_instance(const std::string& id) = 0;
    /// While SUSPENDED an instance advances on nothing: task completion, job completion, BPMN
    /// errors and final failures (a failure with retries left is recorded), messages aimed at it,
    /// variable updates and incident resolution are refused with 409 INSTANCE_SUSPENDED; broadcast
    /// signals skip it (not counted); timers that fall due stay pending and fire after resume.
    [[nodiscard]] virtual Result<InstanceView> suspend_instance(const std::string& id) = 0;
    [[nodiscard]] virtual Result<InstanceView> resume_instance(const std::string& id) = 0;
    [[nodiscard]] virtual Result<nlohmann::json> variables(const std::string& id) = 0;
    /// PATCH: merges `variables` (an object) into the process variables; answers all variables.
    [[nodiscard]] virtual Result<nlohmann::json> set_variables(const std::string& id,
                                                               nlohmann::json variables) = 0;
    [[nodiscard]] virtual Result<std::vector<TokenView>> tokens(const std::string& id) = 0;
    /// History in the order it happened.
    [[nodiscard]] virtual Result<PageResult<ActivityView>> activities(const std::string& id,
                                                                      const PageRequest& page) = 0;

    // User tasks.
    [[nodiscard]] virtual Result<PageResult<TaskView>> list_tasks(const TaskQuery& query,
                                                                  const PageRequest& page) = 0;
    /// With the instance's variables.
    [[nodiscard]] virtual Result<TaskView> task(const std::string& id) = 0;
    /// 409 TASK_ALREADY_COMPLETED when the task is not OPEN.
    [[nodiscard]] virtual Result<TaskView> claim_task(const std::string& id,
                                                      const std::string& assignee) = 0;
    /// Answers the instance after the engine ran on. 409 TASK_ALREADY_COMPLETED.
    [[nodiscard]] virtual Result<InstanceView> complete_task(const std::string& id,
                                                             nlohmann::json variables) = 0;

    // Without a blocking call. The http layer tries these on its I/O thread first: they return
    // false, leaving their arguments as they were, when the call would have to wait for I/O
    // before the engine can take it (a definition not in memory, a task this replica does not
    // know); the caller then makes the blocking call. When they return true they have taken the
    // arguments, and `done` is called exactly once with what the blocking call would have
    // answered, from any thread (an engine worker, or the caller's own thread for a refusal
    // found at once). `done` must not block.
    using InstanceCallback = std::function<void(Result<InstanceView>)>;
    [[nodiscard]] virtual bool try_start_instance(StartInstanceRequest& request,
                                                  InstanceCallback& done) {
        (void)request;
        (void)done;
        return false;
    }
    [[nodiscard]] virtual bool try_complete_task(const std::string& id, nlohmann::json& variables,
                                                 InstanceCallback& done) {
        (void)id;
        (void)variables;
        (void)done;
        return false;
    }

    // Messages and signals.
    [[nodiscard]] virtual Result<MessageCorrelation> correlate_message(MessageRequest request) = 0;
    [[nodiscard]] virtual Result<SignalResult> broadcast_signal(SignalRequest request) = 0;

    // External jobs.
    [[nodiscard]] virtual Result<std::vector<JobView>> activate_jobs(
        ActivateJobsRequest request) = 0;
    [[nodiscard]] virtual Status complete_job(const std::string& id, nlohmann::json variables) = 0;
    [[nodiscard]] virtual Status fail_job(const std::string& id, FailJobRequest request) = 0;
    [[nodiscard]] virtual Status throw_job_error(const std::string& id,
                                                 JobErrorRequest request) = 0;

    // Timers, incidents, clock, stats.
    /// One page of the timers (of one instance, or all), in due order.
    [[nodiscard]] virtual Result<PageResult<TimerView>> list_timers(
        const std::optional<std::string>& instance_id, const PageRequest& page) = 0;
    [[nodiscard]] virtual Result<PageResult<IncidentView>> list_incidents(
        const IncidentQuery& query, const PageRequest& page) = 0;
    /// The failed step runs again; answers the incident (state RESOLVED).
    [[nodiscard]] virtual Result<IncidentView> resolve_incident(const std::string& id) = 0;
    /// True when the clock endpoints exist (setting clock_control); otherwise the clock calls
    /// below fail with NOT_FOUND, like an unknown path.
    [[nodiscard]] virtual bool clock_control() const = 0;
    [[nodiscard]] virtual Result<ClockView> clock() = 0;
    /// `duration` is ISO 8601 ("PT1H", "P2D"); timers that fall due fire before this returns.
    [[nodiscard]] virtual Result<ClockView> advance_clock(const std::string& duration) = 0;
    /// Back to real time.
    [[nodiscard]] virtual Result<ClockView> reset_clock() = 0;
    [[nodiscard]] virtual Result<StatsView> stats() = 0;
};

}  // namespace pythmata::app
