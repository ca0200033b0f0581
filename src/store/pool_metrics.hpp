#pragma once

#include <chrono>
#include <string>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace pythmata::metrics {
class Registry;
}

namespace pythmata::store {

/// The connection-pool metrics of one pool, labelled pool="<name>": pythmata_db_pool_in_use,
/// pythmata_db_pool_size (gauges), pythmata_db_pool_wait_seconds (histogram of acquire waits)
/// and pythmata_db_pool_timeouts_total. Families are declared on `registry` once (prometheus-cpp
/// merges re-registrations); `registry` must outlive this object. Thread-safe.
class PoolMetrics {
  public:
    PoolMetrics(metrics::Registry& registry, const std::string& pool, double size);

    /// A connection was handed out after waiting `waited`.
    void acquired(std::chrono::steady_clock::duration waited);
    /// A leased connection came back (or was discarded).
    void released();
    /// An acquire gave up after waiting `waited`.
    void timed_out(std::chrono::steady_clock::duration waited);

  private:
    prometheus::Gauge& in_use_;
    prometheus::Gauge& size_;
    prometheus::Histogram& wait_;
    prometheus::Counter& timeouts_;
};

}  // namespace pythmata::store
