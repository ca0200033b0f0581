#include "pythmata/bpmn/timer_spec.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace pythmata::bpmn {

namespace {

using std::chrono::days;
using std::chrono::floor;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::year_month_day;

// Durations longer than this are refused: they overflow nothing, but they are certainly typos.
constexpr std::int64_t kMaxDurationMs = 10'000LL * 366 * 86'400'000LL;
constexpr std::int64_t kMaxMonths = 10'000LL * 12;
constexpr int kMinCronYear = 1970;
constexpr int kMaxCronYear = 2199;
// Upper bound on search steps for a cron match; each step moves at least one day, month or
// year forward, so this covers centuries. Fields that can never meet are refused at parse time.
constexpr int kMaxCronSteps = 200'000;

/// Calendar months plus a fixed number of milliseconds.
struct IsoDuration {
    std::int64_t months = 0;
    std::int64_t millis = 0;

    [[nodiscard]] bool positive() const { return months > 0 || millis > 0; }
};

TimePoint add_months(TimePoint t, std::int64_t months) {
    if (months == 0) {
        return t;
    }
    const sys_days day_start = floor<days>(t);
    const auto time_of_day = t - day_start;
    const year_month_day ymd{day_start};
    const std::chrono::year_month ym =
        ymd.year() / ymd.month() + std::chrono::months{static_cast<int>(months)};
    const std::chrono::day last = (ym / std::chrono::last).day();
    const std::chrono::day d = std::min(ymd.day(), last);
    return TimePoint{sys_days{ym / d}} + time_of_day;
}

TimePoint add(TimePoint t, const IsoDuration& d, std::int64_t times = 1) {
    return add_months(t, d.months * times) + Millis{d.millis * times};
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
        text.remove_prefix(1);
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.remove_suffix(1);
    }
    return text;
}

std::string upper(std::string_view text) {
    std::string out{text};
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

Result<IsoDuration, std::string> parse_duration(std::string_view text) {
    const std::string t = upper(text);
    const auto fail = [&](std::string why) -> Result<IsoDuration, std::string> {
        return "invalid ISO 8601 duration \"" + std::string{text} + "\": " + why;
    };
    if (t.size() < 2 || t[0] != 'P') {
        return fail("it must start with P and name at least one component (e.g. PT30S)");
    }
    // Designators in the order ISO 8601 requires them; the same letter M means months before T
    // and minutes after it.
    constexpr std::array<char, 4> kDateOrder = {'Y', 'M', 'W', 'D'};
    constexpr std::array<char, 3> kTimeOrder = {'H', 'M', 'S'};
    IsoDuration out;
    double millis = 0.0;
    bool in_time = false;
    bool any = false;
    bool time_any = false;
    bool had_fraction = false;
    std::size_t order = 0;  // index of the next allowed designator in the current part
    std::size_t pos = 1;
    while (pos < t.size()) {
        if (t[pos] == 'T') {
            if (in_time) {
                return fail("T appears twice");
            }
            in_time = true;
            order = 0;
            ++pos;
            continue;
        }
        if (had_fraction) {
            return fail("only the last component may have a fraction");
        }
        const std::size_t start = pos;
        while (pos < t.size() && std::isdigit(static_cast<unsigned char>(t[pos]))) {
            ++pos;
        }
        const std::size_t int_end = pos;
        std::size_t frac_start = pos;
        if (pos < t.size() && (t[pos] == '.' || t[pos] == ',')) {
            ++pos;
            frac_start = pos;
            while (pos < t.size() && std::isdigit(static_cast<unsigned char>(t[pos]))) {
                ++pos;
            }
            if (pos == frac_start) {
                return fail("a decimal separator must be followed by digits");
            }
            had_fraction = true;
        }
        if (int_end == start || pos >= t.size()) {
            return fail("expected a number followed by a designator at position " +
                        std::to_string(start));
        }
        if (int_end - start > 12) {
            return fail("number too large");
        }
        const char designator = t[pos++];
        const std::int64_t whole = std::stoll(t.substr(start, int_end - start));
        double value = static_cast<double>(whole);
        if (had_fraction) {
            value = std::stod("0." + t.substr(frac_start, pos - 1 - frac_start)) + value;
        }
        const auto* begin = in_time ? kTimeOrder.begin() : kDateOrder.begin();
        const auto* end = in_time ? kTimeOrder.end() : kDateOrder.end();
        const auto* found =
            std::find(begin + std::min<std::ptrdiff_t>(order, end - begin), end, designator);
        if (found == end) {
            return fail(std::string{"unexpected or out-of-order designator '"} + designator + "'");
        }
        order = static_cast<std::size_t>(found - begin) + 1;
        any = true;
        time_any = time_any || in_time;
        if (!in_time && (designator == 'Y' || designator == 'M')) {
            if (had_fraction) {
                return fail("years and months cannot have a fraction");
            }
            out.months += designator == 'Y' ? whole * 12 : whole;
            continue;
        }
        double unit_ms = 0;
        switch (designator) {
            case 'W':
                unit_ms = 7.0 * 86'400'000.0;
                break;
            case 'D':
                unit_ms = 86'400'000.0;
                break;
            case 'H':
                unit_ms = 3'600'000.0;
                break;
            case 'M':
                unit_ms = 60'000.0;
                break;
            case 'S':
                unit_ms = 1'000.0;
                break;
            default:
                break;
        }
        millis += value * unit_ms;
    }
    if (!any) {
        return fail("no components");
    }
    if (in_time && !time_any) {
        return fail("T must be followed by hours, minutes or seconds");
    }
    if (millis > static_cast<double>(kMaxDurationMs) || out.months > kMaxMonths) {
        return fail("longer than 10,000 years");
    }
    out.millis = static_cast<std::int64_t>(std::llround(millis));
    return out;
}

/// One cron field as a set of allowed values (index = value).
struct CronField {
    std::vector<bool> allowed;
    bool any = false;  // written as * or ? (matters for the day-of-month/day-of-week rule)

    [[nodiscard]] bool has(int value) const {
        return value >= 0 && static_cast<std::size_t>(value) < allowed.size() && allowed[value];
    }
};

struct CronSpec {
    CronField seconds;
    CronField minutes;
    CronField hours;
    CronField days_of_month;
    CronField months;
    CronField days_of_week;  // 0 = Sunday
    CronField years;         // absolute years; `any` when the field is absent

    [[nodiscard]] bool day_matches(const year_month_day& ymd) const {
        const bool dom = days_of_month.has(static_cast<int>(unsigned{ymd.day()}));
        const bool dow =
            days_of_week.has(static_cast<int>(std::chrono::weekday{sys_days{ymd}}.c_encoding()));
        if (days_of_month.any) {
            return dow;
        }
        if (days_of_week.any) {
            return dom;
        }
        return dom || dow;
    }
};

int name_value(std::string_view token, const std::vector<std::string_view>& names, int first) {
    const std::string up = upper(token);
    for (std::size_t i = 0; i < names.size(); ++i) {
        if (up == names[i]) {
            return first + static_cast<int>(i);
        }
    }
    return -1;
}

Result<CronField, std::string> parse_cron_field(std::string_view text, std::string_view what,
                                                int min, int max,
                                                const std::vector<std::string_view>& names,
                                                int names_first, bool question_ok) {
    CronField field;
    field.allowed.assign(static_cast<std::size_t>(max) + 1, false);
    const auto fail = [&](std::string why) -> Result<CronField, std::string> {
        return "invalid cron " + std::string{what} + " field \"" + std::string{text} + "\": " + why;
    };
    const auto value_of = [&](std::string_view token, int& out) {
        if (token.empty()) {
            return false;
        }
        if (std::all_of(token.begin(), token.end(),
                        [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
            if (token.size() > 4) {
                return false;
            }
            out = std::stoi(std::string{token});
            return true;
        }
        out = name_value(token, names, names_first);
        return out >= 0;
    };
    field.any = !text.empty() && (text.front() == '*' || text.front() == '?');
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view item = text.substr(start, comma - start);
        start = comma + 1;
        if (item.empty()) {
            return fail("empty list item");
        }
        std::string_view range = item;
        int step = 1;
        if (const auto slash = item.find('/'); slash != std::string_view::npos) {
            range = item.substr(0, slash);
            const std::string_view step_text = item.substr(slash + 1);
            if (!value_of(step_text, step) ||
                step_text.find_first_not_of("0123456789") != std::string_view::npos || step <= 0) {
                return fail("bad step \"" + std::string{step_text} + "\"");
            }
        }
        int low = min;
        int high = max;
        if (range == "*" || (range == "?" && question_ok)) {
            if (range == "?" && item.size() != 1) {
                return fail("? cannot take a step");
            }
        } else if (const auto dash = range.find('-'); dash != std::string_view::npos) {
            if (!value_of(range.substr(0, dash), low) || !value_of(range.substr(dash + 1), high)) {
                return fail("bad range \"" + std::string{range} + "\"");
            }
        } else {
            if (!value_of(range, low)) {
                return fail("bad value \"" + std::string{range} + "\"" +
                            (range.find_first_of("LW#") != std::string_view::npos
                                 ? " (L, W and # are not supported)"
                                 : ""));
            }
            // "a/n" (Quartz) runs from a to the end of the range; a plain "a" is just a.
            high = range.size() == item.size() ? low : max;
        }
        if (low < min || high > max || low > high) {
            return fail("values must lie in " + std::to_string(min) + "-" + std::to_string(max) +
                        " with the lower bound first");
        }
        for (int v = low; v <= high; v += step) {
            field.allowed[static_cast<std::size_t>(v)] = true;
        }
        if (comma == text.size()) {
            break;
        }
    }
    return field;
}

Result<CronSpec, std::string> parse_cron(std::string_view text) {
    std::vector<std::string_view> fields;
    for (std::size_t pos = 0; pos < text.size();) {
        while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos]))) {
            ++pos;
        }
        const std::size_t start = pos;
        while (pos < text.size() && !std::isspace(static_cast<unsigned char>(text[pos]))) {
            ++pos;
        }
        if (pos > start) {
            fields.push_back(text.substr(start, pos - start));
        }
    }
    if (fields.size() < 5 || fields.size() > 7) {
        return "invalid cron expression \"" + std::string{text} +
               "\": expected 5 fields (minute hour day month weekday), 6 with seconds first, "
               "or 7 with a trailing year";
    }
    static const std::vector<std::string_view> kNoNames;
    static const std::vector<std::string_view> kMonths = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
    static const std::vector<std::string_view> kDays = {"SUN", "MON", "TUE", "WED",
                                                        "THU", "FRI", "SAT"};
    const bool with_seconds = fields.size() >= 6;
    const std::size_t o = with_seconds ? 1 : 0;
    CronSpec spec;
    if (with_seconds) {
        auto s = parse_cron_field(fields[0], "second", 0, 59, kNoNames, 0, false);
        if (!s) {
            return std::move(s).error();
        }
        spec.seconds = std::move(s).value();
    } else {
        spec.seconds.allowed.assign(60, false);
        spec.seconds.allowed[0] = true;
    }
    auto mi = parse_cron_field(fields[o], "minute", 0, 59, kNoNames, 0, false);
    auto h = parse_cron_field(fields[o + 1], "hour", 0, 23, kNoNames, 0, false);
    auto dom = parse_cron_field(fields[o + 2], "day-of-month", 1, 31, kNoNames, 0, true);
    auto mo = parse_cron_field(fields[o + 3], "month", 1, 12, kMonths, 1, false);
    auto dow = parse_cron_field(fields[o + 4], "day-of-week", 0, 7, kDays, 0, true);
    for (auto* r : {&mi, &h, &dom, &mo, &dow}) {
        if (!*r) {
            return std::move(*r).error();
        }
    }
    spec.minutes = std::move(mi).value();
    spec.hours = std::move(h).value();
    spec.days_of_month = std::move(dom).value();
    spec.months = std::move(mo).value();
    spec.days_of_week = std::move(dow).value();
    if (spec.days_of_week.allowed[7]) {
        spec.days_of_week.allowed[0] = true;  // 7 is Sunday too
    }
    if (fields.size() == 7) {
        auto y = parse_cron_field(fields[6], "year", kMinCronYear, kMaxCronYear, kNoNames, 0, true);
        if (!y) {
            return std::move(y).error();
        }
        spec.years = std::move(y).value();
    } else {
        spec.years.allowed.assign(static_cast<std::size_t>(kMaxCronYear) + 1, false);
        std::fill(spec.years.allowed.begin() + kMinCronYear, spec.years.allowed.end(), true);
        spec.years.any = true;
    }
    if (!spec.days_of_month.any && spec.days_of_week.any) {
        // The day-of-month alone decides: some allowed month must have an allowed day.
        constexpr std::array<int, 13> kLongest = {0,  31, 29, 31, 30, 31, 30,
                                                  31, 31, 30, 31, 30, 31};
        bool possible = false;
        for (int m = 1; m <= 12 && !possible; ++m) {
            for (int d = 1; d <= kLongest[m] && !possible; ++d) {
                possible = spec.months.has(m) && spec.days_of_month.has(d);
            }
        }
        if (!possible) {
            return "cron expression \"" + std::string{text} +
                   "\" never fires: no allowed month has the allowed day of month";
        }
    }
    return spec;
}

std::optional<TimePoint> next_cron(const CronSpec& spec, TimePoint after) {
    TimePoint t = floor<seconds>(after) + seconds{1};
    for (int step = 0; step < kMaxCronSteps; ++step) {
        const sys_days day = floor<days>(t);
        const year_month_day ymd{day};
        const int y = static_cast<int>(ymd.year());
        if (y > kMaxCronYear) {
            return std::nullopt;
        }
        if (!spec.years.has(y)) {
            t = TimePoint{sys_days{std::chrono::year{y + 1} / 1 / 1}};
            continue;
        }
        if (!spec.months.has(static_cast<int>(unsigned{ymd.month()}))) {
            const auto next_month = ymd.year() / ymd.month() + std::chrono::months{1};
            t = TimePoint{sys_days{next_month / 1}};
            continue;
        }
        if (!spec.day_matches(ymd)) {
            t = TimePoint{day + days{1}};
            continue;
        }
        const std::chrono::hh_mm_ss<Millis> tod{t - TimePoint{day}};
        const int hh = static_cast<int>(tod.hours().count());
        const int mm = static_cast<int>(tod.minutes().count());
        const int ss = static_cast<int>(tod.seconds().count());
        if (!spec.hours.has(hh)) {
            t = TimePoint{day} + hours{hh + 1};
            continue;
        }
        if (!spec.minutes.has(mm)) {
            t = TimePoint{day} + hours{hh} + minutes{mm + 1};
            continue;
        }
        if (!spec.seconds.has(ss)) {
            t = TimePoint{day} + hours{hh} + minutes{mm} + seconds{ss + 1};
            continue;
        }
        return t;
    }
    return std::nullopt;
}

}  // namespace

struct TimerSpec::Data {
    enum class Form { kDuration, kDate, kCycle, kCron };
    Form form = Form::kDuration;
    IsoDuration period;             // duration, or cycle period
    std::optional<TimePoint> date;  // date, or cycle start
    std::optional<TimePoint> end;   // cycle end
    std::int64_t repetitions = 1;   // cycles: -1 = unbounded
    CronSpec cron;

    // The first occurrence of a start-anchored cycle at or after (or strictly after) `t`:
    // start + k * period, computed from the start so that month ends do not drift.
    [[nodiscard]] std::optional<std::pair<TimePoint, std::int64_t>> anchored_at_or_after(
        TimePoint t, bool strictly) const {
        const TimePoint start = *date;
        const auto before = [&](TimePoint occurrence) {
            return strictly ? occurrence <= t : occurrence < t;
        };
        std::int64_t k = 0;
        if (before(start)) {
            const double approx_ms = static_cast<double>(period.months) * 30.436875 * 86'400'000.0 +
                                     static_cast<double>(period.millis);
            const double gap = static_cast<double>((t - start).count());
            k = std::max<std::int64_t>(0, static_cast<std::int64_t>(gap / approx_ms) - 2);
            while (k > 0 && !before(add(start, period, k))) {
                --k;
            }
            while (before(add(start, period, k))) {
                ++k;
            }
        }
        const TimePoint occurrence = add(start, period, k);
        if (end && occurrence > *end) {
            return std::nullopt;
        }
        return std::pair{occurrence, k};
    }
};

Result<TimerSpec, std::string> TimerSpec::parse(TimerKind kind, std::string_view text) {
    std::string_view t = trim(text);
    if (t.size() >= 2 && (t.front() == '"' || t.front() == '\'') && t.back() == t.front()) {
        t = trim(t.substr(1, t.size() - 2));
    }
    if (t.empty()) {
        return std::string{"empty timer value"};
    }
    if (t.find("${") != std::string_view::npos || t.front() == '=') {
        return "timer value \"" + std::string{t} +
               "\" is an expression; evaluate it before parsing the result";
    }
    auto data = std::make_shared<Data>();
    switch (kind) {
        case TimerKind::kNone:
            return std::string{"no timer kind given"};
        case TimerKind::kDuration: {
            auto d = parse_duration(t);
            if (!d) {
                return std::move(d).error();
            }
            data->form = Data::Form::kDuration;
            data->period = d.value();
            break;
        }
        case TimerKind::kDate: {
            const auto date = parse_rfc3339(t);
            if (!date) {
                return "invalid ISO 8601 date-time \"" + std::string{t} +
                       "\" (expected e.g. 2026-01-01T10:00:00Z or with an offset +02:00)";
            }
            data->form = Data::Form::kDate;
            data->date = date;
            break;
        }
        case TimerKind::kCycle: {
            if (t.front() == 'P' || t.front() == 'p') {
                return "invalid cycle \"" + std::string{t} +
                       "\": a cycle repeats a duration with R, e.g. R/" + std::string{t} +
                       " (unbounded) or R3/" + std::string{t};
            }
            if (t.front() != 'R' && t.front() != 'r') {
                auto cron = parse_cron(t);
                if (!cron) {
                    return std::move(cron).error();
                }
                data->form = Data::Form::kCron;
                data->cron = std::move(cron).value();
                data->repetitions = -1;
                break;
            }
            const auto fail = [&](std::string why) -> Result<TimerSpec, std::string> {
                return "invalid ISO 8601 cycle \"" + std::string{t} + "\": " + why;
            };
            std::vector<std::string_view> parts;
            for (std::size_t pos = 0;;) {
                const std::size_t slash = t.find('/', pos);
                parts.push_back(t.substr(
                    pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
                if (slash == std::string_view::npos) {
                    break;
                }
                pos = slash + 1;
            }
            if (parts.size() < 2 || parts.size() > 3) {
                return fail("expected R[n]/duration, R[n]/start/duration or R[n]/duration/end");
            }
            const std::string_view reps = parts[0].substr(1);
            data->repetitions = -1;
            if (!reps.empty()) {
                if (reps.size() > 12 ||
                    reps.find_first_not_of("0123456789") != std::string_view::npos) {
                    return fail("bad repetition count \"" + std::string{reps} + "\"");
                }
                data->repetitions = std::stoll(std::string{reps});
                if (data->repetitions == 0) {
                    return fail("R0 never fires");
                }
            }
            const auto is_duration = [](std::string_view p) {
                return !p.empty() && (p.front() == 'P' || p.front() == 'p');
            };
            std::string_view duration_text;
            if (parts.size() == 2) {
                duration_text = parts[1];
            } else if (is_duration(parts[1]) && !is_duration(parts[2])) {
                duration_text = parts[1];
                data->end = parse_rfc3339(parts[2]);
                if (!data->end) {
                    return fail("bad end date \"" + std::string{parts[2]} + "\"");
                }
            } else if (!is_duration(parts[1]) && is_duration(parts[2])) {
                data->date = parse_rfc3339(parts[1]);
                if (!data->date) {
                    return fail("bad start date \"" + std::string{parts[1]} + "\"");
                }
                duration_text = parts[2];
            } else {
                return fail("expected one duration and at most one date");
            }
            if (!is_duration(duration_text)) {
                return fail("\"" + std::string{duration_text} + "\" is not a duration");
            }
            auto d = parse_duration(duration_text);
            if (!d) {
                return std::move(d).error();
            }
            if (!d.value().positive()) {
                return fail("the period must be longer than zero");
            }
            data->form = Data::Form::kCycle;
            data->period = d.value();
            break;
        }
    }
    TimerSpec spec;
    spec.data_ = std::move(data);
    return spec;
}

std::optional<TimePoint> TimerSpec::first(TimePoint armed_at) const {
    if (!data_) {
        return std::nullopt;
    }
    const Data& d = *data_;
    switch (d.form) {
        case Data::Form::kDuration:
            return add(armed_at, d.period);
        case Data::Form::kDate:
            return d.date;
        case Data::Form::kCron:
            return next_cron(d.cron, armed_at);
        case Data::Form::kCycle: {
            if (d.date) {
                const auto found = d.anchored_at_or_after(armed_at, false);
                return found ? std::optional{found->first} : std::nullopt;
            }
            const TimePoint at = add(armed_at, d.period);
            if (d.end && at > *d.end) {
                return std::nullopt;
            }
            return at;
        }
    }
    return std::nullopt;
}

std::optional<TimePoint> TimerSpec::next(TimePoint previous, std::int64_t fired_count) const {
    if (!data_) {
        return std::nullopt;
    }
    const Data& d = *data_;
    switch (d.form) {
        case Data::Form::kDuration:
        case Data::Form::kDate:
            return std::nullopt;
        case Data::Form::kCron:
            return next_cron(d.cron, previous);
        case Data::Form::kCycle: {
            if (d.repetitions >= 0 && fired_count >= d.repetitions) {
                return std::nullopt;
            }
            if (d.date) {
                const auto found = d.anchored_at_or_after(previous, true);
                return found ? std::optional{found->first} : std::nullopt;
            }
            const TimePoint at = add(previous, d.period);
            if (d.end && at > *d.end) {
                return std::nullopt;
            }
            return at;
        }
    }
    return std::nullopt;
}

std::int64_t TimerSpec::repetitions() const {
    if (!data_) {
        return 1;
    }
    switch (data_->form) {
        case Data::Form::kCycle:
        case Data::Form::kCron:
            return data_->repetitions;
        default:
            return 1;
    }
}

bool TimerSpec::is_cycle() const {
    return data_ && (data_->form == Data::Form::kCycle || data_->form == Data::Form::kCron);
}

}  // namespace pythmata::bpmn
