#include "pool_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "pythmata/metrics/registry.hpp"

namespace pythmata::store {
namespace {

prometheus::Labels labels(const std::string& pool) {
    return {{"pool", pool}};
}

double seconds(std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double>(d).count();
}

}  // namespace

PoolMetrics::PoolMetrics(metrics::Registry& registry, const std::string& pool, double size)
    : in_use_(prometheus::BuildGauge()
                  .Name("pythmata_db_pool_in_use")
                  .Help("Database connections currently leased from the pool")
                  .Register(registry.prometheus())
                  .Add(labels(pool))),
      size_(prometheus::BuildGauge()
                .Name("pythmata_db_pool_size")
                .Help("Database connections the pool keeps open (db_pool_size)")
                .Register(registry.prometheus())
                .Add(labels(pool))),
      wait_(
          prometheus::BuildHistogram()
              .Name("pythmata_db_pool_wait_seconds")
              .Help("Time spent waiting to lease a database connection")
              .Register(registry.prometheus())
              .Add(labels(pool), prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.005, 0.01,
                                                                         0.05, 0.1, 0.5, 1, 5})),
      timeouts_(prometheus::BuildCounter()
                    .Name("pythmata_db_pool_timeouts_total")
                    .Help("Connection leases that gave up after db_pool_timeout")
                    .Register(registry.prometheus())
                    .Add(labels(pool))) {
    size_.Set(size);
}

void PoolMetrics::acquired(std::chrono::steady_clock::duration waited) {
    in_use_.Increment();
    wait_.Observe(seconds(waited));
}

void PoolMetrics::released() {
    in_use_.Decrement();
}

void PoolMetrics::timed_out(std::chrono::steady_clock::duration waited) {
    timeouts_.Increment();
    wait_.Observe(seconds(waited));
}

}  // namespace pythmata::store
