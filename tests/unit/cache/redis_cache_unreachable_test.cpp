// RedisCache against a loopback port where nothing listens: construction rules and the
// degraded mode, without a server. The behaviour with a real redis-server (and one that dies
// and comes back) is in tests/integration/cache.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "pythmata/cache/redis_cache.hpp"

namespace pythmata::cache {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// A loopback port that refuses connections: bound (so no one else takes it) but not listening.
class ClosedPort {
  public:
    ClosedPort() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(addr);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
    }
    ~ClosedPort() { ::close(fd_); }
    [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  private:
    int fd_ = -1;
    unsigned port_ = 0;
};

/// A loopback port that accepts connections (the kernel completes the handshake) but never
/// answers: a hung server.
class SilentListener {
  public:
    SilentListener() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(addr);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        ::listen(fd_, 16);
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
    }
    ~SilentListener() { ::close(fd_); }
    [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  private:
    int fd_ = -1;
    unsigned port_ = 0;
};

app::CacheSettings settings_for(std::string url) {
    app::CacheSettings settings;
    settings.redis_url = std::move(url);
    settings.redis_timeout = 200ms;
    settings.redis_pool_size = 2;
    return settings;
}

std::string series(const std::string& text, const std::string& name) {
    const auto at = text.find("\n" + name + " ");
    if (at == std::string::npos) {
        return "<absent>";
    }
    const auto start = at + 1 + name.size() + 1;
    return text.substr(start, text.find('\n', start) - start);
}

TEST(RedisCache, CreateRejectsBadUrlNamingTheSetting) {
    metrics::Registry registry;
    auto cache = RedisCache::create(settings_for("http://localhost:6379"), registry);
    ASSERT_FALSE(cache.ok());
    EXPECT_EQ(cache.error().code, "INVALID_SETTING");
    EXPECT_NE(cache.error().message.find("redis_url"), std::string::npos);
}

TEST(RedisCache, CreateRejectsEmptyUrl) {
    metrics::Registry registry;
    auto cache = RedisCache::create(settings_for(""), registry);
    ASSERT_FALSE(cache.ok());
    EXPECT_EQ(cache.error().code, "INVALID_SETTING");
}

TEST(RedisCache, CreateRejectsZeroPoolSize) {
    metrics::Registry registry;
    auto settings = settings_for("redis://127.0.0.1:6379");
    settings.redis_pool_size = 0;
    auto cache = RedisCache::create(settings, registry);
    ASSERT_FALSE(cache.ok());
    EXPECT_NE(cache.error().message.find("redis_pool_size"), std::string::npos);
}

TEST(RedisCache, CreateRejectsNonPositiveTimeout) {
    metrics::Registry registry;
    auto settings = settings_for("redis://127.0.0.1:6379");
    settings.redis_timeout = 0ms;
    auto cache = RedisCache::create(settings, registry);
    ASSERT_FALSE(cache.ok());
    EXPECT_NE(cache.error().message.find("redis_timeout"), std::string::npos);
}

TEST(RedisCache, StartsDownWhenRedisIsUnreachableWithoutFailing) {
    ClosedPort port;
    metrics::Registry registry;
    auto cache = RedisCache::create(settings_for(port.url()), registry);
    ASSERT_TRUE(cache.ok()) << cache.error().message;
    EXPECT_FALSE((*cache)->up());
    EXPECT_EQ(series(registry.render(), "pythmata_redis_up"), "0") << registry.render();
}

TEST(RedisCache, UnreachableRedisMissesAndDropsFastAndCountsThem) {
    ClosedPort port;
    metrics::Registry registry;
    auto created = RedisCache::create(settings_for(port.url()), registry);
    ASSERT_TRUE(created.ok()) << created.error().message;
    RedisCache& cache = **created;

    const auto start = Clock::now();
    for (int i = 0; i < 50; ++i) {
        EXPECT_FALSE(cache.get("definition:1").has_value());
        cache.set("definition:1", "<xml/>", 300s);
        cache.erase("definition:1");
        cache.publish("invalidations", "OrderProcess");
    }
    EXPECT_LT(Clock::now() - start, 400ms);

    const std::string text = registry.render();
    // Within the 1 s backoff every call is skipped without touching the network.
    EXPECT_EQ(series(text, "pythmata_redis_dropped_total{op=\"get\"}"), "50") << text;
    EXPECT_EQ(series(text, "pythmata_redis_dropped_total{op=\"set\"}"), "50") << text;
    EXPECT_EQ(series(text, "pythmata_redis_dropped_total{op=\"erase\"}"), "50") << text;
    EXPECT_EQ(series(text, "pythmata_redis_dropped_total{op=\"publish\"}"), "50") << text;
    EXPECT_EQ(series(text, "pythmata_redis_errors_total{op=\"ping\"}"), "1") << text;
}

TEST(RedisCache, PingReportsUnavailableWithReason) {
    ClosedPort port;
    metrics::Registry registry;
    auto cache = RedisCache::create(settings_for(port.url()), registry);
    ASSERT_TRUE(cache.ok()) << cache.error().message;
    const auto start = Clock::now();
    Status status = (*cache)->ping();
    EXPECT_LT(Clock::now() - start, 400ms);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.error().kind, ErrorKind::kUnavailable);
    EXPECT_EQ(status.error().code, "CACHE_UNAVAILABLE");
    EXPECT_FALSE(status.error().internal.empty());
}

TEST(RedisCache, ProbesAgainOnceTheBackoffIsOver) {
    ClosedPort port;
    metrics::Registry registry;
    auto cache = RedisCache::create(settings_for(port.url()), registry);
    ASSERT_TRUE(cache.ok()) << cache.error().message;
    std::this_thread::sleep_for(1100ms);  // the backoff is a fixed 1 s; nothing to await
    EXPECT_FALSE((*cache)->get("k").has_value());
    const std::string text = registry.render();
    EXPECT_EQ(series(text, "pythmata_redis_errors_total{op=\"get\"}"), "1") << text;
    EXPECT_EQ(series(text, "pythmata_redis_dropped_total{op=\"get\"}"), "0") << text;
}

TEST(RedisCache, DestructorStopsSubscriberThatCannotConnectPromptly) {
    ClosedPort port;
    metrics::Registry registry;
    auto cache = RedisCache::create(settings_for(port.url()), registry);
    ASSERT_TRUE(cache.ok()) << cache.error().message;
    (*cache)->subscribe("invalidations", [](std::string_view) {});
    std::this_thread::sleep_for(50ms);
    const auto start = Clock::now();
    cache->reset();
    EXPECT_LT(Clock::now() - start, 500ms);
}

TEST(RedisCache, HungServerCostsOneTimeoutThenCallsAreSkipped) {
    SilentListener listener;
    metrics::Registry registry;
    auto settings = settings_for(listener.url());
    const auto create_start = Clock::now();
    auto cache = RedisCache::create(settings, registry);
    ASSERT_TRUE(cache.ok()) << cache.error().message;
    // create() pings once: bounded by the timeout, and the hang marks Redis down.
    EXPECT_LT(Clock::now() - create_start, settings.redis_timeout + 200ms);
    EXPECT_FALSE((*cache)->up());

    const auto start = Clock::now();
    for (int i = 0; i < 10; ++i) {
        EXPECT_FALSE((*cache)->get("k").has_value());
    }
    EXPECT_LT(Clock::now() - start, 100ms);
    EXPECT_EQ(series(registry.render(), "pythmata_redis_dropped_total{op=\"get\"}"), "10");

    const auto ping_start = Clock::now();
    EXPECT_FALSE((*cache)->ping().ok());
    const auto ping_took = Clock::now() - ping_start;
    EXPECT_GE(ping_took, settings.redis_timeout - 20ms);  // it really waited for an answer
    EXPECT_LT(ping_took, settings.redis_timeout + 200ms);
}

}  // namespace
}  // namespace pythmata::cache
