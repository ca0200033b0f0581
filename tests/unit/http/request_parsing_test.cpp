#include "pythmata/http/request_parsing.hpp"

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace pythmata::http {
namespace {

TEST(PercentDecode, DecodesEscapesAndPlus) {
    EXPECT_EQ(percent_decode("a%20b%2Fc", false).value(), "a b/c");
    EXPECT_EQ(percent_decode("a+b", true).value(), "a b");
    EXPECT_EQ(percent_decode("a+b", false).value(), "a+b");
}

TEST(PercentDecode, RejectsBadEscapesAndNul) {
    EXPECT_EQ(percent_decode("a%2", false).error().code, "INVALID_ARGUMENT");
    EXPECT_FALSE(percent_decode("a%zz", false).ok());
    EXPECT_FALSE(percent_decode("%", false).ok());
    EXPECT_FALSE(percent_decode("a%00b", false).ok());
}

TEST(ParseQuery, DecodesPairsAndKeepsTheFirstOccurrence) {
    auto query = parse_query("key=order%20flow&name=x+y&key=other&flag").value();
    EXPECT_EQ(query.at("key"), "order flow");
    EXPECT_EQ(query.at("name"), "x y");
    EXPECT_EQ(query.at("flag"), "");
}

TEST(ParsePaging, DefaultsToFirstPageOfTwenty) {
    auto page = parse_paging({}).value();
    EXPECT_EQ(page.page, 1);
    EXPECT_EQ(page.page_size, 20);
}

TEST(ParsePaging, RejectsOutOfRangeAndNonNumericValues) {
    EXPECT_FALSE(parse_paging({{"page", "0"}}).ok());
    EXPECT_FALSE(parse_paging({{"page", "abc"}}).ok());
    EXPECT_FALSE(parse_paging({{"page_size", "1001"}}).ok());
    EXPECT_FALSE(parse_paging({{"page_size", "5x"}}).ok());
    EXPECT_EQ(parse_paging({{"page_size", "1000"}}).value().page_size, 1000);
}

TEST(ParseFlag, AcceptsTrueFalseAndRejectsOthers) {
    EXPECT_TRUE(parse_flag({{"cascade", "true"}}, "cascade", false).value());
    EXPECT_FALSE(parse_flag({}, "cascade", false).value());
    EXPECT_FALSE(parse_flag({{"cascade", "yes"}}, "cascade", false).ok());
}

TEST(ParseJsonBody, ReportsThePositionOfBadJson) {
    auto result = parse_json_body(R"({"a": })");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, "INVALID_JSON");
    EXPECT_TRUE(result.error().context.contains("position"));
}

TEST(ParseJsonBody, RefusesNumbersOutOfRangeAsInvalidJsonInsteadOfThrowing) {
    for (const char* body : {"1e400", R"({"amount": -1e999})"}) {
        auto result = parse_json_body(body);
        ASSERT_FALSE(result.ok()) << body;
        EXPECT_EQ(result.error().code, "INVALID_JSON") << body;
    }
}

TEST(ParseJsonBody, RefusesRawNulBytesAnywhere) {
    using namespace std::string_literals;
    for (const std::string& body : {"{}\0garbage"s, "1\0[[["s, R"({"a": "x)"s + '\0' + R"("})"s}) {
        auto result = parse_json_body(body);
        ASSERT_FALSE(result.ok());
        EXPECT_EQ(result.error().code, "INVALID_JSON");
        EXPECT_EQ(result.error().context.value("position", 0U), body.find('\0'));
    }
}

TEST(ParseJsonBody, RejectsNestingDeeperThanTheLimitWithoutRecursing) {
    const std::string deep = std::string(10'000, '[') + std::string(10'000, ']');
    auto result = parse_json_body(deep);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, "JSON_TOO_DEEP");
    const std::string ok = std::string(64, '[') + std::string(64, ']');
    EXPECT_TRUE(parse_json_body(ok).ok());
}

TEST(ParseJsonBody, IgnoresBracketsInsideStrings) {
    const std::string body = R"({"s": ")" + std::string(100, '[') + R"(\"["})";
    EXPECT_TRUE(parse_json_body(body).ok());
}

}  // namespace
}  // namespace pythmata::http
