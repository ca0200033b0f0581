#include "pythmata/common/time.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <ctime>

namespace pythmata {
namespace {

TEST(Time, FormatsUtcWithMilliseconds) {
    EXPECT_EQ(format_rfc3339(from_epoch_ms(0)), "1970-01-01T00:00:00.000Z");
    EXPECT_EQ(format_rfc3339(from_epoch_ms(1'700'000'000'123)), "2023-11-14T22:13:20.123Z");
}

TEST(Time, FormatsLikeGmtimeAcrossTheYears) {
    // From 1970 to 2400 in uneven steps (leap days, month ends, every millisecond digit).
    for (std::int64_t ms = 0; ms < 13'569'465'600'000; ms += 7'919'999'917) {
        const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
        std::tm tm{};
        ASSERT_NE(gmtime_r(&seconds, &tm), nullptr);
        char expected[40];
        std::snprintf(expected, sizeof expected, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                      tm.tm_sec, static_cast<int>(ms % 1000));
        EXPECT_EQ(format_rfc3339(from_epoch_ms(ms)), expected) << ms;
    }
}

TEST(Time, ParsesWhatItFormats) {
    const auto t = from_epoch_ms(1'764'342'245'678);
    EXPECT_EQ(parse_rfc3339(format_rfc3339(t)), t);
}

TEST(Time, AppliesZoneOffsets) {
    EXPECT_EQ(parse_rfc3339("2023-11-14T23:13:20+01:00"), from_epoch_ms(1'700'000'000'000));
    EXPECT_EQ(parse_rfc3339("2023-11-14T21:13:20-0100"), from_epoch_ms(1'700'000'000'000));
}

TEST(Time, DateAloneIsMidnightUtc) {
    EXPECT_EQ(parse_rfc3339("1970-01-02"), from_epoch_ms(86'400'000));
}

TEST(Time, RejectsMalformedText) {
    EXPECT_FALSE(parse_rfc3339(""));
    EXPECT_FALSE(parse_rfc3339("2023-13-01"));
    EXPECT_FALSE(parse_rfc3339("2023-02-30T00:00:00Z"));
    EXPECT_FALSE(parse_rfc3339("2023-01-01T25:00:00Z"));
    EXPECT_FALSE(parse_rfc3339("2023-01-01T00:00:00Zjunk"));
    EXPECT_FALSE(parse_rfc3339("yesterday"));
}

}  // namespace
}  // namespace pythmata
