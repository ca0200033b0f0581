#pragma once

// Shared pieces of the runtime integration suite: the two backends, a fixture that runs the real
// `pythmata serve` on one of them (and restarts it on the same store), request helpers and
// assertions on API.md's envelopes.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "http_client.hpp"
#include "postgres_server.hpp"
#include "redis_server.hpp"
#include "server_process.hpp"

namespace pythmata::test::runtime {

using nlohmann::json;

/// The sum of the samples named `name` (any labels) in a Prometheus text page, or -1 when
/// there is none.
inline double metric_value(const std::string& page, const std::string& name) {
    std::istringstream lines(page);
    std::string line;
    double sum = 0;
    bool found = false;
    while (std::getline(lines, line)) {
        if (line.starts_with("#") || !line.starts_with(name)) {
            continue;
        }
        const char next = line.size() > name.size() ? line[name.size()] : '\0';
        if (next != ' ' && next != '{') {
            continue;
        }
        const auto space = line.rfind(' ');
        sum += std::stod(line.substr(space + 1));
        found = true;
    }
    return found ? sum : -1;
}

enum class Backend { kSqlite, kPostgresRedis };

inline std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
    return info.param == Backend::kSqlite ? "Sqlite" : "PostgresRedis";
}

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

inline bool is_rfc3339_utc(const std::string& text) {
    static const std::regex pattern(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$)");
    return std::regex_match(text, pattern);
}

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
               << "expected status " << status << " " << code << ", got " << response.describe();
    }
    const json body = response.json();
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
    return ::testing::AssertionSuccess();
}

/// A status with `data` in the success envelope.
inline ::testing::AssertionResult is_data(const HttpResponse& response, int status) {
    if (response.status != status) {
        return ::testing::AssertionFailure()
               << "expected status " << status << ", got " << response.describe();
    }
    const json body = response.json();
    if (!body.is_object() || !body.contains("data")) {
        return ::testing::AssertionFailure()
               << "no {\"data\": ...} envelope: " << response.describe();
    }
    return ::testing::AssertionSuccess();
}

/// A list envelope: data.items (array), total, page, pageSize, totalPages.
inline ::testing::AssertionResult is_page(const HttpResponse& response) {
    auto ok = is_data(response, 200);
    if (!ok) {
        return ok;
    }
    const json data = response.json()["data"];
    for (const char* field : {"total", "page", "pageSize", "totalPages"}) {
        if (!data.contains(field) || !data[field].is_number_integer()) {
            return ::testing::AssertionFailure()
                   << "list without integer \"" << field << "\": " << response.describe();
        }
    }
    if (!data.contains("items") || !data["items"].is_array()) {
        return ::testing::AssertionFailure() << "list without items: " << response.describe();
    }
    return ::testing::AssertionSuccess();
}

/// Settings every server of this suite runs with (besides the store): the clock endpoints, a
/// small variable limit (cheap 413 tests), a short due-timer sweep (restart tests), quiet logs.
inline constexpr std::size_t kMaxVariableSize = 64 * 1024;

/// Runs `pythmata serve` on the test's backend. The PostgreSQL backend uses a schema of its own
/// per test on the process-wide server, and the process-wide redis-server as L2 cache.
class RuntimeServerTest : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override { ASSERT_NO_FATAL_FAILURE(start_server({})); }

    void TearDown() override {
        if (HasFailure() && server_) {
            std::cerr << "server stderr:\n" << server_->stderr_tail(6000) << "\n";
        }
        client_.reset();
        server_.reset();
    }

    /// The suite's server options on the test's store, plus `extra` (which wins). The first
    /// call creates the store: a SQLite file in a temp dir, or a PostgreSQL schema.
    ServerProcess::Options server_options(const std::map<std::string, std::string>& extra) {
        ServerProcess::Options options;
        options.env = {
            {"PYTHMATA_CLOCK_CONTROL", "true"},
            {"PYTHMATA_MAX_VARIABLE_SIZE", std::to_string(kMaxVariableSize)},
            {"PYTHMATA_STATE_CHECK_INTERVAL", "0.2"},
            {"PYTHMATA_LOG_LEVEL", "warn"},
        };
        if (GetParam() == Backend::kPostgresRedis) {
            if (store_url_.empty()) {
                std::string why;
                PostgresServer* postgres = shared_postgres(why);
                if (postgres == nullptr) {
                    [&] { GTEST_SKIP() << "PostgreSQL backend skipped: " << why; }();
                    return options;
                }
                EXPECT_TRUE(postgres->running() || postgres->start()) << postgres->log_tail();
                const std::string schema = unique_name("rt");
                EXPECT_TRUE(postgres->execute("CREATE SCHEMA " + schema)) << postgres->log_tail();
                RedisServer* redis = shared_redis(why);
                EXPECT_NE(redis, nullptr) << "redis-server: " << why;
                store_url_ = postgres->schema_url(schema);
                redis_url_ = redis == nullptr ? std::string() : redis->url();
            }
            options.env["PYTHMATA_DB_URL"] = store_url_;
            options.env["PYTHMATA_REDIS_URL"] = redis_url_;
        } else {
            if (store_dir_.empty()) {
                std::string pattern =
                    (std::filesystem::temp_directory_path() / "pythmata-rt-XXXXXX").string();
                EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
                store_dir_ = pattern;
            }
            options.env["PYTHMATA_DB_URL"] = "sqlite://" + (store_dir_ / "pythmata.db").string();
        }
        for (const auto& [name, value] : extra) {
            options.env[name] = value;
        }
        return options;
    }

    /// (Re)starts the server with the suite's settings plus `extra` (which wins); the store is
    /// kept: the same SQLite file or the same PostgreSQL schema.
    void start_server(const std::map<std::string, std::string>& extra) {
        client_.reset();
        server_.reset();
        // Only a failure of the store's set-up (server_options) stops the start: an earlier
        // failed expectation of the test must not leave it without a server and a client, whose
        // next request would then dereference a null client.
        const bool failed_before = HasFailure();
        ServerProcess::Options options = server_options(extra);
        if (IsSkipped() || (HasFailure() && !failed_before)) {
            return;
        }
        auto started = ServerProcess::start(options);
        ASSERT_TRUE(started.ok()) << started.error().message;
        server_ = std::move(started).value();
        client_ = std::make_unique<HttpClient>(server_->port(), std::chrono::seconds(30));
    }

    ~RuntimeServerTest() override {
        client_.reset();
        server_.reset();
        if (!store_dir_.empty()) {
            std::error_code ignored;
            std::filesystem::remove_all(store_dir_, ignored);
        }
    }

    static HttpResponse call(Result<HttpResponse, HarnessFailure> result) {
        if (!result) {
            ADD_FAILURE() << result.error().message;
            return {};
        }
        return std::move(result).value();
    }

    static std::string api(const std::string& path) { return "/api/v1" + path; }

    HttpResponse get(const std::string& path) { return call(client_->get(api(path))); }
    HttpResponse post(const std::string& path, const json& body,
                      const HttpClient::Headers& headers = {}) {
        HttpClient::Headers all = {{"Content-Type", "application/json"}};
        all.insert(all.end(), headers.begin(), headers.end());
        return call(client_->request("POST", api(path), body.dump(), all));
    }
    HttpResponse post_raw(const std::string& path, const std::string& body) {
        return call(
            client_->request("POST", api(path), body, {{"Content-Type", "application/json"}}));
    }
    HttpResponse patch(const std::string& path, const json& body) {
        return call(client_->request("PATCH", api(path), body.dump(),
                                     {{"Content-Type", "application/json"}}));
    }
    HttpResponse del(const std::string& path) {
        return call(client_->request("DELETE", api(path)));
    }

    /// Deploys `xml`; the test fails unless the server answers 201 (or 200 for a redeploy).
    json deploy(const std::string& xml) {
        const auto response = call(client_->send_xml("POST", api("/processes"), xml));
        EXPECT_TRUE(response.status == 201 || response.status == 200) << response.describe();
        return response.json().value("data", json::object());
    }

    /// POST /processes/{key}/instances; the test fails unless it answers 201. The instance.
    json start(const std::string& key, const json& body = json::object()) {
        const auto response = post("/processes/" + key + "/instances", body);
        EXPECT_TRUE(is_data(response, 201)) << "starting " << key;
        return response.json().value("data", json::object());
    }

    /// GET /instances/{id} (data), or an empty object with a test failure.
    json instance(const std::string& id) {
        const auto response = get("/instances/" + id);
        EXPECT_TRUE(is_data(response, 200)) << "instance " << id;
        return response.json().value("data", json::object());
    }

    /// Polls the instance until its status is `status` (for work the server does in its own
    /// time: timers, follow-up deliveries); the last instance seen.
    json await_status(const std::string& id, const std::string& status,
                      std::chrono::milliseconds bound = std::chrono::seconds(10)) {
        json last;
        const bool reached = eventually(bound, [&] {
            auto response = client_->get(api("/instances/" + id));
            if (!response || response.value().status != 200) {
                return false;
            }
            last = response.value().json()["data"];
            return last.value("status", "") == status;
        });
        EXPECT_TRUE(reached) << "instance " << id << " did not reach " << status << " within "
                             << bound.count() << " ms; last: " << last.dump();
        return last;
    }

    /// data.items of a GET list (the test fails unless it answers a list).
    json items(const std::string& path) {
        const auto response = get(path);
        EXPECT_TRUE(is_data(response, 200)) << path;
        return response.json()["data"].value("items", json::array());
    }

    /// The open tasks of one instance.
    json open_tasks(const std::string& instance_id) {
        return items("/tasks?instance_id=" + instance_id);
    }

    /// The one open task of an instance, or an empty object with a test failure.
    json only_task(const std::string& instance_id) {
        const json tasks = open_tasks(instance_id);
        EXPECT_EQ(tasks.size(), 1u) << tasks.dump();
        return tasks.empty() ? json::object() : tasks[0];
    }

    std::unique_ptr<ServerProcess> server_;
    std::unique_ptr<HttpClient> client_;
    std::filesystem::path store_dir_;
    std::string store_url_;
    std::string redis_url_;
};

}  // namespace pythmata::test::runtime
