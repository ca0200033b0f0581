#pragma once

#include "pythmata/common/time.hpp"

namespace pythmata::app {

/// The one source of "now" for the use cases. Thread-safe.
class Clock {
  public:
    virtual ~Clock() = default;
    [[nodiscard]] virtual TimePoint now() const = 0;
};

}  // namespace pythmata::app
