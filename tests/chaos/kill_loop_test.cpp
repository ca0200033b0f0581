// The kill -9 loop (issue 6): a client load of starts, task completions and message correlations
// runs for PYTHMATA_CHAOS_SECONDS (default 120 s) while the real `pythmata serve` is killed with
// SIGKILL about every 10 s and restarted on the same store and port. The client logs every
// answer; afterwards the store must agree with the log: every 201 exists, every 200 took effect
// exactly once, no element ran twice, what was waiting still waits and completes now, and a
// request cut off by a kill is either wholly there or wholly absent.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "chaos_support.hpp"
#include "runtime_models.hpp"

namespace pythmata::test::chaos {
namespace {

constexpr const char* kTaskKey = "ChaosOrder";       // start -> userTask review -> end
constexpr const char* kMessageKey = "ChaosPayment";  // start -> catch PaymentReceived -> end
constexpr const char* kMessageName = "PaymentReceived";
constexpr auto kPace = 40ms;  // pause between two requests of one load thread

/// What the client learnt from one request.
enum class Outcome {
    kDone,       ///< 201 / 200: acknowledged
    kUncertain,  ///< the connection failed (a kill): it may or may not have taken effect
    kRefused,    ///< an error answer (a 503): it must not have taken effect
};

/// One start the client asked for.
struct StartRecord {
    std::string business_key;
    Outcome outcome = Outcome::kUncertain;
    std::string id;  ///< with kDone
};

/// The client's log, shared by the load threads.
struct ClientLog {
    std::mutex mutex;
    std::vector<StartRecord> task_starts;
    std::vector<StartRecord> message_starts;
    std::map<std::string, Outcome> completions;   ///< task instance id -> completion outcome
    std::map<std::string, Outcome> correlations;  ///< message instance id -> outcome
    std::deque<std::string> to_complete;          ///< acknowledged task instances, every second
    std::deque<std::pair<std::string, std::string>> to_correlate;  ///< (id, correlation key)
    std::vector<std::string> unexpected;  ///< answers the API does not allow here

    void note_unexpected(const std::string& what, const HttpResponse& response) {
        std::lock_guard lock(mutex);
        unexpected.push_back(what + ": " + response.describe());
    }
};

/// An answer that says "not now, retry" (the server may answer it while it starts or is busy).
bool is_refusal(const HttpResponse& response) {
    return is_unavailable(response, {"DB_UNAVAILABLE", "DB_POOL_TIMEOUT", "DB_TIMEOUT",
                                     "OVERLOADED", "REQUEST_TIMEOUT", "NOT_READY"});
}

/// Counts of history entries per "element_id/EVENT".
using HistoryCounts = std::map<std::string, int>;

class KillLoop : public ::testing::Test {
  protected:
    void TearDown() override {
        if (HasFailure() && server_) {
            std::cerr << "server stderr:\n" << server_->stderr_tail(6000) << "\n";
        }
        server_.reset();
    }

    /// Load thread: starts of `key`, each with a fresh business key (and correlation key).
    void starter(const std::string& key, bool message, ClientLog& log, std::atomic<bool>& stop) {
        HttpClient client(server_->port(), 5s);
        for (int n = 0; !stop.load(); ++n) {
            const std::string business_key = std::string(message ? "m-" : "t-") + std::to_string(n);
            json body = {{"business_key", business_key}};
            if (message) {
                body["variables"] = {{"order_id", business_key}};
            }
            auto response = client.request("POST", "/api/v1/processes/" + key + "/instances",
                                           body.dump(), kJsonOnce);
            StartRecord record{business_key, Outcome::kUncertain, ""};
            if (response.ok() && response.value().status == 201) {
                record.outcome = Outcome::kDone;
                record.id = response.value().json()["data"].value("id", "");
            } else if (response.ok()) {
                record.outcome = Outcome::kRefused;
                if (!is_refusal(response.value())) {
                    log.note_unexpected("start " + business_key, response.value());
                }
            }
            {
                std::lock_guard lock(log.mutex);
                (message ? log.message_starts : log.task_starts).push_back(record);
                if (record.outcome == Outcome::kDone && n % 2 == 0) {
                    if (message) {
                        log.to_correlate.emplace_back(record.id, business_key);
                    } else {
                        log.to_complete.push_back(record.id);
                    }
                }
            }
            std::this_thread::sleep_for(response.ok() ? kPace : 100ms);
        }
    }

    /// Load thread: completes the open task of every second acknowledged task instance.
    void completer(ClientLog& log, std::atomic<bool>& stop) {
        HttpClient client(server_->port(), 5s);
        while (!stop.load()) {
            const auto next = take_next(log.mutex, log.to_complete);
            if (!next) {
                std::this_thread::sleep_for(kPace);
                continue;
            }
            const std::string& id = *next;
            // Finding the task reads only: when it fails the instance goes back in the queue.
            auto tasks = client.get("/api/v1/tasks?instance_id=" + id);
            if (!tasks.ok() || tasks.value().status != 200 || items_of(tasks.value()).size() != 1) {
                if (tasks.ok() && !is_refusal(tasks.value())) {
                    log.note_unexpected("tasks of " + id, tasks.value());
                }
                std::lock_guard lock(log.mutex);
                log.to_complete.push_back(id);
                std::this_thread::sleep_for(100ms);
                continue;
            }
            const std::string task_id = items_of(tasks.value())[0].value("id", "");
            auto response =
                client.request("POST", "/api/v1/tasks/" + task_id + "/complete", "{}", kJsonOnce);
            Outcome outcome = Outcome::kUncertain;
            if (response.ok()) {
                outcome = response.value().status == 200 ? Outcome::kDone : Outcome::kRefused;
                if (outcome == Outcome::kRefused && !is_refusal(response.value())) {
                    log.note_unexpected("complete task of " + id, response.value());
                }
            }
            {
                std::lock_guard lock(log.mutex);
                log.completions[id] = outcome;
                if (outcome == Outcome::kRefused) {
                    log.to_complete.push_back(id);  // not done: it may be tried again
                    log.completions.erase(id);
                }
            }
            std::this_thread::sleep_for(response.ok() ? kPace : 100ms);
        }
    }

    /// Load thread: correlates the message of every second acknowledged message instance.
    void correlator(ClientLog& log, std::atomic<bool>& stop) {
        HttpClient client(server_->port(), 5s);
        while (!stop.load()) {
            const auto next = take_next(log.mutex, log.to_correlate);
            if (!next) {
                std::this_thread::sleep_for(kPace);
                continue;
            }
            const auto& [id, key] = *next;
            const json body = {{"name", kMessageName}, {"correlation_key", key}};
            auto response = client.request("POST", "/api/v1/messages", body.dump(), kJsonOnce);
            Outcome outcome = Outcome::kUncertain;
            if (response.ok()) {
                outcome = response.value().status == 200 ? Outcome::kDone : Outcome::kRefused;
                if (outcome == Outcome::kDone &&
                    response.value().json()["data"].value("instance_id", "") != id) {
                    log.note_unexpected("message " + key + " reached another instance than " + id,
                                        response.value());
                }
                if (outcome == Outcome::kRefused && !is_refusal(response.value())) {
                    log.note_unexpected("correlate " + key, response.value());
                }
            }
            {
                std::lock_guard lock(log.mutex);
                if (outcome == Outcome::kRefused) {
                    log.to_correlate.emplace_back(id, key);
                } else {
                    log.correlations[id] = outcome;
                }
            }
            std::this_thread::sleep_for(response.ok() ? kPace : 100ms);
        }
    }

    /// The history of one instance as counts per "element/EVENT"; nullopt when unreadable.
    static std::optional<HistoryCounts> history(HttpClient& client, const std::string& id) {
        auto response = client.get("/api/v1/instances/" + id + "/activities?page_size=100");
        if (!response.ok() || response.value().status != 200) {
            return std::nullopt;
        }
        HistoryCounts counts;
        for (const auto& entry : items_of(response.value())) {
            ++counts[entry.value("element_id", "") + "/" + entry.value("event", "")];
        }
        return counts;
    }

    /// Checks one instance against what the client was told. `done` is the completion /
    /// correlation outcome (nullopt: never tried). Instances still waiting go into `waiting`.
    static void check_instance(HttpClient& client, const std::string& id,
                               const std::string& wait_element, std::optional<Outcome> done,
                               Problems& problems, std::mutex& mutex,
                               std::vector<std::string>& waiting) {
        auto response = client.get("/api/v1/instances/" + id);
        if (!response.ok() || response.value().status != 200) {
            problems.add("acknowledged instance " + id + " is not there: " +
                         (response.ok() ? response.value().describe() : response.error().message));
            return;
        }
        const json instance = response.value().json()["data"];
        const std::string status = instance.value("status", "");
        const auto counts = history(client, id);
        if (!counts) {
            problems.add("no history for " + id);
            return;
        }
        for (const auto& [entry, count] : *counts) {
            if (count != 1) {
                problems.add(id + ": history has " + entry + " " + std::to_string(count) +
                             " times (the model cannot loop)");
            }
        }
        const auto count_of = [&](const std::string& entry) {
            const auto found = counts->find(entry);
            return found == counts->end() ? 0 : found->second;
        };
        if (done == Outcome::kDone && status != "COMPLETED") {
            problems.add(id + ": acknowledged " + wait_element + " but the instance is " + status);
        }
        if (status == "COMPLETED") {
            if (count_of(wait_element + "/COMPLETED") != 1 || count_of("end/COMPLETED") != 1) {
                problems.add(id + ": COMPLETED without " + wait_element + " and end completed " +
                             "once each");
            }
            if (!done) {
                problems.add(id + ": COMPLETED though the client never moved it on");
            }
        } else if (status == "RUNNING") {
            if (instance["active_elements"] != json::array({wait_element}) ||
                count_of(wait_element + "/STARTED") != 1 ||
                count_of(wait_element + "/COMPLETED") != 0) {
                problems.add(id + ": RUNNING but not waiting at " + wait_element + ": " +
                             instance.dump());
            }
            std::lock_guard lock(mutex);
            waiting.push_back(id);
        } else {
            problems.add(id + ": unexpected status " + instance.dump());
        }
    }

    /// Runs `work(client, item)` over `list` on four threads.
    template <typename Work>
    void in_parallel(const std::vector<std::string>& list, Work&& work) {
        std::atomic<std::size_t> next{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                HttpClient client(server_->port(), 15s);
                for (std::size_t i = next++; i < list.size(); i = next++) {
                    work(client, list[i]);
                }
            });
        }
        for (auto& thread : threads) {
            thread.join();
        }
    }

    void run(std::map<std::string, std::string> env, bool default_store) {
        server_ = start_server(std::move(env), default_store);
        ASSERT_NE(server_, nullptr);
        {
            HttpClient client(server_->port(), 15s);
            for (const auto& xml : {runtime::models::user_task(kTaskKey),
                                    runtime::models::message_catch(kMessageKey)}) {
                auto deployed = client.send_xml("POST", "/api/v1/processes", xml);
                ASSERT_TRUE(deployed.ok() && deployed.value().status == 201)
                    << (deployed.ok() ? deployed.value().describe() : deployed.error().message);
            }
        }

        // ---- The load, and a kill -9 about every 10 s -------------------------------------
        ClientLog log;
        std::atomic<bool> stop{false};
        std::vector<std::thread> load;
        load.emplace_back([&] { starter(kTaskKey, false, log, stop); });
        load.emplace_back([&] { starter(kMessageKey, true, log, stop); });
        load.emplace_back([&] { completer(log, stop); });
        load.emplace_back([&] { correlator(log, stop); });

        const auto duration = chaos_duration();
        const auto began = Clock::now();
        std::mt19937 random(static_cast<unsigned>(::getpid()));
        std::uniform_int_distribution<int> interval_ms(7'000, 13'000);
        int kills = 0;
        std::string restart_failure;
        while (Clock::now() - began < duration) {
            const auto remaining = duration - (Clock::now() - began);
            const auto pause = std::min<std::chrono::milliseconds>(
                std::chrono::milliseconds(interval_ms(random)),
                std::chrono::duration_cast<std::chrono::milliseconds>(remaining));
            std::this_thread::sleep_for(pause);
            if (Clock::now() - began >= duration) {
                break;
            }
            server_->kill9();
            ++kills;
            auto restarted = server_->restart();
            if (!restarted) {
                restart_failure = restarted.error().message;
                break;
            }
        }
        stop = true;
        for (auto& thread : load) {
            thread.join();
        }
        ASSERT_TRUE(restart_failure.empty())
            << "restart after kill " << kills << ": " << restart_failure;
        // One more crash with the load stopped: what follows is read from the store alone.
        server_->kill9();
        ++kills;
        auto restarted = server_->restart();
        ASSERT_TRUE(restarted.ok()) << restarted.error().message;

        std::size_t uncertain = 0;
        for (const auto* starts : {&log.task_starts, &log.message_starts}) {
            for (const auto& start : *starts) {
                uncertain += start.outcome == Outcome::kUncertain ? 1 : 0;
            }
        }
        for (const auto* actions : {&log.completions, &log.correlations}) {
            for (const auto& [id, outcome] : *actions) {
                uncertain += outcome == Outcome::kUncertain ? 1 : 0;
            }
        }
        const auto acknowledged = [](const std::vector<StartRecord>& starts) {
            return std::count_if(starts.begin(), starts.end(),
                                 [](const auto& s) { return s.outcome == Outcome::kDone; });
        };
        const auto done = [](const std::map<std::string, Outcome>& actions) {
            return std::count_if(actions.begin(), actions.end(),
                                 [](const auto& a) { return a.second == Outcome::kDone; });
        };
        std::cout << "kill loop: " << kills << " kills in " << duration.count() << " s; "
                  << acknowledged(log.task_starts) << " task starts and "
                  << acknowledged(log.message_starts) << " message starts acknowledged, "
                  << done(log.completions) << " completions and " << done(log.correlations)
                  << " correlations acknowledged, " << uncertain << " requests cut off by a kill\n";
        EXPECT_TRUE(log.unexpected.empty())
            << log.unexpected.size() << " unexpected answers, the first: " << log.unexpected[0];
        EXPECT_GE(kills, static_cast<int>(duration.count() / 13));
        EXPECT_GE(acknowledged(log.task_starts), duration.count() / 2) << "too little load ran";
        EXPECT_GE(acknowledged(log.message_starts), duration.count() / 2);
        EXPECT_GE(done(log.completions), duration.count() / 8);
        EXPECT_GE(done(log.correlations), duration.count() / 8);

        // ---- Every acknowledged instance is there, every 200 took effect exactly once ------
        Problems problems;
        std::mutex mutex;
        std::vector<std::string> waiting_tasks;
        std::vector<std::string> waiting_messages;
        std::map<std::string, std::optional<Outcome>> task_done;
        std::map<std::string, std::optional<Outcome>> message_done;
        std::vector<std::string> task_ids;
        std::vector<std::string> message_ids;
        std::map<std::string, std::string> correlation_key;  // message instance id -> key
        for (const auto& start : log.task_starts) {
            if (start.outcome == Outcome::kDone) {
                task_ids.push_back(start.id);
                const auto found = log.completions.find(start.id);
                task_done[start.id] = found == log.completions.end()
                                          ? std::nullopt
                                          : std::optional<Outcome>(found->second);
            }
        }
        for (const auto& start : log.message_starts) {
            if (start.outcome == Outcome::kDone) {
                message_ids.push_back(start.id);
                correlation_key[start.id] = start.business_key;
                const auto found = log.correlations.find(start.id);
                message_done[start.id] = found == log.correlations.end()
                                             ? std::nullopt
                                             : std::optional<Outcome>(found->second);
            }
        }

        // ---- A start cut off by a kill is wholly there or wholly absent ------------------
        // Its business key finds at most one instance; one that is there is checked like an
        // acknowledged one (it must wait at its first element, with its task or subscription).
        std::size_t task_instances_present = task_ids.size();
        std::size_t message_instances_present = message_ids.size();
        for (const auto& [key, starts, ids, present, correlations] :
             {std::tuple{kTaskKey, &log.task_starts, &task_ids, &task_instances_present,
                         &task_done},
              std::tuple{kMessageKey, &log.message_starts, &message_ids, &message_instances_present,
                         &message_done}}) {
            HttpClient client(server_->port(), 15s);
            for (const auto& start : *starts) {
                if (start.outcome == Outcome::kDone) {
                    continue;
                }
                auto found = client.get(std::string("/api/v1/instances?process_key=") + key +
                                        "&business_key=" + start.business_key);
                ASSERT_TRUE(found.ok() && found.value().status == 200)
                    << (found.ok() ? found.value().describe() : found.error().message);
                const json matches = items_of(found.value());
                if (start.outcome == Outcome::kRefused && !matches.empty()) {
                    problems.add("start " + start.business_key + " was refused but is there");
                }
                if (matches.size() > 1) {
                    problems.add("start " + start.business_key + " is there " +
                                 std::to_string(matches.size()) + " times");
                }
                if (matches.size() == 1) {
                    const std::string id = matches[0].value("id", "");
                    ids->push_back(id);
                    (*correlations)[id] = std::nullopt;
                    correlation_key[id] = start.business_key;
                    ++*present;
                }
            }
        }

        in_parallel(task_ids, [&](HttpClient& client, const std::string& id) {
            check_instance(client, id, "review", task_done.at(id), problems, mutex, waiting_tasks);
        });
        in_parallel(message_ids, [&](HttpClient& client, const std::string& id) {
            check_instance(client, id, "wait_payment", message_done.at(id), problems, mutex,
                           waiting_messages);
        });
        // The client's log and the store agree on how many instances there are.
        {
            HttpClient client(server_->port(), 15s);
            for (const auto& [key, expected] :
                 {std::pair{kTaskKey, task_instances_present},
                  std::pair{kMessageKey, message_instances_present}}) {
                auto listed =
                    client.get(std::string("/api/v1/instances?page_size=1&process_key=") + key);
                ASSERT_TRUE(listed.ok() && listed.value().status == 200);
                EXPECT_EQ(listed.value().json()["data"].value("total", -1),
                          static_cast<long>(expected))
                    << key << ": the store holds instances the client never heard of";
            }
        }

        // ---- What still waits can be completed now, exactly once -------------------------
        in_parallel(waiting_tasks, [&](HttpClient& client, const std::string& id) {
            auto tasks = client.get("/api/v1/tasks?instance_id=" + id);
            if (!tasks.ok() || items_of(tasks.value()).size() != 1) {
                problems.add(id + " waits at review without exactly one open task");
                return;
            }
            const std::string task = items_of(tasks.value())[0].value("id", "");
            auto completed = client.request("POST", "/api/v1/tasks/" + task + "/complete", "{}",
                                            {{"Content-Type", "application/json"}});
            if (!completed.ok() || completed.value().status != 200 ||
                completed.value().json()["data"].value("status", "") != "COMPLETED") {
                problems.add(
                    id + ": completing its task now failed: " +
                    (completed.ok() ? completed.value().describe() : completed.error().message));
                return;
            }
            const auto counts = history(client, id);
            if (!counts || counts->count("review/COMPLETED") != 1 ||
                counts->at("review/COMPLETED") != 1) {
                problems.add(id + ": review not COMPLETED exactly once after the completion");
            }
        });
        in_parallel(waiting_messages, [&](HttpClient& client, const std::string& id) {
            const json body = {{"name", kMessageName}, {"correlation_key", correlation_key.at(id)}};
            auto correlated = client.request("POST", "/api/v1/messages", body.dump(),
                                             {{"Content-Type", "application/json"}});
            if (!correlated.ok() || correlated.value().status != 200 ||
                correlated.value().json()["data"].value("instance_id", "") != id) {
                problems.add(
                    id + ": correlating its message now failed: " +
                    (correlated.ok() ? correlated.value().describe() : correlated.error().message));
                return;
            }
            const bool ended = eventually(5s, [&] {
                auto instance = client.get("/api/v1/instances/" + id);
                return instance.ok() &&
                       instance.value().json()["data"].value("status", "") == "COMPLETED";
            });
            const auto counts = history(client, id);
            if (!ended || !counts || counts->count("wait_payment/COMPLETED") != 1 ||
                counts->at("wait_payment/COMPLETED") != 1) {
                problems.add(id +
                             ": not COMPLETED with wait_payment completed once after the "
                             "message");
            }
        });
        EXPECT_TRUE(problems.none());
        EXPECT_GT(waiting_tasks.size(), 0u) << "no task instance was left waiting to resume";
        EXPECT_GT(waiting_messages.size(), 0u);
        std::cout << "resumed after the loop: " << waiting_tasks.size() << " task and "
                  << waiting_messages.size() << " message instances\n";
    }

    std::unique_ptr<ServerProcess> server_;
};

TEST_F(KillLoop, PostgresWithRedis) {
    Dependencies dependencies;
    if (!dependencies.start()) {
        GTEST_SKIP() << "PostgreSQL 15 / redis-server not available: " << dependencies.why;
    }
    auto env = base_env();
    env["PYTHMATA_DB_URL"] = dependencies.postgres->url();
    env["PYTHMATA_REDIS_URL"] = dependencies.redis->url();
    run(env, false);
}

TEST_F(KillLoop, Sqlite) {
    run(base_env(), true);  // the server's own temp dir holds the file; restart() keeps it
}

}  // namespace
}  // namespace pythmata::test::chaos
