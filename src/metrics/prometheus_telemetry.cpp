#include "pythmata/metrics/prometheus_telemetry.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

namespace pythmata::metrics {

namespace {

prometheus::Family<prometheus::Counter>& counter_family(prometheus::Registry& registry,
                                                        const std::string& name,
                                                        const std::string& help) {
    return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

}  // namespace

PrometheusTelemetry::PrometheusTelemetry(Registry& registry) {
    auto& hits = counter_family(registry.prometheus(), "pythmata_definition_cache_hits_total",
                                "Process definition lookups answered by a cache level");
    auto& misses = counter_family(registry.prometheus(), "pythmata_definition_cache_misses_total",
                                  "Process definition lookups a cache level could not answer");
    l1_hits_ = &hits.Add({{"level", "l1"}});
    l2_hits_ = &hits.Add({{"level", "l2"}});
    l1_misses_ = &misses.Add({{"level", "l1"}});
    l2_misses_ = &misses.Add({{"level", "l2"}});
}

void PrometheusTelemetry::definition_cache_lookup(CacheLevel level, bool hit) {
    const bool l1 = level == CacheLevel::kL1;
    prometheus::Counter* counter =
        hit ? (l1 ? l1_hits_ : l2_hits_) : (l1 ? l1_misses_ : l2_misses_);
    counter->Increment();
}

}  // namespace pythmata::metrics
