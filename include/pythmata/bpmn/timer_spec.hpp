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
/// offset, a repeating cycle `R[n]/duration`, `R[n]/start/duration`, `R[n]/duration/end`, or a
/// cron expression (5 fields, or 6 with seconds first, or 7 with a trailing year; `*`, `?`,
/// lists, ranges, steps, month names JAN-DEC and day names SUN-SAT).
///
/// TimerSpec parses literal text only. A timer value written as an expression (`${delay}`,
/// Zeebe's `=delay`, a SpiffWorkflow Python expression) is NOT parsed here: the engine evaluates
/// the expression first and calls parse() with the resulting string. As a convenience for
/// SpiffWorkflow models, whose timer values are Python string literals, one pair of enclosing
/// quotes ('PT1M' or "PT1M") is removed before parsing.
///
/// Semantics, all in UTC (time zones and DST do not apply):
/// - Years and months in durations are calendar arithmetic: the date moves by whole months and
///   the day is clamped to the end of the target month (2024-01-31 + P1M = 2024-02-29);
///   weeks, days, hours, minutes and seconds are fixed lengths (a day is 86,400 s). A fraction
///   is allowed on the last component (`PT0.5S`, `P1.5D`, `PT1,5H`), resolved to milliseconds.
/// - A date without an offset is UTC. A date in the past is returned as it is by first(): the
///   timer is due at once.
/// - Cycles: the first firing is `start` (or `armed_at + duration` without a start), then every
///   `duration` after the previous firing. Occurrences of a start-dated cycle that lie before
///   `armed_at` are skipped and do not count as repetitions. `R/...` repeats forever; an end
///   date stops the cycle after the last firing not later than the end.
/// - Cron: the next second matching every field after the given instant. Day-of-week numbers
///   follow Unix cron and Spring (0 or 7 = Sunday, 1 = Monday); names avoid the ambiguity with
///   Quartz's 1 = Sunday. When both day-of-month and day-of-week are restricted (neither `*`
///   nor `?`), a day matches if EITHER matches (Vixie cron rule). A cron never runs out.
///
/// Immutable and cheap to copy (shared data); safe to use from several threads. A
/// default-constructed TimerSpec never fires.
class TimerSpec {
  public:
    /// Parses `text` as the given kind (kDuration, kDate, kCycle; a cycle may be cron). Fails
    /// with a message naming the problem, also for cycles that can never fire (a zero period,
    /// a cron whose day and month fields never meet, such as 30 February).
    [[nodiscard]] static Result<TimerSpec, std::string> parse(TimerKind kind,
                                                              std::string_view text);

    /// The first firing for a timer armed at `armed_at`; nullopt when it never fires.
    [[nodiscard]] std::optional<TimePoint> first(TimePoint armed_at) const;
    /// The firing after `previous` for cycles (`fired_count` firings so far, including
    /// `previous`); nullopt when the repetitions are used up or for non-cycles.
    [[nodiscard]] std::optional<TimePoint> next(TimePoint previous, std::int64_t fired_count) const;
    /// Repetitions for cycles (-1 = unbounded, also for cron), 1 otherwise.
    [[nodiscard]] std::int64_t repetitions() const;
    /// True for cycles and cron expressions (a timer that re-arms after firing).
    [[nodiscard]] bool is_cycle() const;

    struct Data;

  private:
    std::shared_ptr<const Data> data_;
};

}  // namespace pythmata::bpmn
