#include "postgres/conninfo.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace pythmata::store {
namespace {

using namespace std::chrono_literals;

TEST(PostgresConninfo, AddsConnectTimeoutRoundedUpToWholeSeconds) {
    auto conninfo = postgres_conninfo("postgresql://u@db.example:5433/app", 2500ms, 0ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "postgresql://u@db.example:5433/app?connect_timeout=3");
}

TEST(PostgresConninfo, ConnectTimeoutIsAtLeastOneSecond) {
    auto conninfo = postgres_conninfo("postgres://h/app", 10ms, 0ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "postgres://h/app?connect_timeout=1");
}

TEST(PostgresConninfo, AppendsToAnExistingQueryString) {
    auto conninfo = postgres_conninfo("postgresql://h/app?sslmode=require", 3000ms, 0ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "postgresql://h/app?sslmode=require&connect_timeout=3");
}

TEST(PostgresConninfo, KeepsAnExplicitConnectTimeout) {
    auto conninfo = postgres_conninfo("postgresql://h/app?connect_timeout=7", 3000ms, 0ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "postgresql://h/app?connect_timeout=7");
}

TEST(PostgresConninfo, AcceptsKeyValueStrings) {
    auto conninfo = postgres_conninfo("host=h port=5432 dbname=app", 3000ms, 0ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(), "host=h port=5432 dbname=app connect_timeout=3");
}

TEST(PostgresConninfo, AcceptsPortListsForSeveralHosts) {
    EXPECT_TRUE(postgres_conninfo("postgresql://a:5432,b:5433/app", 1s, 0ms).ok());
    EXPECT_TRUE(postgres_conninfo("postgresql://a,b:5433/app", 1s, 0ms).ok());
}

TEST(PostgresConninfo, RejectsMalformedUrlsNamingTheSetting) {
    for (const std::string url :
         {"postgresql://h:port/app", "postgresql://h:0/app", "postgresql://h:70000/app",
          "postgresql://h/app?sslmode=sometimes", "postgresql://h/app?no_such_option=1",
          "postgresql://[::1/app", "host=h port", "postgresql://h/app?keepalives_idle=ten",
          "postgresql://h/app?tcp_user_timeout=", "host=h connect_timeout=3s"}) {
        auto conninfo = postgres_conninfo(url, 1s, 0ms);
        ASSERT_FALSE(conninfo.ok()) << url;
        EXPECT_EQ(conninfo.error().code, "INVALID_DB_URL") << url;
        EXPECT_EQ(conninfo.error().kind, ErrorKind::kInvalidArgument) << url;
        EXPECT_NE(conninfo.error().message.find("db_url"), std::string::npos) << url;
    }
}

TEST(PostgresConninfo, AddsKeepalivesAndTheTcpUserTimeoutFromTheTcpTimeout) {
    auto conninfo = postgres_conninfo("postgresql://h/app", 3000ms, 30000ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(),
              "postgresql://h/app?connect_timeout=3&keepalives=1&keepalives_idle=10"
              "&keepalives_interval=10&keepalives_count=2&tcp_user_timeout=30000");
    // A third rounded up, at least one second.
    conninfo = postgres_conninfo("host=h dbname=app", 1000ms, 1000ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(),
              "host=h dbname=app connect_timeout=1 keepalives=1 keepalives_idle=1"
              " keepalives_interval=1 keepalives_count=2 tcp_user_timeout=1000");
}

TEST(PostgresConninfo, KeepsWhatTheUrlSetsAndAddsTheRest) {
    auto conninfo = postgres_conninfo(
        "postgresql://h/app?keepalives_idle=60&tcp_user_timeout=0&connect_timeout=9", 3000ms,
        30000ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(),
              "postgresql://h/app?keepalives_idle=60&tcp_user_timeout=0&connect_timeout=9"
              "&keepalives=1&keepalives_interval=10&keepalives_count=2");
    conninfo = postgres_conninfo("host=h keepalives=0", 3000ms, 30000ms);
    ASSERT_TRUE(conninfo.ok());
    EXPECT_EQ(conninfo.value(),
              "host=h keepalives=0 connect_timeout=3 keepalives_idle=10 keepalives_interval=10"
              " keepalives_count=2 tcp_user_timeout=30000");
}

TEST(PostgresConninfo, KeepsLibpqTextOutOfTheMessage) {
    auto conninfo = postgres_conninfo("postgresql://h/app?no_such_option=1", 1s, 0ms);
    ASSERT_FALSE(conninfo.ok());
    EXPECT_NE(conninfo.error().internal.find("no_such_option"), std::string::npos)
        << conninfo.error().internal;
    EXPECT_EQ(conninfo.error().message.find("no_such_option"), std::string::npos);
}

}  // namespace
}  // namespace pythmata::store
