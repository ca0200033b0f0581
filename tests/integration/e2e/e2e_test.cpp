// End to end: the real `pythmata serve` on a real PostgreSQL 15 and a real redis-server, while
// those dependencies fail and come back, and two replicas sharing them.
#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "bpmn_samples.hpp"
#include "http_client.hpp"
#include "postgres_server.hpp"
#include "redis_server.hpp"
#include "server_process.hpp"

namespace pythmata::test {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string unique_key(const std::string& prefix) {
    static int counter = 0;
    return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

class EndToEnd : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why;
        postgres_ = PostgresServer::start_new(why);
        if (!postgres_) {
            GTEST_SKIP() << "PostgreSQL 15 is not available: " << why;
        }
        auto redis = RedisServer::start();
        ASSERT_TRUE(redis.ok()) << redis.error().message;
        redis_ = std::move(redis).value();
    }

    void TearDown() override {
        if (HasFailure()) {
            for (const auto& server : servers_) {
                std::cerr << "server " << server->address() << " stderr:\n"
                          << server->stderr_tail() << "\n";
            }
            if (postgres_) {
                std::cerr << "postgres log:\n" << postgres_->log_tail(2000) << "\n";
            }
        }
        servers_.clear();
        redis_.reset();
        postgres_.reset();
    }

    /// Starts a replica on the shared PostgreSQL and Redis; nullptr (test failed) on error.
    ServerProcess* start_replica() {
        ServerProcess::Options options;
        options.env = {
            {"PYTHMATA_DB_URL", postgres_->url()},
            {"PYTHMATA_REDIS_URL", redis_->url()},
            {"PYTHMATA_DB_CONNECT_TIMEOUT_MS", "1000"},
            {"PYTHMATA_DB_POOL_TIMEOUT", "2"},
            {"PYTHMATA_DB_POOL_SIZE", "4"},
            {"PYTHMATA_DB_MAX_OVERFLOW", "2"},
            {"PYTHMATA_REDIS_TIMEOUT_MS", "200"},
            {"PYTHMATA_DEFINITION_CACHE_TTL", "300"},
            {"PYTHMATA_LOG_LEVEL", "info"},
        };
        auto started = ServerProcess::start(options);
        if (!started) {
            ADD_FAILURE() << started.error().message;
            return nullptr;
        }
        servers_.push_back(std::move(started).value());
        return servers_.back().get();
    }

    static HttpResponse call(Result<HttpResponse, HarnessFailure> result) {
        if (!result) {
            ADD_FAILURE() << result.error().message;
            return {};
        }
        return std::move(result).value();
    }

    static HttpResponse deploy(HttpClient& client, const std::string& xml) {
        return call(client.send_xml("POST", "/api/v1/processes", xml));
    }

    /// GET /health/ready, or status 0 when the request itself failed.
    static HttpResponse ready(HttpClient& client) {
        auto response = client.get("/health/ready");
        return response ? std::move(response).value() : HttpResponse{};
    }

    std::unique_ptr<PostgresServer> postgres_;
    std::unique_ptr<RedisServer> redis_;
    std::vector<std::unique_ptr<ServerProcess>> servers_;
};

/// An error body with `code` and a Retry-After of at least one second.
::testing::AssertionResult is_unavailable(const HttpResponse& response, const std::string& code) {
    if (response.status != 503) {
        return ::testing::AssertionFailure() << "expected 503, got " << response.describe();
    }
    const json body = response.json();
    if (!body.is_object() || body.value("code", "") != code || !body.contains("detail") ||
        !body.contains("context")) {
        return ::testing::AssertionFailure()
               << "expected code " << code << ": " << response.describe();
    }
    const auto retry = response.header("Retry-After");
    if (!retry || std::atoi(retry->c_str()) < 1) {
        return ::testing::AssertionFailure() << "no Retry-After: " << response.describe();
    }
    return ::testing::AssertionSuccess();
}

TEST_F(EndToEnd, PostgresDownAnswers503AndTheServerRecoversWithoutARestart) {
    ServerProcess* server = start_replica();
    ASSERT_NE(server, nullptr);
    const pid_t pid = server->pid();
    HttpClient client(server->port());
    const std::string key = unique_key("Outage");
    ASSERT_EQ(deploy(client, bpmn::user_task_process(key, "Outage", "1")).status, 201);
    const auto up = ready(client);
    ASSERT_EQ(up.status, 200) << up.describe();
    EXPECT_EQ(up.json()["data"]["checks"]["store"], "ok") << up.describe();
    EXPECT_EQ(up.json()["data"]["checks"]["cache"], "ok") << up.describe();

    ASSERT_TRUE(postgres_->stop(PostgresServer::Shutdown::kFast));

    // Requests that need the database fail fast and say so.
    const auto began = Clock::now();
    const auto listed = call(client.get("/api/v1/processes"));
    EXPECT_TRUE(is_unavailable(listed, "DB_UNAVAILABLE"));
    EXPECT_LT(Clock::now() - began, 10s) << "the outage should cost about one connect timeout";
    EXPECT_TRUE(is_unavailable(deploy(client, bpmn::user_task_process(unique_key("DuringOutage"))),
                               "DB_UNAVAILABLE"));
    EXPECT_TRUE(is_unavailable(call(client.get("/api/v1/processes/" + key + "/versions")),
                               "DB_UNAVAILABLE"));

    const auto down = ready(client);
    EXPECT_EQ(down.status, 503) << down.describe();
    EXPECT_NE(down.body.find("store"), std::string::npos) << "the failing check is named";
    EXPECT_TRUE(down.header("Retry-After").has_value()) << down.describe();
    EXPECT_EQ(call(client.get("/health")).status, 200) << "liveness does not need the database";

    ASSERT_TRUE(postgres_->start()) << postgres_->log_tail();
    EXPECT_TRUE(eventually(30s, [&] { return ready(client).status == 200; }))
        << "not ready 30 s after PostgreSQL returned: " << ready(client).describe();
    const auto relisted = call(client.get("/api/v1/processes"));
    EXPECT_EQ(relisted.status, 200) << relisted.describe();
    const auto second = deploy(client, bpmn::user_task_process(key, "Outage", "2"));
    EXPECT_EQ(second.status, 201) << second.describe();
    EXPECT_EQ(second.json()["data"]["version"], 2);
    EXPECT_EQ(server->pid(), pid);
    EXPECT_TRUE(server->running());
}

TEST_F(EndToEnd, TheServerStartsWhilePostgresIsDownAndBecomesReadyWhenItComes) {
    ASSERT_TRUE(postgres_->stop(PostgresServer::Shutdown::kFast));
    ServerProcess* server = start_replica();
    ASSERT_NE(server, nullptr) << "the server must start (and report not ready) without the store";
    HttpClient client(server->port());
    EXPECT_EQ(call(client.get("/health")).status, 200);
    const auto down = ready(client);
    EXPECT_EQ(down.status, 503) << down.describe();
    EXPECT_NE(down.body.find("store"), std::string::npos) << down.describe();
    EXPECT_TRUE(is_unavailable(deploy(client, bpmn::user_task_process(unique_key("Early"))),
                               "DB_UNAVAILABLE"));

    ASSERT_TRUE(postgres_->start()) << postgres_->log_tail();
    EXPECT_TRUE(eventually(30s, [&] { return ready(client).status == 200; }))
        << ready(client).describe();
    const std::string key = unique_key("Late");
    const auto deployed = deploy(client, bpmn::user_task_process(key));
    EXPECT_EQ(deployed.status, 201) << deployed.describe();
    EXPECT_EQ(call(client.get("/api/v1/processes/" + key)).status, 200);
}

TEST_F(EndToEnd, RedisDownIsInvisibleToClientsAndTheCacheComesBack) {
    ServerProcess* a = start_replica();
    ServerProcess* b = start_replica();
    ASSERT_TRUE(a != nullptr && b != nullptr);
    HttpClient on_a(a->port());
    HttpClient on_b(b->port());
    const std::string key = unique_key("Steady");
    ASSERT_EQ(deploy(on_a, bpmn::user_task_process(key)).status, 201);
    ASSERT_EQ(call(on_b.get("/api/v1/processes/" + key)).status, 200);

    redis_->kill();

    // Deploys and reads go on, served by the store.
    const std::string during = unique_key("DuringRedisOutage");
    const auto began = Clock::now();
    const auto deployed = deploy(on_a, bpmn::user_task_process(during));
    EXPECT_EQ(deployed.status, 201) << deployed.describe();
    EXPECT_EQ(call(on_b.get("/api/v1/processes/" + during)).status, 200);
    EXPECT_EQ(call(on_a.get("/api/v1/processes/" + during)).status, 200);
    EXPECT_EQ(call(on_b.get("/api/v1/processes/" + key)).status, 200);
    EXPECT_EQ(call(on_a.get("/api/v1/processes?page_size=5")).status, 200);
    EXPECT_LT(Clock::now() - began, 10s) << "a dead Redis must not make requests slow";

    // Readiness reports the cache degraded, and stays 200: only the store makes it 503.
    bool degraded = false;
    bool always_200 = true;
    HttpResponse last;
    const auto reports_degraded = [&] {
        (void)on_b.get("/api/v1/processes/" + unique_key("Probe"));  // gives the cache a call
        last = ready(on_b);
        always_200 = always_200 && last.status == 200;
        degraded = last.json()["data"]["checks"]["cache"] == "degraded";
        return degraded || last.status != 200;
    };
    (void)eventually(10s, reports_degraded);
    EXPECT_TRUE(always_200) << "readiness must stay 200 with only the cache down: "
                            << last.describe();
    EXPECT_TRUE(degraded) << ready(on_b).describe();

    ASSERT_TRUE(redis_->restart().ok());
    EXPECT_TRUE(eventually(15s, [&] {
        (void)on_b.get("/api/v1/processes/" + unique_key("Probe"));
        const auto r = ready(on_b);
        return r.status == 200 && r.json()["data"]["checks"]["cache"] == "ok";
    })) << ready(on_b).describe();

    // The cache works again: a lookup on B fills Redis, and invalidations reach B again.
    std::string refilled;
    EXPECT_TRUE(eventually(15s, [&] {
        refilled = unique_key("Refill");
        if (deploy(on_a, bpmn::user_task_process(refilled, "R", "1")).status != 201) {
            return false;
        }
        (void)on_b.get("/api/v1/processes/" + refilled);
        auto size = redis_->command({"DBSIZE"});
        return size.ok() && size.value() != "0";
    })) << "Redis stayed empty after the restart";
    EXPECT_TRUE(eventually(15s, [&] {
        const auto v2 =
            deploy(on_a, bpmn::user_task_process(refilled, "R", "v" + unique_key("next")));
        const auto seen = call(on_b.get("/api/v1/processes/" + refilled));
        return seen.status == 200 && seen.json()["data"]["version"] == v2.json()["data"]["version"];
    })) << "B keeps serving a stale version after Redis came back";
}

TEST_F(EndToEnd, ADeployOnOneReplicaIsSeenOnTheOtherAtOnce) {
    ServerProcess* a = start_replica();
    ServerProcess* b = start_replica();
    ASSERT_TRUE(a != nullptr && b != nullptr);
    HttpClient on_a(a->port());
    HttpClient on_b(b->port());
    const std::string key = unique_key("Shared");

    ASSERT_EQ(deploy(on_a, bpmn::user_task_process(key, "Shared", "1")).status, 201);
    // B reads v1 twice: the second read comes from B's own cache, which lives 300 s.
    for (int i = 0; i < 2; ++i) {
        const auto v1 = call(on_b.get("/api/v1/processes/" + key));
        ASSERT_EQ(v1.status, 200) << v1.describe();
        ASSERT_EQ(v1.json()["data"]["version"], 1);
    }

    const auto v2 = deploy(on_a, bpmn::user_task_process(key, "Shared", "2"));
    ASSERT_EQ(v2.status, 201) << v2.describe();
    // Invalidation travels over Redis pub/sub; allow it the time of a message, nothing like the
    // 300 s the stale entry would otherwise live.
    HttpResponse seen;
    EXPECT_TRUE(eventually(1s,
                           [&] {
                               seen = call(on_b.get("/api/v1/processes/" + key));
                               return seen.status == 200 && seen.json()["data"]["version"] == 2;
                           }))
        << "B still serves " << seen.describe();
    EXPECT_EQ(seen.json()["data"]["bpmn_xml"], bpmn::user_task_process(key, "Shared", "2"));

    // The other way round, through PUT on B.
    const auto v3 = call(on_b.send_xml("PUT", "/api/v1/processes/" + key,
                                       bpmn::user_task_process(key, "Shared", "3")));
    ASSERT_EQ(v3.status, 201) << v3.describe();
    EXPECT_TRUE(eventually(1s,
                           [&] {
                               seen = call(on_a.get("/api/v1/processes/" + key));
                               return seen.status == 200 && seen.json()["data"]["version"] == 3;
                           }))
        << "A still serves " << seen.describe();

    // A delete on A is seen on B too.
    ASSERT_EQ(call(on_a.request("DELETE", "/api/v1/processes/" + key)).status, 204);
    EXPECT_TRUE(eventually(1s,
                           [&] {
                               seen = call(on_b.get("/api/v1/processes/" + key));
                               return seen.status == 404;
                           }))
        << "B still serves a deleted key: " << seen.describe();
}

}  // namespace
}  // namespace pythmata::test
