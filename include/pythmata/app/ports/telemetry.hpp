#pragma once

namespace pythmata::app {

/// What the use cases report about themselves; implemented on prometheus-cpp by the metrics layer
/// (tests use fakes). Calls are cheap and thread-safe.
class Telemetry {
public:
    enum class CacheLevel { kL1, kL2 };

    virtual ~Telemetry() = default;
    virtual void definition_cache_lookup(CacheLevel level, bool hit) = 0;
};

}  // namespace pythmata::app
