#pragma once

#include "pythmata/app/ports/telemetry.hpp"
#include "pythmata/metrics/registry.hpp"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace pythmata::metrics {

/// app::Telemetry on prometheus-cpp. Declares, in the given registry (names are part of the
/// contract, DESIGN.md "Metrics"):
/// - `pythmata_definition_cache_hits_total{level="l1|l2"}`, `..._misses_total{level}`
/// - `process_instances_total` (instances started), `process_execution_seconds` (instance
///   duration, start to end), `pythmata_active_instances` (gauge),
///   `pythmata_execution_time_seconds` (one engine command), `pythmata_tokens_processed_total`,
///   `pythmata_errors_total{kind}` (kind = error code), `pythmata_batch_size`,
///   `pythmata_batch_commit_seconds`, `pythmata_timer_lateness_seconds`,
///   `pythmata_incidents_open`, `pythmata_retention_deleted_total{kind}`.
/// The registry must outlive this object. Thread-safe: each call updates atomics (an error kind
/// seen for the first time takes the family's lock once).
class PrometheusTelemetry final : public app::Telemetry {
  public:
    /// Registers the families; registering twice in one registry yields the same series.
    explicit PrometheusTelemetry(Registry& registry);

    void definition_cache_lookup(CacheLevel level, bool hit) override;
    void instance_started() override;
    void instance_ended(std::string_view status, double seconds) override;
    void active_instances_changed(std::int64_t delta) override;
    void engine_executed(double seconds, std::uint64_t tokens) override;
    void error(std::string_view kind) override;
    void batch_committed(std::size_t size, double seconds) override;
    void timer_fired(double lateness_seconds) override;
    void active_instances_counted(std::int64_t count) override;
    void open_incidents(std::int64_t count) override;
    void pending_work(std::int64_t jobs, std::int64_t timers) override;
    void outbox_pending(std::int64_t rows) override;
    void retention_deleted(std::int64_t instances, std::int64_t history) override;

  private:
    prometheus::Counter* l1_hits_;
    prometheus::Counter* l1_misses_;
    prometheus::Counter* l2_hits_;
    prometheus::Counter* l2_misses_;
    prometheus::Counter* instances_started_;
    prometheus::Histogram* instance_seconds_;
    prometheus::Gauge* active_instances_;
    prometheus::Histogram* execution_seconds_;
    prometheus::Counter* tokens_;
    prometheus::Family<prometheus::Counter>* errors_;
    prometheus::Histogram* batch_size_;
    prometheus::Histogram* batch_commit_seconds_;
    prometheus::Histogram* timer_lateness_;
    prometheus::Gauge* open_incidents_;
    prometheus::Gauge* jobs_pending_;
    prometheus::Gauge* outbox_pending_;
    prometheus::Gauge* timers_pending_;
    prometheus::Counter* retention_instances_;
    prometheus::Counter* retention_history_;
};

}  // namespace pythmata::metrics
