#include "pythmata/metrics/prometheus_telemetry.hpp"

#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace pythmata::metrics {

namespace {

prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& registry,
                                                        const std::string& name,
                                                        const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

prometheus::Histogram& histogram(prometheus::Registry& registry, const std::string& name,
                                 const std::string& help,
                                 const prometheus::Histogram::BucketBoundaries& buckets) {
    return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, buckets);
}

}  // namespace

PrometheusTelemetry::PrometheusTelemetry(Registry& registry) {
    auto& r = registry.prometheus();
    auto& hits = counter_family(r, "pythmata_definition_cache_hits_total",
                                "Process definition lookups answered by a cache level");
    auto& misses = counter_family(r, "pythmata_definition_cache_misses_total",
                                  "Process definition lookups a cache level could not answer");
    l1_hits_ = &hits.Add({{"level", "l1"}});
    l2_hits_ = &hits.Add({{"level", "l2"}});
    l1_misses_ = &misses.Add({{"level", "l1"}});
    l2_misses_ = &misses.Add({{"level", "l2"}});

    instances_started_ =
        &counter_family(r, "process_instances_total", "Process instances started").Add({});
    instance_seconds_ =
        &histogram(r, "process_execution_seconds", "Time from an instance's start to its end",
                   {0.001, 0.01, 0.1, 1, 10, 60, 600, 3600, 86400, 604800});
    active_instances_ = &prometheus::BuildGauge()
                             .Name("pythmata_active_instances")
                             .Help("Instances not yet ended (running, suspended or with incidents)")
                             .Register(r)
                             .Add({});
    execution_seconds_ =
        &histogram(r, "pythmata_execution_time_seconds",
                   "Time the engine took for one command of one instance",
                   {0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1});
    tokens_ = &counter_family(r, "pythmata_tokens_processed_total",
                              "Token steps (elements executed) by the engine")
                   .Add({});
    errors_ = &counter_family(r, "pythmata_errors_total",
                              "Failed commands, commits and deliveries by error code");
    batch_size_ = &histogram(r, "pythmata_batch_size", "Commands written by one group commit",
                             {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000});
    batch_commit_seconds_ =
        &histogram(r, "pythmata_batch_commit_seconds", "Time of one group commit to the store",
                   {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5});
    timer_lateness_ = &histogram(r, "pythmata_timer_lateness_seconds",
                                 "How late timers fired after their due time",
                                 {0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300});
    open_incidents_ = &prometheus::BuildGauge()
                           .Name("pythmata_incidents_open")
                           .Help("Open incidents in the store (refreshed by the housekeeping loop)")
                           .Register(r)
                           .Add({});
    jobs_pending_ = &prometheus::BuildGauge()
                         .Name("pythmata_jobs_pending")
                         .Help(
                             "Jobs (external and built-in service) waiting or locked in the "
                             "store: the job queue depth (refreshed by housekeeping)")
                         .Register(r)
                         .Add({});
    outbox_pending_ = &prometheus::BuildGauge()
                           .Name("pythmata_outbox_pending")
                           .Help(
                               "Effects committed but not yet delivered (outbox rows; refreshed "
                               "by the outbox sweeper)")
                           .Register(r)
                           .Add({});
    timers_pending_ = &prometheus::BuildGauge()
                           .Name("pythmata_timers_pending")
                           .Help("Timers not yet fired in the store (refreshed by housekeeping)")
                           .Register(r)
                           .Add({});
    auto& retention =
        counter_family(r, "pythmata_retention_deleted_total",
                       "Deleted by history retention: ended instances (kind=instances) and their "
                       "history entries, one per element event (kind=history)");
    retention_instances_ = &retention.Add({{"kind", "instances"}});
    retention_history_ = &retention.Add({{"kind", "history"}});
}

void PrometheusTelemetry::definition_cache_lookup(CacheLevel level, bool hit) {
    const bool l1 = level == CacheLevel::kL1;
    prometheus::Counter* counter =
        hit ? (l1 ? l1_hits_ : l2_hits_) : (l1 ? l1_misses_ : l2_misses_);
    counter->Increment();
}

void PrometheusTelemetry::instance_started() {
    instances_started_->Increment();
}

void PrometheusTelemetry::instance_ended(std::string_view /*status*/, double seconds) {
    instance_seconds_->Observe(seconds);
}

void PrometheusTelemetry::active_instances_changed(std::int64_t delta) {
    active_instances_->Increment(static_cast<double>(delta));
}

void PrometheusTelemetry::engine_executed(double seconds, std::uint64_t tokens) {
    execution_seconds_->Observe(seconds);
    tokens_->Increment(static_cast<double>(tokens));
}

void PrometheusTelemetry::error(std::string_view kind) {
    errors_->Add({{"kind", std::string(kind.empty() ? "UNKNOWN" : kind)}}).Increment();
}

void PrometheusTelemetry::batch_committed(std::size_t size, double seconds) {
    batch_size_->Observe(static_cast<double>(size));
    batch_commit_seconds_->Observe(seconds);
}

void PrometheusTelemetry::timer_fired(double lateness_seconds) {
    timer_lateness_->Observe(lateness_seconds);
}

void PrometheusTelemetry::active_instances_counted(std::int64_t count) {
    active_instances_->Set(static_cast<double>(count));
}

void PrometheusTelemetry::open_incidents(std::int64_t count) {
    open_incidents_->Set(static_cast<double>(count));
}

void PrometheusTelemetry::pending_work(std::int64_t jobs, std::int64_t timers) {
    jobs_pending_->Set(static_cast<double>(jobs));
    timers_pending_->Set(static_cast<double>(timers));
}

void PrometheusTelemetry::outbox_pending(std::int64_t rows) {
    outbox_pending_->Set(static_cast<double>(rows));
}

void PrometheusTelemetry::retention_deleted(std::int64_t instances, std::int64_t history) {
    retention_instances_->Increment(static_cast<double>(instances));
    retention_history_->Increment(static_cast<double>(history));
}

}  // namespace pythmata::metrics
