#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pythmata {

/// Wall-clock instants in milliseconds since the Unix epoch, UTC. The pure layers never read a
/// clock: time is passed in as a TimePoint.
using Millis = std::chrono::milliseconds;
using TimePoint = std::chrono::sys_time<Millis>;

/// RFC 3339 UTC with milliseconds: 2026-11-28T15:04:05.123Z.
[[nodiscard]] std::string format_rfc3339(TimePoint t);

/// Parses RFC 3339 / ISO 8601 date-times: `2026-11-28T15:04:05Z`, with optional fraction and
/// `+hh:mm` / `-hh:mm` offset; a date alone (`2026-11-28`) is midnight UTC. nullopt when malformed.
[[nodiscard]] std::optional<TimePoint> parse_rfc3339(std::string_view text);

[[nodiscard]] inline std::int64_t to_epoch_ms(TimePoint t) {
    return t.time_since_epoch().count();
}
[[nodiscard]] inline TimePoint from_epoch_ms(std::int64_t ms) {
    return TimePoint{Millis{ms}};
}

}  // namespace pythmata
