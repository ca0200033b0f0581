// `pythmata worker` on PostgreSQL: the executor without the API. Server A deploys a process with
// a short timer followed by a built-in logger service task and starts instances; A is killed -9
// before the timers are due; the worker, sharing the database, fires the timers and runs the
// service jobs, and a restarted A sees every instance COMPLETED. The worker itself answers only
// /health, /health/ready and /metrics.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "ops_support.hpp"
#include "postgres_server.hpp"
#include "server_process.hpp"

namespace pythmata::test {
namespace {

const char* kTimerThenLogger = R"(  <process id="ops_worker" isExecutable="true">
    <startEvent id="start"/>
    <intermediateCatchEvent id="wait"><timerEventDefinition>
      <timeDuration xsi:type="tFormalExpression">PT2S</timeDuration>
    </timerEventDefinition></intermediateCatchEvent>
    <serviceTask id="log">
      <extensionElements>
        <pythmata:serviceTaskConfig taskName="logger">
          <pythmata:property name="level" value="info"/>
          <pythmata:property name="message" value="fired for ${order}"/>
        </pythmata:serviceTaskConfig>
      </extensionElements>
    </serviceTask>
    <endEvent id="end"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <sequenceFlow id="f2" sourceRef="wait" targetRef="log"/>
    <sequenceFlow id="f3" sourceRef="log" targetRef="end"/>
  </process>
)";

/// The value of an unlabelled sample `name` in a Prometheus text body; -1 when absent.
double sample(const std::string& metrics, const std::string& name) {
    const auto at = metrics.find("\n" + name + " ");
    if (at == std::string::npos) {
        return -1;
    }
    return std::stod(metrics.substr(at + name.size() + 2));
}

class WorkerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        std::string why;
        postgres_ = PostgresServer::start_new(why);
        if (postgres_ == nullptr) {
            GTEST_SKIP() << "PostgreSQL is not available: " << why;
        }
        static std::atomic<int> counter{0};
        const std::string schema =
            "worker_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
        ASSERT_TRUE(postgres_->execute("CREATE SCHEMA " + schema)) << postgres_->log_tail();
        url_ = postgres_->schema_url(schema);
    }

    ServerProcess::Options options(std::vector<std::string> args) const {
        // A short timer lock, so that a timer A had acquired when it died is taken over soon.
        auto o =
            ops_server_options({{"PYTHMATA_DB_URL", url_}, {"PYTHMATA_TIMER_LOCK_MS", "1000"}});
        o.args = std::move(args);
        return o;
    }

    std::unique_ptr<PostgresServer> postgres_;
    std::string url_;
};

TEST_F(WorkerTest, AWorkerAnswersOnlyHealthAndMetrics) {
    auto worker = ServerProcess::start(options({"worker"}));
    ASSERT_TRUE(worker) << worker.error().message;
    HttpClient client((*worker)->port());
    auto health = client.get("/health");
    ASSERT_TRUE(health) << health.error().message;
    EXPECT_EQ(health->status, 200);
    auto ready = client.get("/health/ready");
    ASSERT_TRUE(ready) << ready.error().message;
    EXPECT_EQ(ready->status, 200) << ready->describe();
    auto metrics = client.get("/metrics");
    ASSERT_TRUE(metrics) << metrics.error().message;
    EXPECT_EQ(metrics->status, 200);
    EXPECT_NE(metrics->body.find("pythmata_timer_lateness_seconds_count"), std::string::npos);
    for (const auto& [method, target] :
         std::vector<std::pair<std::string, std::string>>{{"GET", "/api/v1/processes"},
                                                          {"POST", "/api/v1/processes"},
                                                          {"GET", "/api/v1/instances"},
                                                          {"POST", "/api/v1/processes/x/instances"},
                                                          {"POST", "/api/v1/jobs/activate"},
                                                          {"GET", "/api/v1/stats"}}) {
        auto response =
            client.request(method, target, "{}", {{"Content-Type", "application/json"}});
        ASSERT_TRUE(response) << response.error().message;
        EXPECT_EQ(response->status, 404) << method << " " << target << ": " << response->describe();
    }
    auto stopped = (*worker)->terminate();
    ASSERT_TRUE(stopped) << stopped.error().message;
    EXPECT_TRUE(stopped->success()) << stopped->describe();
}

TEST_F(WorkerTest, TheWorkerFiresTimersAndRunsServiceJobsOfAServerThatDied) {
    auto worker = ServerProcess::start(options({"worker"}));
    ASSERT_TRUE(worker) << worker.error().message;
    auto server = ServerProcess::start(options({"serve"}));
    ASSERT_TRUE(server) << server.error().message;

    HttpClient api((*server)->port());
    auto deployed = api.send_xml("POST", "/api/v1/processes", bpmn_document(kTimerThenLogger));
    ASSERT_TRUE(deployed) << deployed.error().message;
    ASSERT_EQ(deployed->status, 201) << deployed->describe();
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        auto started = api.send_json("POST", "/api/v1/processes/ops_worker/instances",
                                     {{"variables", {{"order", i}}}});
        ASSERT_TRUE(started) << started.error().message;
        ASSERT_EQ(started->status, 201) << started->describe();
        ids.push_back(started->json()["data"]["id"].get<std::string>());
    }
    // A dies before any timer is due (PT2S): only the worker is left to fire them.
    (*server)->kill9();

    HttpClient ops((*worker)->port());
    std::string last;
    const bool fired = eventually(std::chrono::seconds(20), [&] {
        auto metrics = ops.get("/metrics");
        if (!metrics || metrics->status != 200) {
            return false;
        }
        last = metrics->body;
        // pythmata_active_instances is this process's view (store count at its start plus its
        // own changes), so completions are counted from process_execution_seconds instead.
        return sample(last, "pythmata_timer_lateness_seconds_count") >= 5 &&
               sample(last, "process_execution_seconds_count") >= 5;
    });
    ASSERT_TRUE(fired) << "the worker did not fire the 5 timers and finish the instances:\n"
                       << last << "\n--- worker log ---\n"
                       << (*worker)->stderr_tail();
    // spdlog flushes info lines every second.
    EXPECT_TRUE(eventually(
        std::chrono::seconds(5),
        [&] { return (*worker)->stderr_tail(100'000).find("fired for 4") != std::string::npos; }))
        << "the logger service task did not run on the worker:\n"
        << (*worker)->stderr_tail(20'000);

    // A, restarted, sees every instance completed.
    auto restarted = (*server)->restart();
    ASSERT_TRUE(restarted) << restarted.error().message;
    HttpClient again((*server)->port());
    for (const auto& id : ids) {
        auto instance = again.get("/api/v1/instances/" + id);
        ASSERT_TRUE(instance) << instance.error().message;
        ASSERT_EQ(instance->status, 200) << instance->describe();
        EXPECT_EQ(instance->json()["data"]["status"], "COMPLETED") << instance->describe();
    }
}

}  // namespace
}  // namespace pythmata::test
