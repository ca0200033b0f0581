#pragma once

#include "pythmata/app/ports/clock.hpp"

namespace pythmata::app {

/// The real wall clock (std::chrono::system_clock), millisecond resolution.
class SystemClock final : public Clock {
  public:
    [[nodiscard]] TimePoint now() const override;
};

}  // namespace pythmata::app
