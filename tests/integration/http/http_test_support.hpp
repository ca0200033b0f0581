#pragma once

// Shared helpers of the HTTP integration suite: starting the real server on a backend, and
// short assertions on responses.

#include <unistd.h>

#include <atomic>
#include <map>
#include <memory>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "http_client.hpp"
#include "postgres_server.hpp"
#include "redis_server.hpp"
#include "server_process.hpp"

namespace pythmata::test {

/// Unwraps a harness result or fails the test (the message names the operation).
#define PYTHMATA_ASSERT_OK(var, expr)                               \
    auto var##_result = (expr);                                     \
    ASSERT_TRUE(var##_result.ok()) << var##_result.error().message; \
    auto var = std::move(var##_result).value()

/// A process-wide name that no other test in this process uses.
inline std::string unique_name(const std::string& prefix) {
    static std::atomic<int> counter{0};
    return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

/// One PostgreSQL server per test process, started on first use, stopped at exit.
inline PostgresServer* shared_postgres(std::string& why) {
    static std::string failure;
    static std::unique_ptr<PostgresServer> server = PostgresServer::start_new(failure);
    why = failure;
    return server.get();
}

/// One redis-server per test process, started on first use, stopped at exit.
inline RedisServer* shared_redis(std::string& why) {
    static std::string failure;
    static std::unique_ptr<RedisServer> server = [] {
        auto started = RedisServer::start();
        if (!started) {
            failure = started.error().message;
            return std::unique_ptr<RedisServer>();
        }
        return std::move(started).value();
    }();
    why = failure;
    return server.get();
}

/// True when `text` is an RFC 3339 UTC timestamp (API.md: times are RFC 3339 UTC).
inline bool is_rfc3339_utc(const std::string& text) {
    static const std::regex pattern(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$)");
    return std::regex_match(text, pattern);
}

/// True when `text` looks like a UUID.
inline bool is_uuid(const std::string& text) {
    static const std::regex pattern(
        R"(^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)");
    return std::regex_match(text, pattern);
}

/// Checks the API.md error body: {"detail": sentence, "code": `code`, "context": object}.
inline ::testing::AssertionResult is_error(const HttpResponse& response, int status,
                                           const std::string& code) {
    if (response.status != status) {
        return ::testing::AssertionFailure()
               << "expected status " << status << ", got " << response.describe();
    }
    const auto body = response.json();
    if (!body.is_object() || !body.contains("detail") || !body["detail"].is_string() ||
        body["detail"].get<std::string>().empty() || !body.contains("code") ||
        !body["code"].is_string() || !body.contains("context") || !body["context"].is_object()) {
        return ::testing::AssertionFailure()
               << "not an error body {detail, code, context}: " << response.describe();
    }
    if (body["code"] != code) {
        return ::testing::AssertionFailure()
               << "expected code " << code << ", got " << response.describe();
    }
    const auto type = response.header("Content-Type");
    if (!type || type->find("application/json") == std::string::npos) {
        return ::testing::AssertionFailure()
               << "error without Content-Type application/json: " << response.describe();
    }
    return ::testing::AssertionSuccess();
}

}  // namespace pythmata::test

namespace pythmata::test {

/// The status of a response, or 0 (with the reason on stderr) when the request failed.
inline int status_of(const Result<HttpResponse, HarnessFailure>& result) {
    if (!result.ok()) {
        std::cerr << "request failed: " << result.error().message << "\n";
        return 0;
    }
    return result.value().status;
}

}  // namespace pythmata::test
