#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pythmata/bpmn/model.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/common/time.hpp"

namespace pythmata::bpmn {

/// A parsed timer value: an ISO 8601 duration (`P1DT2H`, `PT0.5S`, `P2W`), a date-time with
/// offset, a repeating cycle `R[n]/duration`, `R[n]/start/duration`, or a cron expression
/// (5 fields, or 6 with seconds first; `*`, lists, ranges, steps, month and day names).
class TimerSpec {
public:
    /// Parses `text` as the given kind (kDuration, kDate, kCycle; a cycle may be cron).
    [[nodiscard]] static Result<TimerSpec, std::string> parse(TimerKind kind, std::string_view text);

    /// The first firing for a timer armed at `armed_at`; nullopt when it never fires.
    [[nodiscard]] std::optional<TimePoint> first(TimePoint armed_at) const;
    /// The firing after `previous` for cycles (`fired_count` firings so far, including
    /// `previous`); nullopt when the repetitions are used up or for non-cycles.
    [[nodiscard]] std::optional<TimePoint> next(TimePoint previous, std::int64_t fired_count) const;
    /// Repetitions for cycles (-1 = unbounded), 1 otherwise.
    [[nodiscard]] std::int64_t repetitions() const;

    struct Data;

private:
    std::shared_ptr<const Data> data_;
};

}  // namespace pythmata::bpmn
