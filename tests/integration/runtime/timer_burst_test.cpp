// Many timers due at the same moment (issue 5: "100,000 timers due in the same second all fire,
// none twice"), scaled to a test: 2,000 instances wait at a PT1H timer, the test clock jumps two
// hours, and every timer fires exactly once: each instance completes with exactly one COMPLETED
// entry of the timer in its history, no timer row is left, and the lateness histogram counted
// each firing once. On SQLite and on PostgreSQL with Redis, through the real `pythmata serve`.
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

constexpr int kTimers = 2000;
constexpr int kClients = 8;

/// The value of the sample `name` without labels in a Prometheus text page, or -1.
double plain_metric(const std::string& page, const std::string& name) {
    std::istringstream lines(page);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.starts_with(name + " ")) {
            return std::stod(line.substr(name.size() + 1));
        }
    }
    return -1;
}

class TimerBurst : public RuntimeServerTest {
  protected:
    /// The ids of `count` new instances of `key`, started by kClients concurrent clients.
    std::vector<std::string> start_many(const std::string& key, int count) {
        std::mutex mutex;
        std::vector<std::string> ids;
        std::vector<std::string> failures;
        std::vector<std::thread> clients;
        const std::uint16_t port = server_->port();
        for (int t = 0; t < kClients; ++t) {
            clients.emplace_back([&, t] {
                HttpClient client(port, 30s);
                for (int n = t; n < count; n += kClients) {
                    auto r = client.request("POST", api("/processes/" + key + "/instances"),
                                            json{{"variables", {{"n", n}}}}.dump(),
                                            {{"Content-Type", "application/json"}});
                    std::lock_guard lock(mutex);
                    if (!r.ok() || r.value().status != 201) {
                        failures.push_back(r.ok() ? r.value().describe() : r.error().message);
                    } else {
                        ids.push_back(r.value().json()["data"].value("id", ""));
                    }
                }
            });
        }
        for (auto& c : clients) {
            c.join();
        }
        EXPECT_TRUE(failures.empty())
            << failures.size() << " starts failed, first: " << failures.front();
        return ids;
    }

    /// How many COMPLETED entries of `element` the instance's history holds.
    int completions(HttpClient& client, const std::string& id, const std::string& element) {
        auto r = client.get(api("/instances/" + id + "/activities?page_size=1000"));
        if (!r.ok() || r.value().status != 200) {
            ADD_FAILURE() << "activities of " << id << ": "
                          << (r.ok() ? r.value().describe() : r.error().message);
            return -1;
        }
        const json body = r.value().json();
        int n = 0;
        for (const auto& entry : body["data"]["items"]) {
            n +=
                entry.value("element_id", "") == element && entry.value("event", "") == "COMPLETED";
        }
        return n;
    }
};

TEST_P(TimerBurst, TwoThousandTimersDueTogetherAllFireExactlyOnce) {
    deploy(models::timer_catch("Burst", "PT1H"));
    const std::vector<std::string> ids = start_many("Burst", kTimers);
    ASSERT_EQ(ids.size(), static_cast<std::size_t>(kTimers));
    ASSERT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
    // GET /timers is paged: page 1 of 20, and the total of all.
    const json pending = get("/timers").json()["data"];
    ASSERT_EQ(pending.value("total", 0), kTimers);
    ASSERT_EQ(pending["items"].size(), 20u);
    ASSERT_EQ(get("/timers?page=100&page_size=20").json()["data"]["items"].size(), 20u);
    const double lateness_before =
        plain_metric(call(client_->get("/metrics")).body, "pythmata_timer_lateness_seconds_count");

    // All 2,000 fall due at the same moment.
    ASSERT_TRUE(is_data(post("/clock/advance", {{"duration", "PT2H"}}), 200));
    json counts;
    EXPECT_TRUE(eventually(
        90s,
        [&] {
            counts = get("/instances?process_key=Burst&status=COMPLETED&page_size=1").json();
            return counts["data"].value("total", 0) == kTimers;
        }))
        << "completed: " << counts.dump();
    EXPECT_EQ(get("/timers").json()["data"].value("total", -1), 0) << "a timer row was left";
    EXPECT_EQ(
        get("/instances?process_key=Burst&status=RUNNING&page_size=1").json()["data"]["total"], 0);

    // Each firing was acquired once (the histogram observes every acquired firing) ...
    const double lateness_after =
        plain_metric(call(client_->get("/metrics")).body, "pythmata_timer_lateness_seconds_count");
    EXPECT_EQ(lateness_after - std::max(0.0, lateness_before), kTimers);

    // ... and each instance's history holds exactly one completion of the timer, read by
    // kClients clients in parallel.
    std::mutex mutex;
    std::vector<std::string> wrong;
    std::vector<std::thread> readers;
    const std::uint16_t port = server_->port();
    for (int t = 0; t < kClients; ++t) {
        readers.emplace_back([&, t] {
            HttpClient client(port, 30s);
            for (std::size_t i = t; i < ids.size(); i += kClients) {
                const int n = completions(client, ids[i], "wait_timer");
                if (n != 1) {
                    std::lock_guard lock(mutex);
                    wrong.push_back(ids[i] + ": " + std::to_string(n));
                }
            }
        });
    }
    for (auto& r : readers) {
        r.join();
    }
    EXPECT_TRUE(wrong.empty()) << wrong.size() << " instances without exactly one firing, first "
                               << (wrong.empty() ? "" : wrong.front());
}

INSTANTIATE_TEST_SUITE_P(Backends, TimerBurst,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgresRedis),
                         backend_name);

}  // namespace
}  // namespace pythmata::test::runtime
