#include "pythmata/bpmn/timer_spec.hpp"

#include <string>

#include <gtest/gtest.h>

namespace pythmata::bpmn {
namespace {

TimePoint at(std::string_view text) {
    const auto t = parse_rfc3339(text);
    EXPECT_TRUE(t.has_value()) << text;
    return t.value_or(TimePoint{});
}

TimerSpec spec(TimerKind kind, std::string_view text) {
    auto r = TimerSpec::parse(kind, text);
    EXPECT_TRUE(r.ok()) << text << ": " << (r.ok() ? "" : r.error());
    return r.ok() ? r.value() : TimerSpec{};
}

std::string first_after(TimerKind kind, std::string_view text, std::string_view armed) {
    const auto t = spec(kind, text).first(at(armed));
    return t ? format_rfc3339(*t) : "never";
}

TEST(TimerSpecDuration, AddsEveryComponentWithCalendarYearsAndMonths) {
    // 2026-01-31 + 1Y2M = 2027-03-31, + 3D = 2027-04-03, + 4:05:06.5.
    EXPECT_EQ(first_after(TimerKind::kDuration, "P1Y2M3DT4H5M6.5S", "2026-01-31T00:00:00Z"),
              "2027-04-03T04:05:06.500Z");
}

TEST(TimerSpecDuration, WeeksAreSevenDays) {
    EXPECT_EQ(first_after(TimerKind::kDuration, "P2W", "2026-02-20T10:00:00Z"),
              "2026-03-06T10:00:00.000Z");
}

TEST(TimerSpecDuration, FractionalSecondsResolveToMilliseconds) {
    EXPECT_EQ(first_after(TimerKind::kDuration, "PT0.5S", "2026-01-01T00:00:00Z"),
              "2026-01-01T00:00:00.500Z");
    EXPECT_EQ(first_after(TimerKind::kDuration, "PT1,5H", "2026-01-01T00:00:00Z"),
              "2026-01-01T01:30:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kDuration, "P1.5D", "2026-01-01T00:00:00Z"),
              "2026-01-02T12:00:00.000Z");
}

TEST(TimerSpecDuration, MonthArithmeticClampsToTheEndOfShorterMonths) {
    EXPECT_EQ(first_after(TimerKind::kDuration, "P1M", "2024-01-31T08:00:00Z"),
              "2024-02-29T08:00:00.000Z");  // leap year
    EXPECT_EQ(first_after(TimerKind::kDuration, "P1M", "2023-01-31T08:00:00Z"),
              "2023-02-28T08:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kDuration, "P1Y", "2024-02-29T00:00:00Z"),
              "2025-02-28T00:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kDuration, "P4Y", "2024-02-29T00:00:00Z"),
              "2028-02-29T00:00:00.000Z");
}

TEST(TimerSpecDuration, DaysAreFixedLengthInUtcAcrossDaylightSavingDates) {
    // 2026-03-29 is the EU switch to summer time; in UTC a day is still 24 h.
    EXPECT_EQ(first_after(TimerKind::kDuration, "P1D", "2026-03-28T12:00:00Z"),
              "2026-03-29T12:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kDuration, "PT24H", "2026-10-24T12:00:00Z"),
              "2026-10-25T12:00:00.000Z");
}

TEST(TimerSpecDuration, ZeroDurationFiresAtOnce) {
    EXPECT_EQ(first_after(TimerKind::kDuration, "PT0S", "2026-01-01T00:00:00Z"),
              "2026-01-01T00:00:00.000Z");
}

TEST(TimerSpecDuration, RejectsMalformedDurations) {
    for (const char* bad :
         {"P", "PT", "1D", "P1H", "PT1D", "P1M1Y", "P1.5Y", "P1.5DT1H", "-P1D", "P1DT", "PT1S2M",
          "P1D1D", "P.5D", "P1.D", "PT10000000000000S", "hello"}) {
        EXPECT_FALSE(TimerSpec::parse(TimerKind::kDuration, bad).ok()) << bad;
    }
}

TEST(TimerSpecDuration, DoesNotRepeat) {
    const TimerSpec s = spec(TimerKind::kDuration, "PT1M");
    EXPECT_EQ(s.repetitions(), 1);
    EXPECT_FALSE(s.is_cycle());
    EXPECT_FALSE(s.next(at("2026-01-01T00:00:00Z"), 1).has_value());
}

TEST(TimerSpecDuration, StripsOnePairOfQuotesAsSpiffWorkflowWritesThem) {
    EXPECT_EQ(first_after(TimerKind::kDuration, "\"PT0.03S\"", "2026-01-01T00:00:00Z"),
              "2026-01-01T00:00:00.030Z");
    EXPECT_EQ(first_after(TimerKind::kDuration, "  'PT1M' ", "2026-01-01T00:00:00Z"),
              "2026-01-01T00:01:00.000Z");
}

TEST(TimerSpec, RefusesExpressionsWhichTheEngineMustEvaluateFirst) {
    const auto r = TimerSpec::parse(TimerKind::kDuration, "${delay}");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().find("expression"), std::string::npos);
    EXPECT_FALSE(TimerSpec::parse(TimerKind::kDuration, "=delay").ok());
    EXPECT_FALSE(TimerSpec::parse(TimerKind::kDuration, "").ok());
}

TEST(TimerSpec, DefaultConstructedSpecNeverFires) {
    const TimerSpec s;
    EXPECT_FALSE(s.first(at("2026-01-01T00:00:00Z")).has_value());
    EXPECT_FALSE(s.next(at("2026-01-01T00:00:00Z"), 1).has_value());
}

TEST(TimerSpecDate, ParsesUtcAndOffsetsAndFiresOnce) {
    EXPECT_EQ(first_after(TimerKind::kDate, "2026-03-01T10:00:00+02:00", "2020-01-01T00:00:00Z"),
              "2026-03-01T08:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kDate, "2026-03-01T10:00:00Z", "2020-01-01T00:00:00Z"),
              "2026-03-01T10:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kDate, "2026-03-01T10:00:00", "2020-01-01T00:00:00Z"),
              "2026-03-01T10:00:00.000Z");
    const TimerSpec s = spec(TimerKind::kDate, "2026-03-01T10:00:00Z");
    EXPECT_FALSE(s.next(at("2026-03-01T10:00:00Z"), 1).has_value());
    EXPECT_FALSE(TimerSpec::parse(TimerKind::kDate, "2026-02-30T10:00:00Z").ok());
    EXPECT_FALSE(TimerSpec::parse(TimerKind::kDate, "PT1M").ok());
}

TEST(TimerSpecCycle, UnboundedCycleRepeatsForever) {
    const TimerSpec s = spec(TimerKind::kCycle, "R/PT1M");
    EXPECT_EQ(s.repetitions(), -1);
    EXPECT_TRUE(s.is_cycle());
    EXPECT_EQ(format_rfc3339(*s.first(at("2026-01-01T00:00:00Z"))), "2026-01-01T00:01:00.000Z");
    EXPECT_EQ(format_rfc3339(*s.next(at("2026-01-01T00:01:00Z"), 1'000'000)),
              "2026-01-01T00:02:00.000Z");
}

TEST(TimerSpecCycle, BoundedCycleStopsAfterItsRepetitions) {
    const TimerSpec s = spec(TimerKind::kCycle, "R5/PT10S");
    EXPECT_EQ(s.repetitions(), 5);
    EXPECT_EQ(format_rfc3339(*s.next(at("2026-01-01T00:00:40Z"), 4)), "2026-01-01T00:00:50.000Z");
    EXPECT_FALSE(s.next(at("2026-01-01T00:00:50Z"), 5).has_value());
}

TEST(TimerSpecCycle, StartDatedCycleFiresAtTheStartThenEveryPeriod) {
    const TimerSpec s = spec(TimerKind::kCycle, "R3/2026-01-01T00:00:00Z/P1D");
    EXPECT_EQ(s.repetitions(), 3);
    EXPECT_EQ(format_rfc3339(*s.first(at("2025-12-01T00:00:00Z"))), "2026-01-01T00:00:00.000Z");
    EXPECT_EQ(format_rfc3339(*s.next(at("2026-01-01T00:00:00Z"), 1)), "2026-01-02T00:00:00.000Z");
    EXPECT_EQ(format_rfc3339(*s.next(at("2026-01-02T00:00:00Z"), 2)), "2026-01-03T00:00:00.000Z");
    EXPECT_FALSE(s.next(at("2026-01-03T00:00:00Z"), 3).has_value());
}

TEST(TimerSpecCycle, StartDatedCycleArmedLateSkipsPastOccurrences) {
    const TimerSpec s = spec(TimerKind::kCycle, "R/2000-01-01T00:00:00Z/PT1S");
    EXPECT_EQ(format_rfc3339(*s.first(at("2026-05-05T10:00:00.500Z"))), "2026-05-05T10:00:01.000Z");
    const TimerSpec daily = spec(TimerKind::kCycle, "R3/2026-01-01T00:00:00Z/P1D");
    EXPECT_EQ(format_rfc3339(*daily.first(at("2026-01-01T12:00:00Z"))), "2026-01-02T00:00:00.000Z");
}

TEST(TimerSpecCycle, MonthlyCycleAnchoredOnTheThirtyFirstDoesNotDrift) {
    const TimerSpec s = spec(TimerKind::kCycle, "R/2026-01-31T00:00:00Z/P1M");
    const TimePoint feb = *s.next(at("2026-01-31T00:00:00Z"), 1);
    EXPECT_EQ(format_rfc3339(feb), "2026-02-28T00:00:00.000Z");
    EXPECT_EQ(format_rfc3339(*s.next(feb, 2)), "2026-03-31T00:00:00.000Z");
}

TEST(TimerSpecCycle, EndDateStopsTheCycle) {
    const TimerSpec s = spec(TimerKind::kCycle, "R/PT1H/2026-01-01T03:00:00Z");
    const TimePoint one = *s.first(at("2026-01-01T00:30:00Z"));
    EXPECT_EQ(format_rfc3339(one), "2026-01-01T01:30:00.000Z");
    const TimePoint two = *s.next(one, 1);
    EXPECT_EQ(format_rfc3339(two), "2026-01-01T02:30:00.000Z");
    EXPECT_FALSE(s.next(two, 2).has_value());
}

TEST(TimerSpecCycle, RejectsCyclesThatNeverFireOrAreMalformed) {
    for (const char* bad :
         {"R0/PT1M", "R/PT0S", "PT5M", "R/", "R5", "R/P1D/P1D",
          "R/2026-01-01T00:00:00Z/2026-01-02T00:00:00Z", "Rx/PT1M", "R/nonsense/PT1M"}) {
        EXPECT_FALSE(TimerSpec::parse(TimerKind::kCycle, bad).ok()) << bad;
    }
    const auto bare = TimerSpec::parse(TimerKind::kCycle, "PT5M");
    ASSERT_FALSE(bare.ok());
    EXPECT_NE(bare.error().find("R/PT5M"), std::string::npos);
}

TEST(TimerSpecCron, FiveFieldStepsFireOnTheNextMatchingMinute) {
    EXPECT_EQ(first_after(TimerKind::kCycle, "*/15 * * * *", "2026-01-01T10:07:30Z"),
              "2026-01-01T10:15:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kCycle, "*/15 * * * *", "2026-01-01T10:15:00Z"),
              "2026-01-01T10:30:00.000Z");  // strictly after
    EXPECT_EQ(first_after(TimerKind::kCycle, "10-50/20 * * * *", "2026-01-01T10:31:00Z"),
              "2026-01-01T10:50:00.000Z");
}

TEST(TimerSpecCron, SixFieldsPutSecondsFirst) {
    EXPECT_EQ(first_after(TimerKind::kCycle, "30 * * * * *", "2026-01-01T10:00:30Z"),
              "2026-01-01T10:01:30.000Z");
    // 2026-01-03 is a Saturday: the next weekday 09:00 is Monday the 5th.
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 9 * * MON-FRI", "2026-01-03T12:00:00Z"),
              "2026-01-05T09:00:00.000Z");
}

TEST(TimerSpecCron, MonthNamesListsAndQuestionMark) {
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 12 1 JAN,JUL *", "2026-02-01T00:00:00Z"),
              "2026-07-01T12:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 12 ? * sun", "2026-02-02T00:00:00Z"),
              "2026-02-08T12:00:00.000Z");
}

TEST(TimerSpecCron, SundayIsBothZeroAndSeven) {
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 8 * * 0", "2026-02-02T00:00:00Z"),
              first_after(TimerKind::kCycle, "0 8 * * 7", "2026-02-02T00:00:00Z"));
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 8 * * 7", "2026-02-02T00:00:00Z"),
              "2026-02-08T08:00:00.000Z");
}

TEST(TimerSpecCron, DayOfMonthAndDayOfWeekBothRestrictedMatchEither) {
    // "the 10th, or any Monday": 2026-03-09 is a Monday, 2026-03-10 a Tuesday.
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 10 * MON", "2026-03-03T00:00:00Z"),
              "2026-03-09T00:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 10 * MON", "2026-03-09T01:00:00Z"),
              "2026-03-10T00:00:00.000Z");
    // With day-of-week '*' only the day of month counts.
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 10 * *", "2026-03-03T00:00:00Z"),
              "2026-03-10T00:00:00.000Z");
}

TEST(TimerSpecCron, LeapDayAndMonthEnds) {
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 29 2 *", "2026-03-01T00:00:00Z"),
              "2028-02-29T00:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 31 * *", "2026-04-01T00:00:00Z"),
              "2026-05-31T00:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kCycle, "59 23 31 12 *", "2026-12-31T23:59:00Z"),
              "2027-12-31T23:59:00.000Z");
}

TEST(TimerSpecCron, SevenFieldsRestrictTheYear) {
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 0 1 1 ? 2030", "2026-06-01T00:00:00Z"),
              "2030-01-01T00:00:00.000Z");
    EXPECT_EQ(first_after(TimerKind::kCycle, "0 0 0 1 1 ? 2030", "2030-01-01T00:00:00Z"), "never");
}

TEST(TimerSpecCron, NextFollowsThePreviousFiringAndNeverRunsOut) {
    const TimerSpec s = spec(TimerKind::kCycle, "0 * * * *");
    EXPECT_EQ(s.repetitions(), -1);
    EXPECT_TRUE(s.is_cycle());
    EXPECT_EQ(format_rfc3339(*s.next(at("2026-01-01T10:00:00Z"), 1'000)),
              "2026-01-01T11:00:00.000Z");
}

TEST(TimerSpecCron, RejectsMalformedOrImpossibleExpressions) {
    for (const char* bad : {"61 * * * *", "* * * *", "* * * * * * * *", "0 0 L * *", "0 0 30 2 *",
                            "0 0 31 4,6,9,11 *", "*/0 * * * *", "5-1 * * * *", "0 0 * FOO *",
                            "? * * * *", "0 0 1 1 1 1 1969", "a b c d e"}) {
        EXPECT_FALSE(TimerSpec::parse(TimerKind::kCycle, bad).ok()) << bad;
    }
    const auto never = TimerSpec::parse(TimerKind::kCycle, "0 0 30 2 *");
    ASSERT_FALSE(never.ok());
    EXPECT_NE(never.error().find("never fires"), std::string::npos);
}

}  // namespace
}  // namespace pythmata::bpmn
