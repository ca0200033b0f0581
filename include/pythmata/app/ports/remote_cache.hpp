#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "pythmata/common/result.hpp"

namespace pythmata::app {

/// A shared key-value cache with expiry and a broadcast channel (Redis in production).
/// Failure is not an error for callers: when the cache is down, get() misses and writes are
/// dropped, so lookups fall back to the store. Implementations reconnect by themselves and never
/// block a caller longer than their configured timeout. Thread-safe.
class RemoteCache {
  public:
    virtual ~RemoteCache() = default;

    [[nodiscard]] virtual std::optional<std::string> get(std::string_view key) = 0;
    virtual void set(std::string_view key, std::string_view value, std::chrono::seconds ttl) = 0;
    virtual void erase(std::string_view key) = 0;
    /// Broadcasts `message` to every subscriber of `channel` (all replicas, this one included).
    virtual void publish(std::string_view channel, std::string_view message) = 0;
    /// Calls `on_message` (on a background thread owned by the cache) for each message on
    /// `channel`, resubscribing after reconnects. Call before traffic starts; at most once per
    /// channel.
    virtual void subscribe(std::string channel,
                           std::function<void(std::string_view message)> on_message) = 0;
    /// OK when the cache answers a PING now.
    [[nodiscard]] virtual Status ping() = 0;
};

}  // namespace pythmata::app
