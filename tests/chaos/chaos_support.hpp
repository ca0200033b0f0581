#pragma once

// Shared pieces of the chaos suite (issue 6, "Crash and fault tests"): the duration setting, the
// dependencies one test owns (its own PostgreSQL and redis-server), a thread-safe collector of
// findings, and assertions on API.md's 503 answers.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "http_client.hpp"
#include "postgres_server.hpp"
#include "redis_server.hpp"
#include "server_process.hpp"

namespace pythmata::test::chaos {

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

/// The next entry of a load thread's work queue, taken under its mutex; nullopt when empty.
template <class T>
std::optional<T> take_next(std::mutex& mutex, std::deque<T>& queue) {
    std::lock_guard lock(mutex);
    if (queue.empty()) {
        return std::nullopt;
    }
    T next = std::move(queue.front());
    queue.pop_front();
    return next;
}

/// How long a kill loop runs: env PYTHMATA_CHAOS_SECONDS (shorten it locally), default 120 s.
inline std::chrono::seconds chaos_duration() {
    const char* text = std::getenv("PYTHMATA_CHAOS_SECONDS");
    if (text != nullptr) {
        const long seconds = std::strtol(text, nullptr, 10);
        if (seconds > 0) {
            return std::chrono::seconds(seconds);
        }
    }
    return std::chrono::seconds(120);
}

/// Findings collected by several threads, reported as one test failure naming the first ones.
class Problems {
  public:
    void add(std::string problem) {
        std::lock_guard lock(mutex_);
        problems_.push_back(std::move(problem));
    }
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return problems_.size();
    }
    /// Success, or a failure listing the count and the first `shown` findings.
    [[nodiscard]] ::testing::AssertionResult none(std::size_t shown = 25) const {
        std::lock_guard lock(mutex_);
        if (problems_.empty()) {
            return ::testing::AssertionSuccess();
        }
        auto failure = ::testing::AssertionFailure();
        failure << problems_.size() << " problem(s):";
        for (std::size_t i = 0; i < problems_.size() && i < shown; ++i) {
            failure << "\n  - " << problems_[i];
        }
        return failure;
    }

  private:
    mutable std::mutex mutex_;
    std::vector<std::string> problems_;
};

/// A 503 with one of `codes` in the API.md error body and a Retry-After of at least 1 s.
inline ::testing::AssertionResult is_unavailable(const HttpResponse& response,
                                                 std::initializer_list<const char*> codes) {
    if (response.status != 503) {
        return ::testing::AssertionFailure() << "expected 503, got " << response.describe();
    }
    const json body = response.json();
    const std::string code =
        body.is_object() && body.contains("code") && body["code"].is_string() ? body["code"] : "";
    bool known = false;
    for (const char* expected : codes) {
        known = known || code == expected;
    }
    if (!known || !body.contains("detail") || !body.contains("context")) {
        return ::testing::AssertionFailure() << "unexpected 503 body: " << response.describe();
    }
    const auto retry = response.header("Retry-After");
    if (!retry || std::atoi(retry->c_str()) < 1) {
        return ::testing::AssertionFailure() << "503 without Retry-After: " << response.describe();
    }
    return ::testing::AssertionSuccess();
}

/// The store errors API.md lists for a database that is down, slow or out of connections.
inline constexpr std::initializer_list<const char*> kStoreDownCodes = {
    "DB_UNAVAILABLE", "DB_POOL_TIMEOUT", "DB_TIMEOUT"};

/// data.items of a list answer, or an empty array.
inline json items_of(const HttpResponse& response) {
    const json body = response.json();
    if (!body.is_object() || !body.contains("data") || !body["data"].is_object()) {
        return json::array();
    }
    return body["data"].value("items", json::array());
}

/// Headers for a JSON request on a connection of its own (`Connection: close`): the client
/// never replays a request that may have reached a server killed meanwhile.
inline const HttpClient::Headers kJsonOnce = {{"Content-Type", "application/json"},
                                              {"Connection", "close"}};

/// A PostgreSQL 15 and a redis-server owned by one test; `why` says what is missing.
struct Dependencies {
    std::unique_ptr<PostgresServer> postgres;
    std::unique_ptr<RedisServer> redis;
    std::string why;

    /// Starts both; false (with `why`) when PostgreSQL 15 or redis-server cannot start.
    bool start() {
        postgres = PostgresServer::start_new(why);
        if (!postgres) {
            return false;
        }
        auto started = RedisServer::start();
        if (!started) {
            why = started.error().message;
            return false;
        }
        redis = std::move(started).value();
        return true;
    }
};

/// Settings every chaos server runs with: quiet logs, fast failure while a dependency is down.
inline std::map<std::string, std::string> base_env() {
    return {
        {"PYTHMATA_LOG_LEVEL", "warn"},
        {"PYTHMATA_ACCESS_LOG", "false"},
        {"PYTHMATA_DB_CONNECT_TIMEOUT_MS", "1000"},
        {"PYTHMATA_DB_POOL_TIMEOUT", "2"},
        {"PYTHMATA_REDIS_TIMEOUT_MS", "200"},
    };
}

/// Starts `pythmata serve`; a test failure (and nullptr) when it does not come up.
inline std::unique_ptr<ServerProcess> start_server(std::map<std::string, std::string> env,
                                                   bool default_store = true) {
    ServerProcess::Options options;
    options.env = std::move(env);
    options.default_store = default_store;
    auto started = ServerProcess::start(options);
    if (!started) {
        ADD_FAILURE() << started.error().message;
        return nullptr;
    }
    return std::move(started).value();
}

}  // namespace pythmata::test::chaos
