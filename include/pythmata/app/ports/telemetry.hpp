#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pythmata::app {

/// What the use cases report about themselves; implemented on prometheus-cpp by the metrics layer
/// (tests use fakes). Calls are cheap and thread-safe.
class Telemetry {
  public:
    enum class CacheLevel { kL1, kL2 };

    virtual ~Telemetry() = default;
    virtual void definition_cache_lookup(CacheLevel level, bool hit) = 0;

    // The instance runtime.
    /// An instance started (process_instances_total).
    virtual void instance_started() = 0;
    /// An instance ended with API status `status` after `seconds` (process_execution_seconds).
    virtual void instance_ended(std::string_view status, double seconds) = 0;
    /// Running (incl. suspended / incident) instances changed by `delta`
    /// (pythmata_active_instances).
    virtual void active_instances_changed(std::int64_t delta) = 0;
    /// One engine execute() call took `seconds` and processed `tokens` token steps
    /// (pythmata_execution_time_seconds, pythmata_tokens_processed_total).
    virtual void engine_executed(double seconds, std::uint64_t tokens) = 0;
    /// A failure of kind `kind` (an UPPER_SNAKE error code) (pythmata_errors_total{kind}).
    virtual void error(std::string_view kind) = 0;
    /// One group commit of `size` commands took `seconds` (pythmata_batch_size,
    /// pythmata_batch_commit_seconds).
    virtual void batch_committed(std::size_t size, double seconds) = 0;
    /// A timer fired `seconds` after its due time (pythmata_timer_lateness_seconds).
    virtual void timer_fired(double lateness_seconds) = 0;

    // Housekeeping.
    /// The store holds `count` instances not yet ended: resets pythmata_active_instances, so
    /// that every replica reports the shared count (its own changes are added in between).
    virtual void active_instances_counted(std::int64_t count) = 0;
    /// The store holds `count` open incidents (pythmata_incidents_open).
    virtual void open_incidents(std::int64_t count) = 0;
    /// The store holds `jobs` external/service jobs and `timers` timers not yet done
    /// (pythmata_jobs_pending, pythmata_timers_pending: the job queue depth).
    virtual void pending_work(std::int64_t jobs, std::int64_t timers) = 0;
    /// The store holds `rows` outbox rows: effects committed but not yet delivered
    /// (pythmata_outbox_pending; refreshed by every outbox sweeper pass).
    virtual void outbox_pending(std::int64_t rows) = 0;
    /// History retention deleted `instances` ended instances and `history` history rows
    /// (pythmata_retention_deleted_total{kind="instances"|"history"}).
    virtual void retention_deleted(std::int64_t instances, std::int64_t history) = 0;
};

}  // namespace pythmata::app
