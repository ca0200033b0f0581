#pragma once

#include <atomic>

#include "pythmata/app/ports/clock.hpp"
#include "pythmata/app/ports/telemetry.hpp"

namespace pythmata::fakes {

/// Counts what the use cases report.
class FakeTelemetry final : public app::Telemetry {
public:
    std::atomic<int> l1_hits{0}, l1_misses{0}, l2_hits{0}, l2_misses{0};

    void definition_cache_lookup(CacheLevel level, bool hit) override {
        auto& counter = level == CacheLevel::kL1 ? (hit ? l1_hits : l1_misses)
                                                 : (hit ? l2_hits : l2_misses);
        ++counter;
    }
};

/// A clock that moves only when told to.
class ManualClock final : public app::Clock {
public:
    explicit ManualClock(TimePoint start = from_epoch_ms(1'700'000'000'000)) : now_(start) {}
    [[nodiscard]] TimePoint now() const override { return now_; }
    void advance(Millis by) { now_ += by; }

private:
    TimePoint now_;
};

}  // namespace pythmata::fakes
