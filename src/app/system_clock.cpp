#include "pythmata/app/system_clock.hpp"

#include <chrono>

namespace pythmata::app {

TimePoint SystemClock::now() const {
    return std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now());
}

}  // namespace pythmata::app
