#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "pythmata/app/ports/remote_cache.hpp"

namespace pythmata::fakes {

/// An in-memory RemoteCache; several FakeRemoteCache objects sharing one Hub behave like replicas
/// on one Redis. `down` makes it behave like an unreachable Redis (misses, dropped writes).
class FakeRemoteCache final : public app::RemoteCache {
  public:
    struct Hub {
        std::mutex mutex;
        std::map<std::string, std::pair<std::string, std::chrono::seconds>> values;
        std::vector<std::pair<std::string, std::function<void(std::string_view)>>> subscribers;
    };

    explicit FakeRemoteCache(Hub& hub) : hub_(hub) {}

    bool down = false;
    int published = 0;
    /// Messages this replica publishes wait until deliver_held(), as on a busy Redis.
    bool hold = false;

    void deliver_held() {
        std::vector<std::pair<std::string, std::string>> held;
        held.swap(held_);
        hold = false;
        for (auto& [channel, message] : held) {
            publish(channel, message);
        }
    }

    std::optional<std::string> get(std::string_view key) override {
        std::lock_guard lock(hub_.mutex);
        if (down) {
            return std::nullopt;
        }
        auto it = hub_.values.find(std::string(key));
        return it == hub_.values.end() ? std::nullopt : std::optional{it->second.first};
    }
    void set(std::string_view key, std::string_view value, std::chrono::seconds ttl) override {
        std::lock_guard lock(hub_.mutex);
        if (!down) {
            hub_.values[std::string(key)] = {std::string(value), ttl};
        }
    }
    void erase(std::string_view key) override {
        std::lock_guard lock(hub_.mutex);
        if (!down) {
            hub_.values.erase(std::string(key));
        }
    }
    void publish(std::string_view channel, std::string_view message) override {
        if (hold) {
            held_.emplace_back(channel, message);
            return;
        }
        std::vector<std::function<void(std::string_view)>> targets;
        {
            std::lock_guard lock(hub_.mutex);
            if (down) {
                return;
            }
            ++published;
            for (auto& [c, f] : hub_.subscribers) {
                if (c == channel) {
                    targets.push_back(f);
                }
            }
        }
        for (auto& f : targets) {
            f(message);
        }
    }
    void subscribe(std::string channel, std::function<void(std::string_view)> on_message) override {
        std::lock_guard lock(hub_.mutex);
        hub_.subscribers.emplace_back(std::move(channel), std::move(on_message));
    }
    Status ping() override {
        if (down) {
            return Error::unavailable("CACHE_UNAVAILABLE", "redis is down");
        }
        return {};
    }

  private:
    Hub& hub_;
    std::vector<std::pair<std::string, std::string>> held_;
};

}  // namespace pythmata::fakes
