#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "pythmata/app/ports/clock.hpp"
#include "pythmata/app/ports/runtime_store.hpp"
#include "pythmata/app/ports/telemetry.hpp"
#include "pythmata/app/settings.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::app {

/// Periodic store maintenance of one replica (serve and worker roles alike), on its own thread:
/// every `maintenance_interval` it
/// - publishes the store's counts of unfinished instances and open incidents
///   (Telemetry::active_instances_counted, Telemetry::open_incidents), and
/// - when `history_retention_days` > 0, deletes instances that ended (COMPLETED / CANCELLED)
///   more than that many days ago with their history, oldest first, `retention_batch_size`
///   instances per transaction, until a batch comes back short. Each batch is its own short
///   transaction, so traffic waits at most for one batch; on PostgreSQL, replicas that run
///   retention at the same time skip each other's rows.
///   `history_retention_overrides` gives some process keys their own days: each group of keys
///   with the same days is swept with its own cutoff (a key with 0 days is never swept), and the
///   default sweep (history_retention_days) excludes every overridden key. Overrides apply even
///   when history_retention_days is 0.
/// Store failures are counted (Telemetry::error) and the pass is tried again next interval.
///
/// Lifetime: the references must outlive the object. start() once; stop() (or the destructor)
/// ends the thread, waiting at most for the batch in flight.
class Housekeeping {
  public:
    Housekeeping(RuntimeStore& store, Telemetry& telemetry, const Clock& clock,
                 const EngineSettings& settings);
    ~Housekeeping();
    Housekeeping(const Housekeeping&) = delete;
    Housekeeping& operator=(const Housekeeping&) = delete;

    /// Starts the thread; the first pass runs at once.
    void start();
    /// Stops the thread. Idempotent.
    void stop();

    /// One pass now, on the calling thread: what retention deleted (zero when it is off), or
    /// the first store error.
    [[nodiscard]] Result<RetentionResult> run_once();

  private:
    void loop();
    /// Batches of delete_ended_instances(cutoff `days` ago, `filter`) until a short one,
    /// added into `total`.
    [[nodiscard]] Status sweep(unsigned days, const ProcessKeyFilter& filter,
                               RetentionResult& total);

    RuntimeStore& store_;
    Telemetry& telemetry_;
    const Clock& clock_;
    const EngineSettings& settings_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::atomic<bool> stop_requested_{false};
    std::thread thread_;
};

}  // namespace pythmata::app
