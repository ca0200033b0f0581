// Two `pythmata serve` replicas on one PostgreSQL store (and one Redis): timers fire once, jobs
// are handed out once, and either replica carries on an instance the other one started (issue 4:
// "several replicas share them and a crashed replica's work is taken over"). SQLite is a
// single-node store, so this suite runs on PostgreSQL only.
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime_models.hpp"
#include "runtime_test_support.hpp"

namespace pythmata::test::runtime {
namespace {

using namespace std::chrono_literals;

class TwoReplicas : public RuntimeServerTest {
  protected:
    void SetUp() override {
        RuntimeServerTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) {
            return;
        }
        auto started = ServerProcess::start(server_options({}));
        ASSERT_TRUE(started.ok()) << started.error().message;
        other_ = std::move(started).value();
        other_client_ = std::make_unique<HttpClient>(other_->port(), 30s);
    }

    void TearDown() override {
        if (HasFailure() && other_) {
            std::cerr << "second replica stderr:\n" << other_->stderr_tail(4000) << "\n";
        }
        other_client_.reset();
        other_.reset();
        RuntimeServerTest::TearDown();
    }

    /// A request on the second replica.
    HttpResponse on_other(const std::string& method, const std::string& path,
                          const json& body = nullptr) {
        if (body.is_null()) {
            return call(other_client_->request(method, api(path)));
        }
        return call(other_client_->request(method, api(path), body.dump(),
                                           {{"Content-Type", "application/json"}}));
    }

    std::unique_ptr<ServerProcess> other_;
    std::unique_ptr<HttpClient> other_client_;
};

TEST_P(TwoReplicas, EitherReplicaCarriesOnAnInstanceTheOtherStarted) {
    deploy(models::fork_join("Fork"));
    deploy(models::message_catch("AwaitPayment"));
    const std::string id = start("Fork").value("id", "");
    const json a = items("/tasks?instance_id=" + id + "&element_id=task_a");
    const json b = items("/tasks?instance_id=" + id + "&element_id=task_b");
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(b.size(), 1u);

    // task_a on the second replica, task_b on the first: each sees the other's write.
    const auto first =
        on_other("POST", "/tasks/" + a[0].value("id", "") + "/complete", json::object());
    ASSERT_TRUE(is_data(first, 200));
    EXPECT_EQ(first.json()["data"]["status"], "RUNNING");
    const auto second = post("/tasks/" + b[0].value("id", "") + "/complete", json::object());
    ASSERT_TRUE(is_data(second, 200));
    EXPECT_EQ(second.json()["data"]["status"], "COMPLETED");
    const auto seen = on_other("GET", "/instances/" + id);
    ASSERT_TRUE(is_data(seen, 200));
    EXPECT_EQ(seen.json()["data"]["status"], "COMPLETED");

    // A message on the second replica for an instance the first started.
    const std::string waiting =
        start("AwaitPayment", {{"variables", {{"order_id", "X-1"}}}}).value("id", "");
    const auto matched =
        on_other("POST", "/messages", {{"name", "PaymentReceived"}, {"correlation_key", "X-1"}});
    ASSERT_TRUE(is_data(matched, 200));
    EXPECT_EQ(matched.json()["data"]["instance_id"], waiting);
    await_status(waiting, "COMPLETED", 5s);

    // A second completion of an already completed task, on the other replica: 409.
    EXPECT_TRUE(
        is_error(on_other("POST", "/tasks/" + b[0].value("id", "") + "/complete", json::object()),
                 409, "TASK_ALREADY_COMPLETED"));
}

TEST_P(TwoReplicas, TimersFireOnceAndJobsAreHandedOutOnceAcrossReplicas) {
    deploy(models::timer_catch("Tick", "PT1S"));
    deploy(models::charge_job("Charge"));
    std::vector<std::string> timed;
    for (int i = 0; i < 10; ++i) {
        if (i % 2 == 0) {
            timed.push_back(start("Tick").value("id", ""));
        } else {
            const auto r = on_other("POST", "/processes/Tick/instances", json::object());
            ASSERT_TRUE(is_data(r, 201));
            timed.push_back(r.json()["data"].value("id", ""));
        }
    }
    for (const auto& id : timed) {
        await_status(id, "COMPLETED", 15s);
        int fired = 0;
        for (const auto& a : items("/instances/" + id + "/activities?page_size=100")) {
            if (a.value("element_id", "") == "wait_timer" && a.value("event", "") == "COMPLETED") {
                ++fired;
            }
        }
        EXPECT_EQ(fired, 1) << "the timer of " << id << " fired " << fired << " times";
    }

    constexpr int kJobs = 16;
    for (int i = 0; i < kJobs; ++i) {
        start("Charge");
    }
    std::mutex mutex;
    std::vector<std::string> handed;
    std::vector<std::thread> workers;
    for (int w = 0; w < 4; ++w) {
        const std::uint16_t port = w % 2 == 0 ? server_->port() : other_->port();
        workers.emplace_back([&, port, w] {
            HttpClient client(port, 30s);
            for (int round = 0; round < 8; ++round) {
                auto response = client.request("POST", "/api/v1/jobs/activate",
                                               json({{"type", "charge-card"},
                                                     {"worker", "w" + std::to_string(w)},
                                                     {"max_jobs", 2}})
                                                   .dump(),
                                               {{"Content-Type", "application/json"}});
                if (!response.ok() || response.value().status != 200) {
                    return;
                }
                const json jobs = response.value().json()["data"]["items"];
                std::lock_guard lock(mutex);
                for (const auto& job : jobs) {
                    handed.push_back(job.value("id", ""));
                }
            }
        });
    }
    for (auto& w : workers) {
        w.join();
    }
    const std::set<std::string> distinct(handed.begin(), handed.end());
    EXPECT_EQ(distinct.size(), handed.size()) << "a job was handed out twice";
    EXPECT_EQ(distinct.size(), static_cast<std::size_t>(kJobs));
}

TEST_P(TwoReplicas, ASurvivingReplicaTakesOverTheWorkOfAKilledOne) {
    deploy(models::timer_catch("Tick", "PT2S"));
    deploy(models::user_task("Order"));
    const std::string timed = start("Tick").value("id", "");
    const std::string waiting = start("Order").value("id", "");
    client_.reset();
    server_->kill9();

    // The timer the first replica would have fired fires on the second.
    json last;
    EXPECT_TRUE(eventually(15s, [&] {
        const auto r = on_other("GET", "/instances/" + timed);
        last = r.json();
        return r.status == 200 && last["data"].value("status", "") == "COMPLETED";
    })) << last.dump();
    const auto tasks = on_other("GET", "/tasks?instance_id=" + waiting);
    ASSERT_TRUE(is_data(tasks, 200));
    ASSERT_EQ(tasks.json()["data"]["items"].size(), 1u);
    const auto done =
        on_other("POST", "/tasks/" + tasks.json()["data"]["items"][0].value("id", "") + "/complete",
                 json::object());
    ASSERT_TRUE(is_data(done, 200));
    EXPECT_EQ(done.json()["data"]["status"], "COMPLETED");
}

TEST_P(TwoReplicas, ADeployIsInBothReplicasListsAndADeleteLeavesBoth) {
    const std::string first_key = unique_name("Listed");
    const std::string second_key = unique_name("Listed");
    const auto keys_on = [&](bool other) {
        const auto r = other ? on_other("GET", "/processes?page_size=1000")
                             : call(client_->request("GET", api("/processes?page_size=1000")));
        std::set<std::string> keys;
        const json body = r.json();
        for (const auto& item : body["data"]["items"]) {
            keys.insert(item.value("key", ""));
        }
        return keys;
    };
    deploy(models::user_task(first_key));
    // Both replicas list it, and now hold the page in memory.
    ASSERT_TRUE(keys_on(false).contains(first_key));
    ASSERT_TRUE(keys_on(true).contains(first_key));
    ASSERT_TRUE(keys_on(true).contains(first_key));

    deploy(models::user_task(second_key));
    EXPECT_TRUE(keys_on(false).contains(second_key)) << "the deploying replica lists it at once";
    EXPECT_TRUE(eventually(5s, [&] { return keys_on(true).contains(second_key); }))
        << "the other replica lists it after the invalidation";

    const auto deleted = on_other("DELETE", "/processes/" + first_key);
    ASSERT_EQ(deleted.status, 204) << deleted.describe();
    EXPECT_FALSE(keys_on(true).contains(first_key)) << "the deleting replica drops it at once";
    EXPECT_TRUE(eventually(5s, [&] { return !keys_on(false).contains(first_key); }))
        << "the other replica drops it after the invalidation";
    EXPECT_TRUE(keys_on(false).contains(second_key));
}

INSTANTIATE_TEST_SUITE_P(Backends, TwoReplicas, ::testing::Values(Backend::kPostgresRedis),
                         backend_name);

}  // namespace
}  // namespace pythmata::test::runtime
