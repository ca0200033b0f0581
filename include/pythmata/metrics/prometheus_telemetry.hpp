#pragma once

#include "pythmata/app/ports/telemetry.hpp"
#include "pythmata/metrics/registry.hpp"

namespace prometheus {
class Counter;
}

namespace pythmata::metrics {

/// app::Telemetry on prometheus-cpp. Declares, in the given registry,
/// `pythmata_definition_cache_hits_total{level="l1|l2"}` and
/// `pythmata_definition_cache_misses_total{level="l1|l2"}`. The registry must outlive this
/// object. Thread-safe: each call is one atomic counter increment.
class PrometheusTelemetry final : public app::Telemetry {
  public:
    /// Registers the counter families; registering twice in one registry yields the same series.
    explicit PrometheusTelemetry(Registry& registry);

    /// Counts one definition lookup at `level` as a hit or a miss.
    void definition_cache_lookup(CacheLevel level, bool hit) override;

  private:
    prometheus::Counter* l1_hits_;
    prometheus::Counter* l1_misses_;
    prometheus::Counter* l2_hits_;
    prometheus::Counter* l2_misses_;
};

}  // namespace pythmata::metrics
