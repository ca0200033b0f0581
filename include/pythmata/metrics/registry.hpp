#pragma once

#include <memory>
#include <string>

namespace prometheus {
class Registry;
}

namespace pythmata::metrics {

/// Owns the process's prometheus-cpp registry and renders it in the Prometheus text format
/// (served by our own HTTP server at /metrics). Created once in main and passed by reference to
/// the adapters that declare metrics next to their own code (http, store, cache, app telemetry).
/// Thread-safe.
class Registry {
  public:
    Registry();
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    /// The underlying registry, for declaring metric families.
    [[nodiscard]] prometheus::Registry& prometheus();
    /// Every family in text exposition format 0.0.4.
    [[nodiscard]] std::string render() const;

  private:
    std::shared_ptr<prometheus::Registry> registry_;
};

}  // namespace pythmata::metrics
