// RedisCache against a real redis-server on loopback (tests/support/redis): the commands, two
// replicas talking over pub/sub, and what happens when the server dies and comes back.
#include "pythmata/cache/redis_cache.hpp"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "redis_server.hpp"

namespace pythmata::cache {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using test::RedisServer;

constexpr auto kTimeout = 200ms;

/// Collects messages delivered on a subscriber thread; waits for them with a bound.
class Inbox {
  public:
    void push(std::string_view message) {
        {
            std::lock_guard lock(mutex_);
            messages_.emplace_back(message);
        }
        cv_.notify_all();
    }
    /// True when `message` arrived within `bound`.
    bool wait_for(const std::string& message, std::chrono::milliseconds bound) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, bound, [&] {
            for (const auto& m : messages_) {
                if (m == message) {
                    return true;
                }
            }
            return false;
        });
    }
    std::vector<std::string> messages() {
        std::lock_guard lock(mutex_);
        return messages_;
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<std::string> messages_;
};

class RedisCacheIntegration : public ::testing::Test {
  protected:
    void SetUp() override { start_server({}); }

    void start_server(RedisServer::Options options) {
        auto server = RedisServer::start(std::move(options));
        ASSERT_TRUE(server.ok()) << server.error().message;
        server_ = std::move(server).value();
    }

    std::unique_ptr<RedisCache> make_cache(const std::string& url, metrics::Registry& registry) {
        app::CacheSettings settings;
        settings.redis_url = url;
        settings.redis_timeout = kTimeout;
        settings.redis_pool_size = 3;
        auto cache = RedisCache::create(settings, registry);
        EXPECT_TRUE(cache.ok()) << (cache.ok() ? "" : cache.error().message);
        return cache.ok() ? std::move(cache).value() : nullptr;
    }

    /// Polls `condition` every 20 ms until it holds or `bound` passes.
    template <typename Condition>
    static bool eventually(Condition condition, std::chrono::milliseconds bound) {
        const auto deadline = Clock::now() + bound;
        while (Clock::now() < deadline) {
            if (condition()) {
                return true;
            }
            std::this_thread::sleep_for(20ms);
        }
        return condition();
    }

    /// Waits until Redis reports `count` subscribers on `channel` (so a publish is not lost).
    bool subscribers_reach(const std::string& channel, int count) {
        return eventually(
            [&] {
                auto reply = server_->command({"PUBSUB", "NUMSUB", channel});
                return reply.ok() && *reply == channel + " " + std::to_string(count);
            },
            5000ms);
    }

    std::unique_ptr<RedisServer> server_;
    metrics::Registry registry_;
};

TEST_F(RedisCacheIntegration, GetReturnsWhatSetStored) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    EXPECT_TRUE(cache->up());
    cache->set("definition:42", "<definitions/>", 300s);
    EXPECT_EQ(cache->get("definition:42"), "<definitions/>");
    EXPECT_EQ(server_->command({"GET", "definition:42"}).value(), "<definitions/>");
}

TEST_F(RedisCacheIntegration, GetMissesAbsentKey) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    EXPECT_FALSE(cache->get("definition:absent").has_value());
    EXPECT_TRUE(cache->up());
}

TEST_F(RedisCacheIntegration, SetAppliesTheTtl) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    cache->set("definition:ttl", "x", 300s);
    auto ttl = server_->command({"TTL", "definition:ttl"});
    ASSERT_TRUE(ttl.ok()) << ttl.error().message;
    const int seconds = std::stoi(*ttl);
    EXPECT_GT(seconds, 290);
    EXPECT_LE(seconds, 300);
}

TEST_F(RedisCacheIntegration, KeyExpiresAfterItsTtl) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    cache->set("definition:short", "x", 1s);
    EXPECT_EQ(cache->get("definition:short"), "x");
    EXPECT_TRUE(eventually([&] { return !cache->get("definition:short").has_value(); }, 3000ms));
}

TEST_F(RedisCacheIntegration, EraseRemovesTheKey) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    cache->set("definition:gone", "x", 300s);
    cache->erase("definition:gone");
    EXPECT_FALSE(cache->get("definition:gone").has_value());
    EXPECT_EQ(server_->command({"EXISTS", "definition:gone"}).value(), "0");
}

TEST_F(RedisCacheIntegration, ValuesAreBinarySafe) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    const std::string value("a\0b\r\n\xff", 6);
    const std::string key("k\0ey", 4);
    cache->set(key, value, 60s);
    EXPECT_EQ(cache->get(key), value);
}

TEST_F(RedisCacheIntegration, UsesTheDatabaseNamedInTheUrl) {
    auto cache = make_cache(server_->url(3), registry_);
    ASSERT_TRUE(cache);
    cache->set("in-db-3", "x", 60s);
    EXPECT_EQ(server_->command({"EXISTS", "in-db-3"}, 3).value(), "1");
    EXPECT_EQ(server_->command({"EXISTS", "in-db-3"}, 0).value(), "0");
}

TEST_F(RedisCacheIntegration, PingSucceedsWhileRedisAnswers) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    EXPECT_TRUE(cache->ping().ok());
    EXPECT_NE(registry_.render().find("\npythmata_redis_up 1\n"), std::string::npos)
        << registry_.render();
}

TEST_F(RedisCacheIntegration, ManyThreadsShareTheBoundedPool) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    std::vector<std::thread> threads;
    std::atomic<int> found{0};
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) {
                const std::string key = "k" + std::to_string(t) + ":" + std::to_string(i);
                cache->set(key, key, 60s);
                if (cache->get(key) == key) {
                    ++found;
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    // 3 connections for 8 threads: waits are short, so every call fits in the timeout.
    EXPECT_EQ(found.load(), 400);
    auto clients = server_->command({"CLIENT", "LIST"});
    ASSERT_TRUE(clients.ok());
    int connections = 0;
    for (size_t at = clients->find("id="); at != std::string::npos;
         at = clients->find("id=", at + 1)) {
        ++connections;
    }
    EXPECT_LE(connections, 3 + 1);  // the pool plus the harness's own connection
}

TEST_F(RedisCacheIntegration, PublishReachesSubscribersOnEveryReplica) {
    // Declared before the caches: their subscriber threads push into it until joined.
    Inbox inbox_a;
    Inbox inbox_b;
    metrics::Registry other_registry;
    auto replica_a = make_cache(server_->url(), registry_);
    auto replica_b = make_cache(server_->url(), other_registry);
    ASSERT_TRUE(replica_a && replica_b);
    replica_a->subscribe("pythmata:invalidate", [&](std::string_view m) { inbox_a.push(m); });
    replica_b->subscribe("pythmata:invalidate", [&](std::string_view m) { inbox_b.push(m); });
    ASSERT_TRUE(subscribers_reach("pythmata:invalidate", 2));

    replica_a->publish("pythmata:invalidate", "OrderProcess");
    EXPECT_TRUE(inbox_a.wait_for("OrderProcess", 2000ms));
    EXPECT_TRUE(inbox_b.wait_for("OrderProcess", 2000ms));
}

TEST_F(RedisCacheIntegration, SubscriberSurvivesACallbackThatThrows) {
    // Declared before the caches: their subscriber threads push into it until joined.
    Inbox inbox;
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    cache->subscribe("ch", [&](std::string_view m) {
        inbox.push(m);
        if (m == "boom") {
            throw std::runtime_error("callback failed");
        }
    });
    ASSERT_TRUE(subscribers_reach("ch", 1));
    cache->publish("ch", "boom");
    cache->publish("ch", "after");
    EXPECT_TRUE(inbox.wait_for("after", 2000ms));
    EXPECT_EQ(inbox.messages(), (std::vector<std::string>{"boom", "after"}));
}

TEST_F(RedisCacheIntegration, AuthenticatesWithThePasswordFromTheUrl) {
    // Declared before the caches: their subscriber threads push into it until joined.
    Inbox inbox;
    server_.reset();
    start_server({.password = "s3cret"});
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    cache->set("secured", "yes", 60s);
    EXPECT_EQ(cache->get("secured"), "yes");

    cache->subscribe("secured-channel", [&](std::string_view m) { inbox.push(m); });
    ASSERT_TRUE(subscribers_reach("secured-channel", 1));
    cache->publish("secured-channel", "hello");
    EXPECT_TRUE(inbox.wait_for("hello", 2000ms));
}

TEST_F(RedisCacheIntegration, WrongPasswordMakesPingFail) {
    server_.reset();
    start_server({.password = "s3cret"});
    metrics::Registry registry;
    app::CacheSettings settings;
    settings.redis_url = "redis://:wrong@127.0.0.1:" + std::to_string(server_->port());
    settings.redis_timeout = kTimeout;
    auto cache = RedisCache::create(settings, registry);
    ASSERT_TRUE(cache.ok());
    Status status = (*cache)->ping();
    ASSERT_FALSE(status.ok());
    EXPECT_NE(status.error().internal.find("AUTH"), std::string::npos) << status.error().internal;
    EXPECT_FALSE((*cache)->get("anything").has_value());
}

TEST_F(RedisCacheIntegration, WhileRedisIsDownCallsReturnFastAndPingFails) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    cache->set("definition:1", "x", 300s);
    ASSERT_EQ(cache->get("definition:1"), "x");  // the pool now holds a live connection

    server_->kill();

    for (int i = 0; i < 20; ++i) {
        const auto start = Clock::now();
        EXPECT_FALSE(cache->get("definition:1").has_value());
        EXPECT_LT(Clock::now() - start, kTimeout * 2) << "get #" << i;
    }
    const auto start = Clock::now();
    for (int i = 0; i < 20; ++i) {
        cache->set("definition:1", "y", 300s);
        cache->erase("definition:1");
        cache->publish("pythmata:invalidate", "OrderProcess");
    }
    EXPECT_LT(Clock::now() - start, kTimeout * 2);
    EXPECT_FALSE(cache->up());

    const auto ping_start = Clock::now();
    Status status = cache->ping();
    EXPECT_FALSE(status.ok());
    EXPECT_LT(Clock::now() - ping_start, kTimeout * 2);

    const std::string text = registry_.render();
    EXPECT_NE(text.find("\npythmata_redis_up 0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("pythmata_redis_errors_total{op=\"get\"} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("pythmata_redis_dropped_total{op=\"get\"} 19\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("pythmata_redis_dropped_total{op=\"publish\"} 20\n"), std::string::npos)
        << text;
}

TEST_F(RedisCacheIntegration, RecoversByItselfWhenRedisComesBack) {
    // Declared before the caches: their subscriber threads push into it until joined.
    Inbox inbox;
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    cache->subscribe("pythmata:invalidate", [&](std::string_view m) { inbox.push(m); });
    ASSERT_TRUE(subscribers_reach("pythmata:invalidate", 1));
    cache->publish("pythmata:invalidate", "before");
    ASSERT_TRUE(inbox.wait_for("before", 2000ms));

    server_->kill();
    EXPECT_FALSE(cache->get("k").has_value());
    EXPECT_FALSE(cache->ping().ok());
    auto restarted = server_->restart();
    ASSERT_TRUE(restarted.ok()) << restarted.error().message;

    // No call to reconnect: the next call after the backoff probes and succeeds.
    EXPECT_TRUE(eventually(
        [&] {
            cache->set("k", "v", 60s);
            return cache->get("k") == std::optional<std::string>("v");
        },
        5000ms));
    EXPECT_TRUE(cache->up());
    EXPECT_TRUE(cache->ping().ok());

    // The subscriber thread resubscribed on its own.
    ASSERT_TRUE(subscribers_reach("pythmata:invalidate", 1));
    cache->publish("pythmata:invalidate", "after");
    EXPECT_TRUE(inbox.wait_for("after", 2000ms));
}

TEST_F(RedisCacheIntegration, PingRecoversImmediatelyWithoutWaitingForTheBackoff) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    server_->kill();
    EXPECT_FALSE(cache->ping().ok());
    ASSERT_TRUE(server_->restart().ok());
    EXPECT_TRUE(cache->ping().ok());
    EXPECT_TRUE(cache->up());
    cache->set("k", "v", 60s);
    EXPECT_EQ(cache->get("k"), "v");
}

TEST_F(RedisCacheIntegration, DestructorJoinsSubscribersPromptly) {
    auto cache = make_cache(server_->url(), registry_);
    ASSERT_TRUE(cache);
    cache->subscribe("a", [](std::string_view) {});
    cache->subscribe("b", [](std::string_view) {});
    ASSERT_TRUE(subscribers_reach("a", 1));
    ASSERT_TRUE(subscribers_reach("b", 1));
    const auto start = Clock::now();
    cache.reset();
    EXPECT_LT(Clock::now() - start, kTimeout + 400ms);
    EXPECT_TRUE(subscribers_reach("a", 0));
}

}  // namespace
}  // namespace pythmata::cache
