#pragma once

#include <memory>

#include "pythmata/app/definition_catalog.hpp"
#include "pythmata/app/deploy_observer.hpp"
#include "pythmata/app/instance_service.hpp"
#include "pythmata/app/ports/clock.hpp"
#include "pythmata/app/ports/http_caller.hpp"
#include "pythmata/app/ports/instance_events.hpp"
#include "pythmata/app/ports/runtime_store.hpp"
#include "pythmata/app/ports/service_log.hpp"
#include "pythmata/app/ports/telemetry.hpp"
#include "pythmata/app/settings.hpp"

namespace pythmata::app {

/// The instance runtime (DESIGN.md, "A request's way"): the InstanceService use cases over the
/// pure engine and the RuntimeStore.
///
/// - `EngineSettings::workers` engine threads; instances are sharded onto them by id, so the
///   commands of one instance never run concurrently. Each worker takes up to
///   `token_batch_size` queued commands, runs the engine on a copy of each instance's state,
///   and writes the whole batch with ONE RuntimeStore::commit; only then do the callers get
///   their answers. A failed commit fails every caller of the batch and leaves no trace in
///   memory (a DB_CONFLICT is retried once with the instances reloaded). At most
///   `queue_capacity` requests wait; beyond that calls fail with OVERLOADED.
/// - A scheduler thread fires due timers (instance timers and timer start events) every
///   `state_check_interval` and at start-up; `advance_clock` fires them at once.
/// - Effects the engine reports are carried out after the commit: thrown signals and messages
///   are delivered, call activities start child instances (id derived from the parent and its
///   call wait; the child answers the call wait when it ends, and is cancelled when the call
///   wait closes otherwise, e.g. the parent is cancelled), built-in service tasks (`logger`,
///   `http`) run on service threads (at most `max_parallel_tokens` at once) as jobs of type
///   "pythmata:<service>".
///
/// History entries follow `history_level` (app/history_level.hpp): "none" writes none,
/// "activity" every activity's and event's STARTED/COMPLETED/... entry but no gateway's, "full"
/// every element's. The store keeps one history row per instance per commit.
///
/// The outbox: effects on other instances (child starts, a child's answer to its parent,
/// cancelling a child, thrown signals and messages) are written as OutboxRows in the batch that
/// caused them, delivered right after the commit (unless `outbox_deliver_inline` is off, a
/// diagnostic setting), and deleted once delivered: a delivery into one instance deletes its row
/// in that instance's commit; a broadcast's row goes with the next batch commit (or the sweeper's
/// delete). An outbox thread re-delivers rows older than `outbox_grace_ms` (a crash between commit
/// and delivery, here or on another replica), at start-up and every `state_check_interval`, taken
/// with a lock (`outbox_lock_ms`, `outbox_batch_size` at a time). Replays do nothing twice: the
/// child's id derives from (parent, call wait); an instance that a signal or message start event
/// starts for a row gets an id derived from (row, definition, element), so a replay conflicts;
/// an answer, cancel or signal to a closed wait or an ended instance is refused and settles the
/// row; a command that delivers a row first checks that the row is still there (a delivery
/// slower than `outbox_grace_ms` replayed while it runs stops there), so a thrown message whose
/// delivery committed never reaches a second waiting instance.
/// Remaining edge: a broadcast replayed after a crash reaches subscriptions opened after the
/// throw (a late subscriber may get a signal thrown before it subscribed); the fan-out's own
/// targets are not checked against the row, and two deliveries of one row that race to the
/// check itself (same instant, different targets) are not excluded.
///
/// Lifetime: every reference given to the constructor must outlive the runtime. Call start()
/// once before serving and stop() (or the destructor) to shut down: the scheduler stops, queued
/// commands are still processed and answered, follow-up work not yet queued is dropped (timers,
/// jobs and outbox rows stay in the store and are picked up at the next start).
class InstanceRuntime final : public InstanceService, public DeployObserver {
  public:
    /// `http` and `log` may be null: `http` service tasks then fail with an incident, `logger`
    /// service tasks complete without writing.
    InstanceRuntime(RuntimeStore& store, DefinitionCatalog& catalog, Telemetry& telemetry,
                    const Clock& clock, const EngineSettings& settings, HttpCaller* http = nullptr,
                    ServiceLog* log = nullptr);
    ~InstanceRuntime() override;
    InstanceRuntime(const InstanceRuntime&) = delete;
    InstanceRuntime& operator=(const InstanceRuntime&) = delete;

    /// Where the events of committed commands go (the WebSocket stream); null: nowhere. Call
    /// before start(); the sink must outlive the runtime.
    void set_event_sink(InstanceEventSink* sink);
    /// Starts the engine workers, the scheduler and the service threads.
    void start();
    /// Graceful shutdown (see the class comment). Idempotent.
    void stop();

    /// One scheduler pass now: fires every timer due at the runtime's now and waits until the
    /// firings are committed. For tests and for advance_clock.
    [[nodiscard]] Status fire_due_timers();

    // InstanceService.
    [[nodiscard]] Result<InstanceView> start_instance(StartInstanceRequest request) override;
    [[nodiscard]] Result<PageResult<InstanceView>> list_instances(const InstanceQuery& query,
                                                                  const PageRequest& page) override;
    [[nodiscard]] Result<InstanceView> instance(const std::string& id) override;
    [[nodiscard]] Result<InstanceView> cancel_instance(const std::string& id) override;
    [[nodiscard]] Result<InstanceView> suspend_instance(const std::string& id) override;
    [[nodiscard]] Result<InstanceView> resume_instance(const std::string& id) override;
    [[nodiscard]] Result<nlohmann::json> variables(const std::string& id) override;
    [[nodiscard]] Result<nlohmann::json> set_variables(const std::string& id,
                                                       nlohmann::json variables) override;
    [[nodiscard]] Result<std::vector<TokenView>> tokens(const std::string& id) override;
    [[nodiscard]] Result<PageResult<ActivityView>> activities(const std::string& id,
                                                              const PageRequest& page) override;
    [[nodiscard]] Result<PageResult<TaskView>> list_tasks(const TaskQuery& query,
                                                          const PageRequest& page) override;
    [[nodiscard]] Result<TaskView> task(const std::string& id) override;
    [[nodiscard]] Result<TaskView> claim_task(const std::string& id,
                                              const std::string& assignee) override;
    [[nodiscard]] Result<InstanceView> complete_task(const std::string& id,
                                                     nlohmann::json variables) override;
    /// Without blocking when the definition is compiled in memory (latest version only).
    [[nodiscard]] bool try_start_instance(StartInstanceRequest& request,
                                          InstanceCallback& done) override;
    /// Without blocking when the task was opened on this replica (open_task_cache).
    [[nodiscard]] bool try_complete_task(const std::string& id, nlohmann::json& variables,
                                         InstanceCallback& done) override;
    [[nodiscard]] Result<MessageCorrelation> correlate_message(MessageRequest request) override;
    [[nodiscard]] Result<SignalResult> broadcast_signal(SignalRequest request) override;
    [[nodiscard]] Result<std::vector<JobView>> activate_jobs(ActivateJobsRequest request) override;
    [[nodiscard]] Status complete_job(const std::string& id, nlohmann::json variables) override;
    [[nodiscard]] Status fail_job(const std::string& id, FailJobRequest request) override;
    [[nodiscard]] Status throw_job_error(const std::string& id, JobErrorRequest request) override;
    [[nodiscard]] Result<PageResult<TimerView>> list_timers(
        const std::optional<std::string>& instance_id, const PageRequest& page) override;
    [[nodiscard]] Result<PageResult<IncidentView>> list_incidents(const IncidentQuery& query,
                                                                  const PageRequest& page) override;
    [[nodiscard]] Result<IncidentView> resolve_incident(const std::string& id) override;
    [[nodiscard]] bool clock_control() const override;
    [[nodiscard]] Result<ClockView> clock() override;
    [[nodiscard]] Result<ClockView> advance_clock(const std::string& duration) override;
    [[nodiscard]] Result<ClockView> reset_clock() override;
    [[nodiscard]] Result<StatsView> stats() override;

    // DeployObserver: writes the start-event rows of new definitions (and drops the timer
    // start events of the versions they replace).
    [[nodiscard]] Status definitions_deployed(
        const std::vector<DefinitionRecord>& created) override;
    // An identical redeploy: writes the start-event rows of those whose first write failed (the
    // store has no start_events_written mark for them); nothing otherwise.
    [[nodiscard]] Status definitions_redeployed(
        const std::vector<DefinitionRecord>& existing) override;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pythmata::app
