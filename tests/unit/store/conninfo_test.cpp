#include "postgres/conninfo.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace pythmata::store {
namespace {

using namespace std::chrono_literals;

TEST(PostgresConninfo, AddsConnectTimeoutRoundedUpToWholeSeconds) {
    auto conninfo = postgres_conninfo("postgresql://u@db.example:5433/app", 2500ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "postgresql://u@db.example:5433/app?connect_timeout=3");
}

TEST(PostgresConninfo, ConnectTimeoutIsAtLeastOneSecond) {
    auto conninfo = postgres_conninfo("postgres://h/app", 10ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "postgres://h/app?connect_timeout=1");
}

TEST(PostgresConninfo, AppendsToAnExistingQueryString) {
    auto conninfo = postgres_conninfo("postgresql://h/app?sslmode=require", 3000ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "postgresql://h/app?sslmode=require&connect_timeout=3");
}

TEST(PostgresConninfo, KeepsAnExplicitConnectTimeout) {
    auto conninfo = postgres_conninfo("postgresql://h/app?connect_timeout=7", 3000ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "postgresql://h/app?connect_timeout=7");
}

TEST(PostgresConninfo, AcceptsKeyValueStrings) {
    auto conninfo = postgres_conninfo("host=h port=5432 dbname=app", 3000ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "host=h port=5432 dbname=app connect_timeout=3");
}

TEST(PostgresConninfo, AcceptsPortListsForSeveralHosts) {
    EXPECT_TRUE(postgres_conninfo("postgresql://a:5432,b:5433/app", 1s).ok());
    EXPECT_TRUE(postgres_conninfo("postgresql://a,b:5433/app", 1s).ok());
}

TEST(PostgresConninfo, RejectsMalformedUrlsNamingTheSetting) {
    for (const std::string url :
         {"postgresql://h:port/app", "postgresql://h:0/app", "postgresql://h:70000/app",
          "postgresql://h/app?sslmode=sometimes", "postgresql://h/app?no_such_option=1",
          "postgresql://[::1/app", "host=h port"}) {
        auto conninfo = postgres_conninfo(url, 1s);
        ASSERT_FALSE(conninfo.ok()) << url;
        EXPECT_EQ(conninfo.error().code, "INVALID_DB_URL") << url;
        EXPECT_EQ(conninfo.error().kind, ErrorKind::kInvalidArgument) << url;
        EXPECT_NE(conninfo.error().message.find("db_url"), std::string::npos) << url;
    }
}

TEST(PostgresConninfo, KeepsLibpqTextOutOfTheMessage) {
    auto conninfo = postgres_conninfo("postgresql://h/app?no_such_option=1", 1s);
    ASSERT_FALSE(conninfo.ok());
    EXPECT_NE(conninfo.error().internal.find("no_such_option"), std::string::npos)
        << conninfo.error().internal;
    EXPECT_EQ(conninfo.error().message.find("no_such_option"), std::string::npos);
}

}  // namespace
}  // namespace pythmata::store
