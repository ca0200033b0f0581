#include "pythmata/cache/redis_url.hpp"

#include <gtest/gtest.h>

namespace pythmata::cache {
namespace {

TEST(RedisUrl, ParsesHostAndPort) {
    auto endpoint = parse_redis_url("redis://cache.internal:6380");
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
    EXPECT_EQ(endpoint->host, "cache.internal");
    EXPECT_EQ(endpoint->port, 6380);
    EXPECT_EQ(endpoint->db, 0);
    EXPECT_TRUE(endpoint->password.empty());
    EXPECT_TRUE(endpoint->username.empty());
}

TEST(RedisUrl, DefaultsPortTo6379) {
    auto endpoint = parse_redis_url("redis://localhost");
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
    EXPECT_EQ(endpoint->host, "localhost");
    EXPECT_EQ(endpoint->port, 6379);
}

TEST(RedisUrl, ParsesPasswordAndDatabase) {
    auto endpoint = parse_redis_url("redis://:s3cret@127.0.0.1:7000/5");
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
    EXPECT_EQ(endpoint->host, "127.0.0.1");
    EXPECT_EQ(endpoint->port, 7000);
    EXPECT_EQ(endpoint->password, "s3cret");
    EXPECT_TRUE(endpoint->username.empty());
    EXPECT_EQ(endpoint->db, 5);
}

TEST(RedisUrl, ParsesUsernameAndDecodesEscapedPassword) {
    auto endpoint = parse_redis_url("redis://app:p%40ss%3Aw@redis:6379/0");
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
    EXPECT_EQ(endpoint->username, "app");
    EXPECT_EQ(endpoint->password, "p@ss:w");
    EXPECT_EQ(endpoint->host, "redis");
}

TEST(RedisUrl, AcceptsUnescapedAtInPassword) {
    auto endpoint = parse_redis_url("redis://:a@b@host:1");
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
    EXPECT_EQ(endpoint->password, "a@b");
    EXPECT_EQ(endpoint->host, "host");
}

TEST(RedisUrl, ParsesBracketedIpv6Host) {
    auto endpoint = parse_redis_url("redis://[::1]:6390/2");
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
    EXPECT_EQ(endpoint->host, "::1");
    EXPECT_EQ(endpoint->port, 6390);
    EXPECT_EQ(endpoint->db, 2);
}

TEST(RedisUrl, TrailingSlashMeansDatabaseZero) {
    auto endpoint = parse_redis_url("redis://h:1/");
    ASSERT_TRUE(endpoint.ok()) << endpoint.error().message;
    EXPECT_EQ(endpoint->db, 0);
}

struct BadUrl {
    const char* url;
    const char* expected_fragment;
};

class RedisUrlRejects : public ::testing::TestWithParam<BadUrl> {};

TEST_P(RedisUrlRejects, WithInvalidSettingNamingTheKey) {
    auto endpoint = parse_redis_url(GetParam().url);
    ASSERT_FALSE(endpoint.ok()) << GetParam().url;
    EXPECT_EQ(endpoint.error().code, "INVALID_SETTING");
    EXPECT_EQ(endpoint.error().kind, ErrorKind::kInvalidArgument);
    EXPECT_NE(endpoint.error().message.find("redis_url"), std::string::npos);
    EXPECT_NE(endpoint.error().message.find(GetParam().expected_fragment), std::string::npos)
        << endpoint.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    RedisUrl, RedisUrlRejects,
    ::testing::Values(BadUrl{"", "redis://"}, BadUrl{"http://host:6379", "redis://"},
                      BadUrl{"rediss://host:6379", "redis://"}, BadUrl{"redis://", "host"},
                      BadUrl{"redis://:6379", "host"}, BadUrl{"redis://host:", "port"},
                      BadUrl{"redis://host:abc", "port"}, BadUrl{"redis://host:0", "port"},
                      BadUrl{"redis://host:65536", "port"}, BadUrl{"redis://host:-1", "port"},
                      BadUrl{"redis://host:6379/x", "database"},
                      BadUrl{"redis://host:6379/-1", "database"},
                      BadUrl{"redis://secret@host", "credentials"},
                      BadUrl{"redis://:@host", "password"}, BadUrl{"redis://:p%zz@host", "percent"},
                      BadUrl{"redis://[::1:6379", "IPv6"}));

TEST(RedisUrl, ErrorMessageNeverContainsThePassword) {
    for (const char* url :
         {"redis://:hunter2@host:notaport", "redis://:hunter2@host/db", "rediss://:hunter2@host"}) {
        auto endpoint = parse_redis_url(url);
        ASSERT_FALSE(endpoint.ok()) << url;
        EXPECT_EQ(endpoint.error().message.find("hunter2"), std::string::npos)
            << endpoint.error().message;
    }
}

}  // namespace
}  // namespace pythmata::cache
