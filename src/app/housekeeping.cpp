#include "pythmata/app/housekeeping.hpp"

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace pythmata::app {

Housekeeping::Housekeeping(RuntimeStore& store, Telemetry& telemetry, const Clock& clock,
                           const EngineSettings& settings)
    : store_(store), telemetry_(telemetry), clock_(clock), settings_(settings) {}

Housekeeping::~Housekeeping() {
    stop();
}

void Housekeeping::start() {
    std::lock_guard lock(mutex_);
    if (thread_.joinable() || stopping_) {
        return;
    }
    thread_ = std::thread([this] { loop(); });
}

void Housekeeping::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        stop_requested_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) {
        thread_.join();
    }
}

Result<RetentionResult> Housekeeping::run_once() {
    if (auto counts = store_.counts(); counts) {
        const auto& c = counts.value();
        telemetry_.active_instances_counted(c.running + c.suspended + c.error);
        telemetry_.open_incidents(c.open_incidents);
        telemetry_.pending_work(c.pending_jobs, c.pending_timers);
    } else {
        telemetry_.error(counts.error().code);
        return std::move(counts).error();
    }
    RetentionResult total;
    // Overridden keys grouped by their days; 0 days keeps that key forever.
    std::map<unsigned, std::vector<std::string>> by_days;
    std::vector<std::string> overridden;
    for (const auto& [key, days] : settings_.history_retention_overrides) {
        overridden.push_back(key);
        if (days > 0) {
            by_days[days].push_back(key);
        }
    }
    for (auto& [days, keys] : by_days) {
        if (auto swept = sweep(days, ProcessKeyFilter::only(std::move(keys)), total); !swept) {
            return std::move(swept).error();
        }
    }
    if (settings_.history_retention_days > 0) {
        if (auto swept = sweep(settings_.history_retention_days,
                               ProcessKeyFilter::except(std::move(overridden)), total);
            !swept) {
            return std::move(swept).error();
        }
    }
    return total;
}

Status Housekeeping::sweep(unsigned days, const ProcessKeyFilter& filter, RetentionResult& total) {
    const TimePoint cutoff = clock_.now() - std::chrono::hours(24) * days;
    const std::size_t batch_size = settings_.retention_batch_size;
    while (!stop_requested_) {
        auto batch = store_.delete_ended_instances(cutoff, batch_size, filter);
        if (!batch) {
            telemetry_.error(batch.error().code);
            return std::move(batch).error();
        }
        telemetry_.retention_deleted(batch.value().instances, batch.value().history);
        total.instances += batch.value().instances;
        total.history += batch.value().history;
        if (batch.value().instances < static_cast<std::int64_t>(batch_size)) {
            break;
        }
    }
    return {};
}

void Housekeeping::loop() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        lock.unlock();
        // Failures are counted in run_once; the next interval tries again.
        (void)run_once();
        lock.lock();
        wake_.wait_for(lock, settings_.maintenance_interval, [this] { return stopping_; });
    }
}

}  // namespace pythmata::app
