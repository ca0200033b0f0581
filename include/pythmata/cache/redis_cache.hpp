#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pythmata/app/ports/definition_store.hpp"
#include "pythmata/app/ports/remote_cache.hpp"
#include "pythmata/app/settings.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/metrics/registry.hpp"

namespace pythmata::cache {

/// app::RemoteCache and app::HealthCheck on Redis, with the synchronous hiredis client.
///
/// Commands run on a bounded pool of `redis_pool_size` connections (AUTH and SELECT on
/// connect). Each call is bounded by `redis_timeout` in total: the wait for a pooled connection,
/// connecting and the command share one deadline. Any connection failure closes the connection,
/// discards the pool and marks Redis down for a backoff (1 s); while down, get() misses and
/// set()/erase()/publish() are dropped at once, without touching the network. After the backoff
/// one call probes Redis again; its success brings the cache back. Failures are counted in
/// `pythmata_redis_errors_total{op}`, calls skipped while down in
/// `pythmata_redis_dropped_total{op}`, and `pythmata_redis_up` is 1 or 0.
///
/// Each subscribe() starts a thread with its own connection that resubscribes after reconnects.
/// The destructor stops and joins those threads within about `redis_timeout` + 100 ms.
/// Thread-safe; calls block (run them on a blocking pool). No exception escapes any member.
class RedisCache final : public app::RemoteCache, public app::HealthCheck {
  public:
    /// Validates the settings (URL, pool size, timeout) and prepares the pool; does not need Redis
    /// to be up (it is pinged once, bounded by the timeout, to set `pythmata_redis_up`). Fails with
    /// INVALID_SETTING naming the key. `registry` must outlive the cache.
    [[nodiscard]] static Result<std::unique_ptr<RedisCache>> create(
        const app::CacheSettings& settings, metrics::Registry& registry);

    /// Stops the subscriber threads (bounded, see above) and closes every connection.
    ~RedisCache() override;
    RedisCache(const RedisCache&) = delete;
    RedisCache& operator=(const RedisCache&) = delete;

    /// GET; nullopt when absent, on any failure, and while Redis is marked down.
    [[nodiscard]] std::optional<std::string> get(std::string_view key) override;
    /// SET key value EX ttl (ttl below 1 s is raised to 1 s); dropped on failure.
    void set(std::string_view key, std::string_view value, std::chrono::seconds ttl) override;
    /// DEL key; dropped on failure.
    void erase(std::string_view key) override;
    /// PUBLISH channel message; dropped on failure.
    void publish(std::string_view channel, std::string_view message) override;
    /// Starts a subscriber thread for `channel`; `on_message` runs on it, one message at a time,
    /// and should return quickly (the destructor waits for a running callback). Messages
    /// published while the subscriber is disconnected are lost (Redis pub/sub keeps none).
    /// An exception thrown by `on_message` is caught and counted, and the thread carries on.
    void subscribe(std::string channel,
                   std::function<void(std::string_view message)> on_message) override;
    /// PING now on a pooled connection, ignoring any backoff; an UNAVAILABLE error with a short
    /// reason when Redis does not answer within the timeout. A success ends a backoff early.
    [[nodiscard]] Status ping() override;

    /// Whether the last interaction with Redis succeeded (what `pythmata_redis_up` exports).
    [[nodiscard]] bool up() const;

  private:
    struct Impl;
    explicit RedisCache(std::unique_ptr<Impl> impl);

    std::unique_ptr<Impl> impl_;
};

}  // namespace pythmata::cache
