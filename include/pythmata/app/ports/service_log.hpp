#pragma once

#include <string_view>

namespace pythmata::app {

/// Where the built-in `logger` service task writes (a named logger in main). Thread-safe,
/// non-blocking enough to call from the runtime's service threads.
class ServiceLog {
  public:
    virtual ~ServiceLog() = default;
    /// `level`: trace, debug, info, warn, error (anything else is logged as info).
    virtual void write(std::string_view level, std::string_view instance_id,
                       std::string_view element_id, std::string_view message) = 0;
};

}  // namespace pythmata::app
