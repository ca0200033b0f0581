#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "pythmata/app/ports/clock.hpp"
#include "pythmata/app/ports/telemetry.hpp"

namespace pythmata::fakes {

/// Counts what the use cases report.
class FakeTelemetry final : public app::Telemetry {
  public:
    std::atomic<int> l1_hits{0}, l1_misses{0}, l2_hits{0}, l2_misses{0};
    std::atomic<int> started{0}, ended{0}, executions{0}, batches{0}, timers_fired{0};
    std::atomic<std::int64_t> active{0}, tokens{0}, batched_commands{0};
    std::atomic<std::size_t> largest_batch{0};
    std::atomic<std::int64_t> incidents_open{-1}, retained_instances_deleted{0},
        retained_history_deleted{0};

    void definition_cache_lookup(CacheLevel level, bool hit) override {
        auto& counter =
            level == CacheLevel::kL1 ? (hit ? l1_hits : l1_misses) : (hit ? l2_hits : l2_misses);
        ++counter;
    }
    void instance_started() override { ++started; }
    void instance_ended(std::string_view status, double) override {
        ++ended;
        std::lock_guard lock(mutex_);
        ++ended_by_status_[std::string(status)];
    }
    void active_instances_changed(std::int64_t delta) override { active += delta; }
    void engine_executed(double, std::uint64_t n) override {
        ++executions;
        tokens += static_cast<std::int64_t>(n);
    }
    void error(std::string_view kind) override {
        std::lock_guard lock(mutex_);
        ++errors_[std::string(kind)];
    }
    void batch_committed(std::size_t size, double) override {
        ++batches;
        batched_commands += static_cast<std::int64_t>(size);
        std::size_t seen = largest_batch.load();
        while (size > seen && !largest_batch.compare_exchange_weak(seen, size)) {
        }
    }
    void timer_fired(double) override { ++timers_fired; }
    void active_instances_counted(std::int64_t count) override { active = count; }
    void open_incidents(std::int64_t count) override { incidents_open = count; }
    void pending_work(std::int64_t jobs, std::int64_t timers) override {
        jobs_pending = jobs;
        timers_pending = timers;
    }
    std::int64_t jobs_pending = 0;
    void outbox_pending(std::int64_t rows) override { outbox_rows_pending = rows; }
    std::atomic<std::int64_t> outbox_rows_pending{-1};
    std::int64_t timers_pending = 0;
    void retention_deleted(std::int64_t instances, std::int64_t history) override {
        retained_instances_deleted += instances;
        retained_history_deleted += history;
    }

    [[nodiscard]] int errors(const std::string& kind) {
        std::lock_guard lock(mutex_);
        return errors_[kind];
    }
    [[nodiscard]] int ended_with(const std::string& status) {
        std::lock_guard lock(mutex_);
        return ended_by_status_[status];
    }

  private:
    std::mutex mutex_;
    std::map<std::string, int> errors_;
    std::map<std::string, int> ended_by_status_;
};

/// A clock that moves only when told to. Thread-safe.
class ManualClock final : public app::Clock {
  public:
    explicit ManualClock(TimePoint start = from_epoch_ms(1'700'000'000'000))
        : now_ms_(to_epoch_ms(start)) {}
    [[nodiscard]] TimePoint now() const override { return from_epoch_ms(now_ms_.load()); }
    void advance(Millis by) { now_ms_ += by.count(); }

  private:
    std::atomic<std::int64_t> now_ms_;
};

}  // namespace pythmata::fakes
