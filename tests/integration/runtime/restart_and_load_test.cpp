// Durability and batching through the real `pythmata serve`, on SQLite and on PostgreSQL with
// Redis: kill -9 the server with instances waiting on every kind of event (and while starts are
// in flight), restart it on the same store, and everything that got a 201 is there and resumes;
// many concurrent starts all succeed and are committed in fewer batches than commands.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime_models.hpp"
#include "runtime_test_support.hpp"

namespace pythmata::test::runtime {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

class RestartAndLoad : public RuntimeServerTest {
  protected:
    /// kill -9, then starts the server again on the same port and store; a new client.
    void crash_and_restart(std::chrono::milliseconds down = 0ms) {
        client_.reset();
        server_->kill9();
        ASSERT_FALSE(server_->running());
        std::this_thread::sleep_for(down);
        auto restarted = server_->restart();
        ASSERT_TRUE(restarted.ok()) << restarted.error().message;
        client_ = std::make_unique<HttpClient>(server_->port(), std::chrono::seconds(30));
    }

    json activate(const std::string& type, const json& extra = json::object()) {
        json body = {{"type", type}, {"worker", "worker-1"}};
        body.update(extra);
        const auto response = post("/jobs/activate", body);
        EXPECT_TRUE(is_data(response, 200)) << "activate " << type;
        return response.json()["data"].value("items", json::array());
    }
};

/// Names of the sample series in a Prometheus text page that contain every one of `parts`.
std::vector<std::string> series_named(const std::string& page,
                                      const std::vector<std::string>& parts) {
    std::istringstream lines(page);
    std::string line;
    std::vector<std::string> out;
    while (std::getline(lines, line)) {
        if (line.empty() || line.starts_with("#")) {
            continue;
        }
        const std::string name = line.substr(0, line.find_first_of("{ "));
        bool all = true;
        for (const auto& part : parts) {
            all = all && name.find(part) != std::string::npos;
        }
        if (all) {
            out.push_back(line);
        }
    }
    return out;
}

TEST_P(RestartAndLoad, AfterKillNineEveryWaitingInstanceResumesAndADueTimerFires) {
    deploy(models::user_task("Order"));
    deploy(models::message_catch("AwaitPayment"));
    deploy(models::charge_job("Charge"));
    deploy(models::timer_catch("Quick", "PT2S"));
    deploy(models::timer_catch("Wait", "PT1H"));

    const std::string task_instance = start("Order", {{"variables", {{"n", 1}}}}).value("id", "");
    const std::string message_instance =
        start("AwaitPayment", {{"variables", {{"order_id", "R-1"}}}}).value("id", "");
    const std::string job_instance = start("Charge").value("id", "");
    const std::string locked_job_instance = start("Charge").value("id", "");
    const std::string long_timer = start("Wait").value("id", "");
    const auto quick_started = SteadyClock::now();
    const json quick = start("Quick");
    const std::string quick_timer = quick.value("id", "");
    ASSERT_EQ(quick["status"], "RUNNING");
    // One job is taken by a worker that then dies with the server: its lock must expire.
    const json taken = activate("charge-card", {{"max_jobs", 1}, {"lock_ms", 1500}});
    ASSERT_EQ(taken.size(), 1u);
    const std::string taken_instance = taken[0].value("instance_id", "");
    ASSERT_TRUE(taken_instance == job_instance || taken_instance == locked_job_instance);

    ASSERT_LT(SteadyClock::now() - quick_started, 1500ms)
        << "too slow to crash the server before the PT2S timer falls due";
    // Down until well after the quick timer fell due.
    const auto down = std::chrono::duration_cast<std::chrono::milliseconds>(quick_started + 3s -
                                                                            SteadyClock::now());
    const auto before_restart = SteadyClock::now();
    ASSERT_NO_FATAL_FAILURE(crash_and_restart(down));

    // The timer that fell due while the server was down fires right after start-up.
    const json fired = await_status(quick_timer, "COMPLETED", 5s);
    EXPECT_EQ(fired["status"], "COMPLETED");
    EXPECT_LT(SteadyClock::now() - before_restart, 10s);

    // Every instance that got a 201 is there, waiting where it waited.
    const json order = instance(task_instance);
    EXPECT_EQ(order["status"], "RUNNING");
    EXPECT_EQ(order["active_elements"], json::array({"review"}));
    EXPECT_EQ(order["variables"]["n"], 1);
    EXPECT_EQ(instance(message_instance)["active_elements"], json::array({"wait_payment"}));
    EXPECT_EQ(instance(job_instance)["active_elements"], json::array({"charge"}));
    EXPECT_EQ(instance(locked_job_instance)["active_elements"], json::array({"charge"}));
    EXPECT_EQ(instance(long_timer)["active_elements"], json::array({"wait_timer"}));
    EXPECT_EQ(get("/instances").json()["data"]["total"], 6);

    // The user task completes.
    const json task = only_task(task_instance);
    const auto completed = post("/tasks/" + task.value("id", "") + "/complete", json::object());
    ASSERT_TRUE(is_data(completed, 200));
    EXPECT_EQ(completed.json()["data"]["status"], "COMPLETED");

    // The message correlates.
    ASSERT_TRUE(
        is_data(post("/messages", {{"name", "PaymentReceived"}, {"correlation_key", "R-1"}}), 200));
    await_status(message_instance, "COMPLETED", 5s);

    // Both jobs are handed out: the free one at once, the one whose worker died when its lock
    // expires.
    std::set<std::string> job_instances;
    std::vector<std::string> job_ids;
    EXPECT_TRUE(eventually(10s,
                           [&] {
                               for (const auto& job : activate("charge-card")) {
                                   job_instances.insert(job.value("instance_id", ""));
                                   job_ids.push_back(job.value("id", ""));
                               }
                               return job_instances.size() == 2;
                           }))
        << "jobs handed out after the restart: " << job_instances.size();
    for (const auto& id : job_ids) {
        EXPECT_TRUE(is_data(post("/jobs/" + id + "/complete", json::object()), 200));
    }
    await_status(job_instance, "COMPLETED", 5s);
    await_status(locked_job_instance, "COMPLETED", 5s);

    // The hour-long timer is still pending and fires when the clock passes it.
    const json timers = items("/timers?instance_id=" + long_timer);
    ASSERT_EQ(timers.size(), 1u) << timers.dump();
    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT2H"}}), 200));
    await_status(long_timer, "COMPLETED", 5s);
    EXPECT_EQ(get("/instances?status=COMPLETED").json()["data"]["total"], 6);
}

TEST_P(RestartAndLoad, EveryStartThatGot201SurvivesAKillNineDuringTraffic) {
    deploy(models::user_task("Order"));
    const std::uint16_t port = server_->port();
    std::mutex mutex;
    std::vector<std::string> acknowledged;
    std::atomic<bool> stop{false};
    std::atomic<int> count{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&, t] {
            HttpClient client(port, 10s);
            for (int n = 0; !stop.load(); ++n) {
                const json body = {
                    {"business_key", "t" + std::to_string(t) + "-" + std::to_string(n)}};
                auto response = client.request("POST", "/api/v1/processes/Order/instances",
                                               body.dump(), {{"Content-Type", "application/json"}});
                if (!response.ok() || response.value().status != 201) {
                    return;  // the server is gone
                }
                const std::string id = response.value().json()["data"].value("id", "");
                std::lock_guard lock(mutex);
                acknowledged.push_back(id);
                ++count;
            }
        });
    }
    ASSERT_TRUE(eventually(30s, [&] { return count.load() >= 100; }))
        << "the clients did not get going";
    client_.reset();
    server_->kill9();
    stop = true;
    for (auto& c : clients) {
        c.join();
    }
    ASSERT_NO_FATAL_FAILURE(crash_and_restart());

    std::set<std::string> stored;
    const auto list = get("/instances?process_key=Order&page_size=1000");
    ASSERT_TRUE(is_page(list));
    const json listed = list.json()["data"]["items"];
    for (const auto& item : listed) {
        stored.insert(item.value("id", ""));
    }
    RecordProperty("acknowledged_starts", static_cast<int>(acknowledged.size()));
    RecordProperty("stored_instances", static_cast<int>(stored.size()));
    EXPECT_GE(stored.size(), acknowledged.size());
    std::size_t missing = 0;
    for (const auto& id : acknowledged) {
        if (!stored.contains(id)) {
            ++missing;
            ADD_FAILURE() << "instance " << id << " got a 201 but is gone after kill -9";
        }
    }
    EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged starts";
    // Each still waits at its task, and the server takes new work.
    const json some = instance(acknowledged.back());
    EXPECT_EQ(some["status"], "RUNNING");
    EXPECT_EQ(open_tasks(acknowledged.back()).size(), 1u);
    EXPECT_EQ(get("/tasks?page_size=1").json()["data"]["total"], static_cast<int>(stored.size()));
    start("Order");
}

TEST_P(RestartAndLoad, TwoHundredConcurrentStartsAllSucceedInFewerBatchesThanCommands) {
    deploy(models::user_task("Order"));
    constexpr int kThreads = 8;
    constexpr int kPerThread = 25;
    const std::uint16_t port = server_->port();
    std::mutex mutex;
    std::set<std::string> ids;
    std::vector<std::string> failures;
    std::vector<std::thread> clients;
    for (int t = 0; t < kThreads; ++t) {
        clients.emplace_back([&, t] {
            HttpClient client(port, 30s);
            for (int n = 0; n < kPerThread; ++n) {
                const json body = {{"variables", {{"thread", t}, {"n", n}}}};
                auto response = client.request("POST", "/api/v1/processes/Order/instances",
                                               body.dump(), {{"Content-Type", "application/json"}});
                std::lock_guard lock(mutex);
                if (!response.ok()) {
                    failures.push_back(response.error().message);
                } else if (response.value().status != 201) {
                    failures.push_back(response.value().describe());
                } else {
                    ids.insert(response.value().json()["data"].value("id", ""));
                }
            }
        });
    }
    for (auto& c : clients) {
        c.join();
    }
    EXPECT_TRUE(failures.empty()) << failures.size() << " starts failed, first: "
                                  << (failures.empty() ? "" : failures.front());
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(kThreads * kPerThread));

    const auto list = get("/instances?process_key=Order&page_size=1000");
    ASSERT_TRUE(is_page(list));
    EXPECT_EQ(list.json()["data"]["total"], kThreads * kPerThread);
    std::set<std::string> stored;
    const json listed = list.json()["data"]["items"];
    for (const auto& item : listed) {
        stored.insert(item.value("id", ""));
        EXPECT_EQ(item["status"], "RUNNING");
    }
    EXPECT_EQ(stored, ids);
    EXPECT_EQ(get("/tasks?page_size=1").json()["data"]["total"], kThreads * kPerThread);

    const auto stats = get("/stats");
    ASSERT_TRUE(is_data(stats, 200));
    const json replica = stats.json()["data"]["replica"];
    const long commands = replica.value("commands_processed", 0L);
    const long batches = replica.value("batches_committed", 0L);
    RecordProperty("commands_processed", static_cast<int>(commands));
    RecordProperty("batches_committed", static_cast<int>(batches));
    EXPECT_GE(commands, kThreads * kPerThread) << replica.dump();
    EXPECT_GT(batches, 0) << replica.dump();
    EXPECT_LT(batches, commands) << "no group commit: " << replica.dump();
    EXPECT_EQ(stats.json()["data"]["instances"]["RUNNING"], kThreads * kPerThread);

    const auto metrics = call(client_->get("/metrics"));
    ASSERT_EQ(metrics.status, 200) << metrics.describe();
    const double batch_count = metric_value(metrics.body, "pythmata_batch_size_count");
    const double batch_sum = metric_value(metrics.body, "pythmata_batch_size_sum");
    EXPECT_GT(batch_count, 0) << "no pythmata_batch_size histogram";
    EXPECT_LT(batch_count, batch_sum) << "batches " << batch_count << ", commands " << batch_sum;
    EXPECT_GE(metric_value(metrics.body, "process_instances_total"), kThreads * kPerThread);
}

TEST_P(RestartAndLoad, SuspensionIncidentsRetriesHistoryAndIdempotencyKeysSurviveKillNine) {
    deploy(models::user_task("Order"));
    deploy(models::fragile_script("Fragile"));
    deploy(models::charge_job("Charge"));
    deploy(models::timer_start("Ticker", "R1/PT2S"));
    const auto deployed_at = SteadyClock::now();

    const std::string suspended = start("Order").value("id", "");
    ASSERT_TRUE(is_data(post("/instances/" + suspended + "/suspend", json::object()), 200));
    const std::string broken = start("Fragile").value("id", "");
    ASSERT_EQ(instance(broken)["status"], "ERROR");
    const std::string retried = start("Charge").value("id", "");
    const json job = activate("charge-card");
    ASSERT_EQ(job.size(), 1u);
    ASSERT_TRUE(is_data(post("/jobs/" + job[0].value("id", "") + "/fail",
                             {{"error_message", "flaky"}, {"retries", 1}}),
                        200));
    const json body = {{"business_key", "idem-restart"}};
    const auto keyed = post("/processes/Order/instances", body, {{"Idempotency-Key", "k-restart"}});
    ASSERT_TRUE(is_data(keyed, 201));
    const std::string history_instance = keyed.json()["data"].value("id", "");
    const json task = only_task(history_instance);
    ASSERT_TRUE(is_data(post("/tasks/" + task.value("id", "") + "/complete", json::object()), 200));
    const json history_before = items("/instances/" + history_instance + "/activities");
    ASSERT_EQ(get("/processes/Ticker/instances").json()["data"]["total"], 0)
        << "the timer start event fired before the crash";

    const auto down = std::chrono::duration_cast<std::chrono::milliseconds>(deployed_at + 3s -
                                                                            SteadyClock::now());
    ASSERT_NO_FATAL_FAILURE(crash_and_restart(std::max(down, std::chrono::milliseconds(0))));

    // The timer start event that fell due while the server was down starts its instance.
    EXPECT_TRUE(eventually(5s, [&] {
        return get("/processes/Ticker/instances").json()["data"].value("total", 0) == 1;
    })) << "the due timer start event did not fire after start-up";

    EXPECT_EQ(instance(suspended)["status"], "SUSPENDED");
    EXPECT_TRUE(is_error(
        post("/tasks/" + only_task(suspended).value("id", "") + "/complete", json::object()), 409,
        "INSTANCE_SUSPENDED"));
    ASSERT_TRUE(is_data(post("/instances/" + suspended + "/resume", json::object()), 200));

    const json held = instance(broken);
    EXPECT_EQ(held["status"], "ERROR");
    EXPECT_EQ(held["incidents"], 1);
    const json incidents = items("/incidents?instance_id=" + broken + "&state=OPEN");
    ASSERT_EQ(incidents.size(), 1u);
    ASSERT_TRUE(is_data(patch("/instances/" + broken + "/variables", {{"ok", true}}), 200));
    ASSERT_TRUE(is_data(
        post("/incidents/" + incidents[0].value("id", "") + "/resolve", json::object()), 200));
    await_status(broken, "COMPLETED", 5s);

    const json again = activate("charge-card");
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0]["retries"], 1) << "the retries left survive the crash";
    EXPECT_EQ(again[0]["instance_id"], retried);

    const auto replay =
        post("/processes/Order/instances", body, {{"Idempotency-Key", "k-restart"}});
    EXPECT_EQ(replay.status, 201) << replay.describe();
    EXPECT_EQ(replay.json(), keyed.json()) << "the idempotency record survives the crash";
    EXPECT_EQ(get("/instances?business_key=idem-restart").json()["data"]["total"], 1);

    EXPECT_EQ(items("/instances/" + history_instance + "/activities"), history_before);
    EXPECT_EQ(instance(history_instance)["status"], "COMPLETED");
    const json completed_tasks = items("/tasks?state=COMPLETED&instance_id=" + history_instance);
    EXPECT_EQ(completed_tasks.size(), 1u);
}

TEST_P(RestartAndLoad, ConcurrentCompletionsOfParallelBranchesNeverConflict) {
    constexpr int kBranches = 12;
    deploy(models::wide_fork("Wide", kBranches));
    const std::string id = start("Wide").value("id", "");
    const json tasks = open_tasks(id);
    ASSERT_EQ(tasks.size(), static_cast<std::size_t>(kBranches)) << tasks.dump();
    const std::uint16_t port = server_->port();
    std::mutex mutex;
    std::vector<std::string> answers;
    std::vector<std::thread> clients;
    for (const auto& task : tasks) {
        const std::string task_id = task.value("id", "");
        const std::string element = task.value("element_id", "");
        clients.emplace_back([&, task_id, element] {
            HttpClient client(port, 30s);
            auto response = client.request("POST", "/api/v1/tasks/" + task_id + "/complete",
                                           json({{"variables", {{element, true}}}}).dump(),
                                           {{"Content-Type", "application/json"}});
            std::lock_guard lock(mutex);
            answers.push_back(response.ok() ? response.value().describe()
                                            : "transport: " + response.error().message);
            if (response.ok() && response.value().status == 200) {
                answers.back() = "200";
            }
        });
    }
    for (auto& c : clients) {
        c.join();
    }
    for (const auto& answer : answers) {
        EXPECT_EQ(answer, "200") << "no client sees a locking error";
    }
    const json done = await_status(id, "COMPLETED", 5s);
    for (int i = 1; i <= kBranches; ++i) {
        EXPECT_EQ(done["variables"]["branch_" + std::to_string(i)], true)
            << "every branch's variables were kept: " << done["variables"].dump();
    }
}

TEST_P(RestartAndLoad, ARaceToCompleteOneTaskHasExactlyOneWinner) {
    deploy(models::user_task("Order"));
    const std::string id = start("Order").value("id", "");
    const std::string task = only_task(id).value("id", "");
    const std::uint16_t port = server_->port();
    std::mutex mutex;
    std::vector<HttpResponse> answers;
    std::vector<std::thread> clients;
    for (int t = 0; t < 6; ++t) {
        clients.emplace_back([&] {
            HttpClient client(port, 30s);
            auto response = client.request("POST", "/api/v1/tasks/" + task + "/complete", "{}",
                                           {{"Content-Type", "application/json"}});
            std::lock_guard lock(mutex);
            answers.push_back(response.ok() ? response.value() : HttpResponse{});
        });
    }
    for (auto& c : clients) {
        c.join();
    }
    int won = 0;
    for (const auto& answer : answers) {
        if (answer.status == 200) {
            ++won;
        } else {
            EXPECT_TRUE(is_error(answer, 409, "TASK_ALREADY_COMPLETED"));
        }
    }
    EXPECT_EQ(won, 1);
    EXPECT_EQ(instance(id)["status"], "COMPLETED");
}

TEST_P(RestartAndLoad, ConcurrentWorkersGetEachJobExactlyOnce) {
    constexpr int kJobs = 30;
    deploy(models::charge_job("Charge"));
    for (int i = 0; i < kJobs; ++i) {
        start("Charge");
    }
    const std::uint16_t port = server_->port();
    std::mutex mutex;
    std::vector<std::string> handed;
    std::vector<std::string> problems;
    std::vector<std::thread> workers;
    for (int w = 0; w < 5; ++w) {
        workers.emplace_back([&, w] {
            HttpClient client(port, 30s);
            for (int round = 0; round < 10; ++round) {
                auto response = client.request("POST", "/api/v1/jobs/activate",
                                               json({{"type", "charge-card"},
                                                     {"worker", "w" + std::to_string(w)},
                                                     {"max_jobs", 2}})
                                                   .dump(),
                                               {{"Content-Type", "application/json"}});
                std::lock_guard lock(mutex);
                if (!response.ok() || response.value().status != 200) {
                    problems.push_back(response.ok() ? response.value().describe()
                                                     : response.error().message);
                    return;
                }
                const json jobs = response.value().json()["data"]["items"];
                for (const auto& job : jobs) {
                    handed.push_back(job.value("id", ""));
                }
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    EXPECT_TRUE(problems.empty()) << problems.front();
    const std::set<std::string> distinct(handed.begin(), handed.end());
    EXPECT_EQ(distinct.size(), handed.size()) << "a job was handed to two workers";
    EXPECT_EQ(distinct.size(), static_cast<std::size_t>(kJobs));
    for (const auto& job : distinct) {
        EXPECT_TRUE(is_data(post("/jobs/" + job + "/complete", json::object()), 200));
    }
    EXPECT_TRUE(eventually(10s, [&] {
        return get("/instances?status=COMPLETED").json()["data"].value("total", 0) == kJobs;
    }));
}

TEST_P(RestartAndLoad, AFullEngineQueueAnswers503AndLeavesNoTrace) {
    ASSERT_NO_FATAL_FAILURE(
        start_server({{"PYTHMATA_ENGINE_QUEUE_CAPACITY", "1"}, {"PYTHMATA_ENGINE_WORKERS", "1"}}));
    deploy(models::user_task("Order"));
    const std::uint16_t port = server_->port();
    std::mutex mutex;
    std::set<std::string> created;
    int refused = 0;
    std::vector<std::string> unexpected;
    std::vector<std::thread> clients;
    for (int t = 0; t < 8; ++t) {
        clients.emplace_back([&] {
            HttpClient client(port, 30s);
            for (int n = 0; n < 15; ++n) {
                auto response = client.request("POST", "/api/v1/processes/Order/instances", "{}",
                                               {{"Content-Type", "application/json"}});
                std::lock_guard lock(mutex);
                if (!response.ok()) {
                    unexpected.push_back(response.error().message);
                } else if (response.value().status == 201) {
                    created.insert(response.value().json()["data"].value("id", ""));
                } else if (is_error(response.value(), 503, "OVERLOADED") &&
                           response.value().header("Retry-After")) {
                    ++refused;
                } else {
                    unexpected.push_back(response.value().describe());
                }
            }
        });
    }
    for (auto& c : clients) {
        c.join();
    }
    RecordProperty("overloaded_503", refused);
    EXPECT_TRUE(unexpected.empty())
        << unexpected.size() << " answers neither 201 nor 503 "
        << "OVERLOADED with Retry-After; first: " << (unexpected.empty() ? "" : unexpected.front());
    EXPECT_EQ(static_cast<int>(created.size()) + refused, 8 * 15);
    EXPECT_EQ(get("/instances?page_size=1").json()["data"]["total"],
              static_cast<int>(created.size()))
        << "a refused start left an instance, or an acknowledged one is missing";
}

TEST_P(RestartAndLoad, RuntimeMetricsFollowTheInstances) {
    deploy(models::user_task("Order"));
    deploy(models::scripts("Scripts"));
    deploy(models::fragile_script("Fragile"));
    deploy(models::charge_job("Charge"));
    deploy(models::timer_catch("Wait", "PT1H"));
    for (int i = 0; i < 3; ++i) {
        start("Order");
    }
    for (int i = 0; i < 2; ++i) {
        start("Scripts", {{"variables", {{"amount", i}}}});
        start("Charge");
    }
    start("Fragile");
    const std::string timed = start("Wait").value("id", "");
    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT2H"}}), 200));
    await_status(timed, "COMPLETED", 5s);

    auto page = [&] {
        const auto response = call(client_->get("/metrics"));
        EXPECT_EQ(response.status, 200) << response.describe();
        return response.body;
    };
    std::string text = page();
    EXPECT_EQ(metric_value(text, "process_instances_total"), 9);
    EXPECT_EQ(metric_value(text, "process_execution_seconds_count"), 3)
        << "two straight-through instances and the timer's ended";
    EXPECT_EQ(metric_value(text, "pythmata_active_instances"), 6)
        << "3 at tasks, 2 at jobs, 1 held by an incident";
    EXPECT_GT(metric_value(text, "pythmata_execution_time_seconds_count"), 0);
    EXPECT_GE(metric_value(text, "pythmata_tokens_processed_total"), 20);
    EXPECT_GT(metric_value(text, "pythmata_batch_size_count"), 0);
    EXPECT_GT(metric_value(text, "pythmata_batch_commit_seconds_count"), 0);
    EXPECT_GE(metric_value(text, "pythmata_timer_lateness_seconds_count"), 1);
}

// Issue 4: "plus batch size, batch commit latency, timer lateness, job queue depth and open
// incidents". The open-incident gauge is refreshed by housekeeping (maintenance_interval).
TEST_P(RestartAndLoad, OpenIncidentsAndTheJobQueueDepthAreGauges) {
    ASSERT_NO_FATAL_FAILURE(start_server({{"PYTHMATA_MAINTENANCE_INTERVAL", "0.2"}}));
    deploy(models::fragile_script("Fragile"));
    deploy(models::charge_job("Charge"));
    start("Fragile");
    start("Charge");
    start("Charge");
    std::string text;
    auto page = [&] {
        const auto response = call(client_->get("/metrics"));
        EXPECT_EQ(response.status, 200) << response.describe();
        return response.body;
    };
    EXPECT_TRUE(eventually(10s, [&] {
        text = page();
        return metric_value(text, "pythmata_incidents_open") == 1;
    })) << ::testing::PrintToString(series_named(text, {"incident"}));
    EXPECT_TRUE(eventually(10s,
                           [&] {
                               text = page();
                               for (const auto& part : {"queue", "pending"}) {
                                   for (const auto& line : series_named(text, {"job", part})) {
                                       if (std::stod(line.substr(line.rfind(' ') + 1)) == 2) {
                                           return true;
                                       }
                                   }
                               }
                               return false;
                           }))
        << "no job queue depth series (a name with job and queue or pending) showing the 2 "
           "pending jobs; series naming jobs: "
        << ::testing::PrintToString(series_named(text, {"job"}));
}

// Issue 4: pythmata_errors_total{kind}; a failing script is a failure of the runtime's.
TEST_P(RestartAndLoad, AFailingScriptIsCountedInErrorsTotal) {
    deploy(models::fragile_script("Fragile"));
    const std::string id = start("Fragile").value("id", "");
    ASSERT_EQ(instance(id)["status"], "ERROR");
    const auto response = call(client_->get("/metrics"));
    ASSERT_EQ(response.status, 200);
    EXPECT_GE(metric_value(response.body, "pythmata_errors_total"), 1)
        << "series: " << ::testing::PrintToString(series_named(response.body, {"error"}));
}

INSTANTIATE_TEST_SUITE_P(Backends, RestartAndLoad,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgresRedis),
                         backend_name);

}  // namespace
}  // namespace pythmata::test::runtime
