// libFuzzer target: timer values (ISO 8601 durations, dates, cycles and cron).
// Input: the first byte picks the kind (duration, date, cycle), the rest is the text.
// Contract checked: parse errors are values; for what parses, first() and next() return
// without crashing, and a cycle's next firing is strictly after the previous one (otherwise
// the engine would fire the same timer forever).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pythmata/bpmn/timer_spec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using pythmata::bpmn::TimerKind;
    if (size == 0) {
        return 0;
    }
    static constexpr TimerKind kKinds[] = {TimerKind::kDuration, TimerKind::kDate,
                                           TimerKind::kCycle};
    const TimerKind kind = kKinds[data[0] % 3];
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
    auto spec = pythmata::bpmn::TimerSpec::parse(kind, text);
    if (!spec.ok()) {
        return 0;
    }
    const pythmata::TimePoint armed_at = pythmata::from_epoch_ms(1'795'000'000'000);
    auto previous = spec->first(armed_at);
    const std::int64_t repetitions = spec->repetitions();
    for (std::int64_t fired = 1; previous && fired <= 8; ++fired) {
        auto following = spec->next(*previous, fired);
        if (following && *following <= *previous) {
            __builtin_trap();  // a cycle must move forward
        }
        if (following && repetitions >= 0 && fired >= repetitions) {
            __builtin_trap();  // fired more often than its repetitions allow
        }
        previous = following;
    }
    return 0;
}
