// Three `pythmata serve` replicas and one `pythmata worker` on one PostgreSQL and one Redis, with
// the real nginx (docker/nginx.conf adapted to loopback, round-robin) in front, under a mixed load
// sent through nginx only: starts of straight-through and waiting models, user task completions,
// message correlations, signal broadcasts, 2,000 short timers (PT2S..PT10S) and external jobs
// completed by a client-side job worker (long-poll activate, complete). One replica is killed
// with SIGKILL halfway through the timer starts and the load keeps going through nginx; a new
// version of a model is deployed right after the kill. Afterwards:
// - every instance that got a 201 exists, and none is in a state it could not reach; the store
//   holds no more instances than starts were sent (none ran twice);
// - every timer instance finished, and its timer completed exactly once in its history;
// - no element of any instance completed twice (no instance advanced twice);
// - every job got at most one 200 for its completion, and a second completion is refused;
// - every waiting instance (task, message, signal, job) still waits at its step or finished;
// - each replica (the killed one restarted too) serves the new version as the latest and a start
//   through it runs the new version.
// Only answers from the replica that was killed while they were in flight (nginx 502) and their
// retries are tolerated, and those are bounded.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "ops_support.hpp"
#include "postgres_server.hpp"
#include "redis_server.hpp"
#include "server_process.hpp"

namespace pythmata::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kTimerInstances = 2000;
constexpr int kTimerStarters = 2;
constexpr int kTimerSeconds[] = {2, 4, 6, 8, 10};
/// Each round starts one instance of every other kind.
constexpr int kMixedRounds = 300;
/// Answers lost with the killed replica (nginx 502/504, a reset) that the test tolerates.
constexpr int kMaxLostAnswers = 40;

std::string read_text(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// ---- models ------------------------------------------------------------------------------------

/// start -> `middle` -> end, with flows; `middle` is the XML of one element with id `step`.
std::string linear(const std::string& key, const std::string& middle, const std::string& step,
                   const std::string& preamble = "") {
    return bpmn_document(preamble + "  <process id=\"" + key + "\" isExecutable=\"true\">\n" +
                         "    <startEvent id=\"start\"/>\n    " + middle +
                         "\n    <endEvent id=\"end\"/>\n"
                         "    <sequenceFlow id=\"f1\" sourceRef=\"start\" targetRef=\"" +
                         step +
                         "\"/>\n"
                         "    <sequenceFlow id=\"f2\" sourceRef=\"" +
                         step + "\" targetRef=\"end\"/>\n  </process>\n");
}

std::string timer_model(int seconds) {
    return linear("rx_timer_" + std::to_string(seconds),
                  "<intermediateCatchEvent id=\"wait_timer\"><timerEventDefinition><timeDuration "
                  "xsi:type=\"tFormalExpression\">PT" +
                      std::to_string(seconds) +
                      "S</timeDuration></timerEventDefinition></intermediateCatchEvent>",
                  "wait_timer");
}

enum class Kind { kStraight, kTask, kMessage, kSignal, kJob, kTimer };

/// The element whose completion moves an instance of `kind` on.
std::string step_of(Kind kind) {
    switch (kind) {
        case Kind::kStraight:
            return "work";
        case Kind::kTask:
            return "review";
        case Kind::kMessage:
            return "wait_msg";
        case Kind::kSignal:
            return "wait_sig";
        case Kind::kJob:
            return "rx_charge";
        case Kind::kTimer:
            return "wait_timer";
    }
    return "";
}

std::vector<std::string> models() {
    std::vector<std::string> out = {
        linear("rx_straight", "<task id=\"work\"/>", "work"),
        linear("rx_task", "<userTask id=\"review\"/>", "review"),
        linear("rx_message",
               "<intermediateCatchEvent id=\"wait_msg\"><messageEventDefinition "
               "messageRef=\"m_paid\" pythmata:correlationKey=\"${order_id}\"/>"
               "</intermediateCatchEvent>",
               "wait_msg", "  <message id=\"m_paid\" name=\"rx_paid\"/>\n"),
        linear("rx_signal",
               "<intermediateCatchEvent id=\"wait_sig\"><signalEventDefinition "
               "signalRef=\"s_go\"/></intermediateCatchEvent>",
               "wait_sig", "  <signal id=\"s_go\" name=\"rx_go\"/>\n"),
        // No built-in service named: an external job of type "rx_charge" (the element id).
        linear("rx_job", "<serviceTask id=\"rx_charge\"/>", "rx_charge"),
        linear("rx_versioned", "<task id=\"v1_step\"/>", "v1_step"),
    };
    for (const int seconds : kTimerSeconds) {
        out.push_back(timer_model(seconds));
    }
    return out;
}

const std::string kVersionTwo = linear("rx_versioned", "<task id=\"v2_step\"/>", "v2_step");

// ---- what the load saw -------------------------------------------------------------------------

/// Shared by the client threads; every member is guarded by `mutex` unless atomic.
struct Ledger {
    std::mutex mutex;
    std::vector<std::pair<Kind, std::string>> started;  ///< every 201'd instance
    std::deque<std::string> to_correlate;               ///< order ids of message instances
    std::set<std::string> correlation_retried;          ///< order ids that lost an answer
    std::map<std::string, int> task_ok;                 ///< task id -> 200 answers to complete
    std::set<std::string> task_retried;                 ///< tasks whose complete lost an answer
    std::map<std::string, int> job_ok;                  ///< job id -> 200 answers to complete
    std::set<std::string> job_retried;                  ///< jobs whose complete lost an answer
    std::map<std::string, int> job_handed;              ///< job id -> times activated
    std::vector<std::string> unexpected;                ///< answers no correct cluster gives
    std::vector<std::string> lost;                      ///< 502/504/resets (the killed replica)
    std::int64_t signals_triggered = 0;
    std::string last_activation;  ///< the last answer to activate (for failure messages)
    std::atomic<int> timer_attempts{0};
    std::atomic<int> started_after_kill{0};
    std::atomic<bool> killed{false};
    std::atomic<bool> stop{false};

    void add_started(Kind kind, const std::string& id) {
        std::lock_guard lock(mutex);
        started.emplace_back(kind, id);
        if (killed) {
            ++started_after_kill;
        }
    }
};

enum class Outcome { kOk, kLost, kOther };

/// kOk when the answer has status `want`; kLost for an answer the killed replica lost (nginx
/// 502/504, or the connection failed), recorded in `ledger.lost`; kOther otherwise (the caller
/// decides whether that is unexpected).
Outcome classify(Ledger& ledger, const Result<HttpResponse, HarnessFailure>& response, int want,
                 const std::string& what) {
    if (response && response->status == want) {
        return Outcome::kOk;
    }
    if (!response || response->status == 502 || response->status == 504) {
        std::lock_guard lock(ledger.mutex);
        ledger.lost.push_back(what + ": " +
                              (response ? response->describe() : response.error().message));
        return Outcome::kLost;
    }
    return Outcome::kOther;
}

void unexpected(Ledger& ledger, const Result<HttpResponse, HarnessFailure>& response,
                const std::string& what) {
    std::lock_guard lock(ledger.mutex);
    ledger.unexpected.push_back(what + ": " +
                                (response ? response->describe() : response.error().message));
}

/// POST /processes/{key}/instances through `client`; the instance id on a 201.
std::optional<std::string> start(Ledger& ledger, HttpClient& client, Kind kind,
                                 const std::string& key, const json& variables) {
    auto response = client.send_json("POST", "/api/v1/processes/" + key + "/instances",
                                     {{"variables", variables}});
    const Outcome outcome = classify(ledger, response, 201, "start " + key);
    if (outcome == Outcome::kOk) {
        const std::string id = response->json()["data"].value("id", "");
        ledger.add_started(kind, id);
        return id;
    }
    if (outcome == Outcome::kOther) {
        unexpected(ledger, response, "start " + key);
    }
    return std::nullopt;
}

// ---- the client threads ------------------------------------------------------------------------

void start_timers(Ledger& ledger, std::uint16_t port, int first, int count) {
    HttpClient client(port);
    for (int i = first; i < first + count; ++i) {
        const int seconds = kTimerSeconds[i % std::size(kTimerSeconds)];
        ++ledger.timer_attempts;
        (void)start(ledger, client, Kind::kTimer, "rx_timer_" + std::to_string(seconds),
                    {{"n", i}});
    }
}

void start_mixed(Ledger& ledger, std::uint16_t port) {
    HttpClient client(port);
    for (int round = 0; round < kMixedRounds; ++round) {
        (void)start(ledger, client, Kind::kStraight, "rx_straight", {{"round", round}});
        (void)start(ledger, client, Kind::kTask, "rx_task", {{"round", round}});
        const std::string order = "order-" + std::to_string(round);
        if (start(ledger, client, Kind::kMessage, "rx_message", {{"order_id", order}})) {
            std::lock_guard lock(ledger.mutex);
            ledger.to_correlate.push_back(order);
        }
        (void)start(ledger, client, Kind::kSignal, "rx_signal", {{"round", round}});
        (void)start(ledger, client, Kind::kJob, "rx_job", {{"round", round}});
    }
}

void complete_tasks(Ledger& ledger, std::uint16_t port) {
    HttpClient client(port);
    while (!ledger.stop) {
        auto listed = client.get("/api/v1/tasks?process_key=rx_task&page_size=100");
        if (classify(ledger, listed, 200, "list tasks") != Outcome::kOk) {
            std::this_thread::sleep_for(100ms);
            continue;
        }
        const json tasks = listed->json()["data"]["items"];
        if (tasks.empty()) {
            std::this_thread::sleep_for(100ms);
        }
        for (const auto& task : tasks) {
            const std::string id = task.value("id", "");
            auto done = client.send_json("POST", "/api/v1/tasks/" + id + "/complete",
                                         {{"variables", {{"approved", true}}}});
            const Outcome outcome = classify(ledger, done, 200, "complete task " + id);
            std::lock_guard lock(ledger.mutex);
            if (outcome == Outcome::kOk) {
                ++ledger.task_ok[id];
            } else if (outcome == Outcome::kLost) {
                ledger.task_retried.insert(id);  // listed again if it is still open
            } else if (!(done->status == 409 && ledger.task_retried.count(id))) {
                // A 409 is right only when an earlier attempt's answer was lost (it did run).
                ledger.unexpected.push_back("complete task " + id + ": " + done->describe());
            }
        }
    }
}

void correlate_messages(Ledger& ledger, std::uint16_t port) {
    HttpClient client(port);
    while (true) {
        std::string order;
        {
            std::lock_guard lock(ledger.mutex);
            if (!ledger.to_correlate.empty()) {
                order = ledger.to_correlate.front();
                ledger.to_correlate.pop_front();
            }
        }
        if (order.empty()) {
            if (ledger.stop) {
                return;
            }
            std::this_thread::sleep_for(50ms);
            continue;
        }
        auto matched = client.send_json("POST", "/api/v1/messages",
                                        {{"name", "rx_paid"}, {"correlation_key", order}});
        const Outcome outcome = classify(ledger, matched, 200, "correlate " + order);
        std::lock_guard lock(ledger.mutex);
        if (outcome == Outcome::kLost) {
            ledger.correlation_retried.insert(order);
            ledger.to_correlate.push_back(order);
        } else if (outcome == Outcome::kOther &&
                   !(matched->status == 404 && ledger.correlation_retried.count(order))) {
            // 404 is right only after a lost answer: that attempt did correlate.
            ledger.unexpected.push_back("correlate " + order + ": " + matched->describe());
        }
    }
}

void broadcast_signals(Ledger& ledger, std::uint16_t port) {
    HttpClient client(port);
    while (!ledger.stop) {
        auto sent = client.send_json("POST", "/api/v1/signals", {{"name", "rx_go"}});
        const Outcome outcome = classify(ledger, sent, 200, "signal");
        if (outcome == Outcome::kOk) {
            std::lock_guard lock(ledger.mutex);
            ledger.signals_triggered += sent->json()["data"].value("triggered", 0);
        } else if (outcome == Outcome::kOther) {
            unexpected(ledger, sent, "signal");
        }
        std::this_thread::sleep_for(300ms);
    }
}

/// Completes `job`; retries (bounded) while answers are lost. True when it is done.
void complete_job(Ledger& ledger, HttpClient& client, const std::string& job) {
    for (int attempt = 0; attempt < 5; ++attempt) {
        auto done = client.send_json("POST", "/api/v1/jobs/" + job + "/complete",
                                     {{"variables", {{"charged", true}}}});
        const Outcome outcome = classify(ledger, done, 200, "complete job " + job);
        std::lock_guard lock(ledger.mutex);
        if (outcome == Outcome::kOk) {
            ++ledger.job_ok[job];
            return;
        }
        if (outcome == Outcome::kOther) {
            if (!(done->status == 404 && ledger.job_retried.count(job))) {
                // 404 is right only after a lost answer: that attempt did complete it.
                ledger.unexpected.push_back("complete job " + job + ": " + done->describe());
            }
            return;
        }
        ledger.job_retried.insert(job);
    }
}

void work_jobs(Ledger& ledger, std::uint16_t port) {
    HttpClient client(port);
    while (!ledger.stop) {
        auto activated = client.send_json("POST", "/api/v1/jobs/activate",
                                          {{"type", "rx_charge"},
                                           {"worker", "replicas-test"},
                                           {"max_jobs", 20},
                                           {"lock_ms", 5000},
                                           {"wait_ms", 500}});
        const Outcome outcome = classify(ledger, activated, 200, "activate jobs");
        if (outcome == Outcome::kOther) {
            unexpected(ledger, activated, "activate jobs");
        }
        if (outcome != Outcome::kOk) {
            std::this_thread::sleep_for(100ms);
            continue;
        }
        {
            std::lock_guard lock(ledger.mutex);
            ledger.last_activation = activated->body.substr(0, 300);
        }
        // Held in a variable: a range-for over a member of a temporary would dangle.
        const json jobs = activated->json()["data"]["items"];
        for (const auto& job : jobs) {
            const std::string id = job.value("id", "");
            {
                std::lock_guard lock(ledger.mutex);
                ++ledger.job_handed[id];
            }
            complete_job(ledger, client, id);
        }
    }
}

// ---- the fixture -------------------------------------------------------------------------------

class ReplicasMixedLoad : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!fs::exists(kNginx) || ::geteuid() != 0) {
            GTEST_SKIP() << "needs nginx and root (nginx drops its workers to nobody)";
        }
        std::string why;
        postgres_ = PostgresServer::start_new(why);
        if (postgres_ == nullptr) {
            GTEST_SKIP() << "PostgreSQL is not available: " << why;
        }
        ASSERT_TRUE(postgres_->execute("CREATE SCHEMA replicas_mixed")) << postgres_->log_tail();
        auto redis = RedisServer::start();
        if (!redis) {
            GTEST_SKIP() << "redis-server is not available: " << redis.error().message;
        }
        redis_ = std::move(redis).value();
        env_ = {{"PYTHMATA_DB_URL", postgres_->schema_url("replicas_mixed")},
                {"PYTHMATA_REDIS_URL", redis_->url()},
                // A timer a killed replica had locked is taken over after 2 s.
                {"PYTHMATA_TIMER_LOCK_MS", "2000"},
                // 4 processes x (6 + 4) connections stay below the test server's 60.
                {"PYTHMATA_DB_POOL_SIZE", "6"},
                {"PYTHMATA_DB_MAX_OVERFLOW", "4"},
                {"PYTHMATA_LOG_LEVEL", "warn"},
                {"PYTHMATA_ACCESS_LOG", "false"}};
        // One at a time: the first applies the migrations.
        for (int i = 0; i < 3; ++i) {
            auto server = ServerProcess::start(ops_server_options(env_));
            ASSERT_TRUE(server) << server.error().message;
            ports_.push_back((*server)->port());
            replicas_.push_back(std::move(server).value());
        }
        auto worker_options = ops_server_options(env_);
        worker_options.args = {"worker"};
        auto worker = ServerProcess::start(worker_options);
        ASSERT_TRUE(worker) << worker.error().message;
        worker_ = std::move(worker).value();

        ::chmod(dir_.path().c_str(), 0755);
        nginx_port_ = free_port();
        const auto conf =
            loopback_nginx_conf(read_text(fs::path(PYTHMATA_SOURCE_DIR) / "docker" / "nginx.conf"),
                                dir_.path(), nginx_port_, ports_);
        ASSERT_TRUE(conf) << conf.error().message;
        write_text(dir_.path() / "nginx.conf", conf.value());
        nginx_ = std::make_unique<NginxProcess>(dir_.path());
        HttpClient probe(nginx_port_);
        ASSERT_TRUE(eventually(10s, [&] {
            auto health = probe.get("/health");
            return health && health->status == 200;
        })) << read_text(dir_.path() / "nginx.stderr");
    }

    void TearDown() override {
        if (HasFailure()) {
            for (std::size_t i = 0; i < replicas_.size(); ++i) {
                std::cerr << "--- replica " << i << " log ---\n"
                          << replicas_[i]->stderr_tail(3000) << "\n";
            }
            if (worker_) {
                std::cerr << "--- worker log ---\n" << worker_->stderr_tail(3000) << "\n";
            }
            std::cerr << "--- nginx ---\n" << read_text(dir_.path() / "nginx.stderr") << "\n";
        }
        nginx_.reset();
        worker_.reset();
        replicas_.clear();
    }

    std::unique_ptr<PostgresServer> postgres_;
    std::unique_ptr<RedisServer> redis_;
    std::map<std::string, std::string> env_;
    std::vector<std::unique_ptr<ServerProcess>> replicas_;
    std::vector<std::uint16_t> ports_;
    std::unique_ptr<ServerProcess> worker_;
    TempDir dir_{"ops-replicas"};
    std::uint16_t nginx_port_ = 0;
    std::unique_ptr<NginxProcess> nginx_;
};

/// What one instance looked like at the end, checked against its kind; problems appended.
void check_instance(HttpClient& client, Kind kind, const std::string& id,
                    std::vector<std::string>& problems) {
    auto got = client.get("/api/v1/instances/" + id);
    if (!got || got->status != 200) {
        problems.push_back("201'd instance " + id +
                           " is missing: " + (got ? got->describe() : got.error().message));
        return;
    }
    const json instance = got->json()["data"];
    const std::string status = instance.value("status", "");
    const std::string step = step_of(kind);
    if (status == "RUNNING" && kind != Kind::kTimer && kind != Kind::kStraight) {
        if (instance["active_elements"] != json::array({step})) {
            problems.push_back("waiting instance " + id + " waits at " +
                               instance["active_elements"].dump() + ", not at " + step);
        }
    } else if (status != "COMPLETED") {
        problems.push_back("instance " + id + " (" + step + ") is " + status + ", not finished");
    }
    auto history = client.get("/api/v1/instances/" + id + "/activities?page_size=1000");
    if (!history || history->status != 200) {
        problems.push_back("activities of " + id + ": " +
                           (history ? history->describe() : history.error().message));
        return;
    }
    std::map<std::string, int> completed;
    const json activities = history->json()["data"]["items"];
    for (const auto& activity : activities) {
        if (activity.value("event", "") == "COMPLETED") {
            ++completed[activity.value("element_id", "")];
        }
    }
    for (const auto& [element, times] : completed) {
        if (times > 1) {
            problems.push_back("instance " + id + ": " + element + " completed " +
                               std::to_string(times) + " times");
        }
    }
    if (status == "COMPLETED" && completed[step] != 1) {
        problems.push_back("completed instance " + id + ": " + step + " completed " +
                           std::to_string(completed[step]) +
                           " times; history: " + history->body.substr(0, 600));
    }
}

TEST_F(ReplicasMixedLoad, KillingAReplicaMidRunLosesNothingAndDoesNothingTwice) {
    HttpClient api(nginx_port_, 30s);
    for (const auto& model : models()) {
        auto deployed = api.send_xml("POST", "/api/v1/processes", model);
        ASSERT_TRUE(deployed) << deployed.error().message;
        ASSERT_EQ(deployed->status, 201) << deployed->describe();
    }
    // Every replica has version 1 of rx_versioned in its cache before the redeploy.
    for (const auto port : ports_) {
        HttpClient direct(port);
        auto latest = direct.get("/api/v1/processes/rx_versioned");
        ASSERT_TRUE(latest && latest->status == 200);
        ASSERT_EQ(latest->json()["data"].value("version", 0), 1) << latest->describe();
        auto started =
            direct.send_json("POST", "/api/v1/processes/rx_versioned/instances", json::object());
        ASSERT_TRUE(started && started->status == 201);
        ASSERT_EQ(started->json()["data"].value("process_version", 0), 1) << started->describe();
    }

    Ledger ledger;
    const auto load_began = std::chrono::steady_clock::now();
    std::vector<std::thread> starters;
    for (int s = 0; s < kTimerStarters; ++s) {
        const int per = kTimerInstances / kTimerStarters;
        starters.emplace_back(start_timers, std::ref(ledger), nginx_port_, s * per, per);
    }
    starters.emplace_back(start_mixed, std::ref(ledger), nginx_port_);
    std::vector<std::thread> workers;
    workers.emplace_back(complete_tasks, std::ref(ledger), nginx_port_);
    workers.emplace_back(correlate_messages, std::ref(ledger), nginx_port_);
    workers.emplace_back(broadcast_signals, std::ref(ledger), nginx_port_);
    workers.emplace_back(work_jobs, std::ref(ledger), nginx_port_);

    // Halfway through the timer starts, replica 1 dies; then a new version is deployed.
    const bool halfway =
        eventually(120s, [&] { return ledger.timer_attempts >= kTimerInstances / 2; });
    replicas_[1]->kill9();
    ledger.killed = true;
    const auto killed_at = std::chrono::steady_clock::now();
    std::optional<Result<HttpResponse, HarnessFailure>> redeployed;
    for (int attempt = 0; attempt < 3; ++attempt) {
        // A 502 here is the killed replica; a deploy is safe to repeat (same document).
        redeployed.emplace(api.send_xml("POST", "/api/v1/processes", kVersionTwo));
        if (*redeployed && (*redeployed)->status != 502) {
            break;
        }
    }

    for (auto& thread : starters) {
        thread.join();
    }
    const auto starts_done = std::chrono::steady_clock::now();
    // Drain: every instance finishes (the longest timer is PT10S, plus a lock takeover).
    HttpClient survivor(ports_[0], 30s);
    json last_running;
    const bool drained = eventually(90s, [&] {
        auto running = survivor.get("/api/v1/instances?status=RUNNING&page_size=5");
        if (!running || running->status != 200) {
            return false;
        }
        last_running = running->json()["data"];
        std::lock_guard lock(ledger.mutex);
        return last_running.value("total", -1) == 0 && ledger.to_correlate.empty();
    });
    ledger.stop = true;
    for (auto& thread : workers) {
        thread.join();
    }
    const auto drained_at = std::chrono::steady_clock::now();

    ASSERT_TRUE(halfway) << "the timer starts never got halfway";
    ASSERT_TRUE(*redeployed) << (*redeployed).error().message;
    ASSERT_EQ((*redeployed)->status, 201) << (*redeployed)->describe();
    EXPECT_EQ((*redeployed)->json()["data"].value("version", 0), 2) << (*redeployed)->describe();
    EXPECT_TRUE(drained) << "instances still running after the load: " << last_running.dump();

    // The killed replica comes back (it must not disturb anything, and its cache is checked).
    auto restarted = replicas_[1]->restart();
    ASSERT_TRUE(restarted) << restarted.error().message;

    // ---- the ledger -----------------------------------------------------------------------------
    std::map<Kind, int> per_kind;
    for (const auto& [kind, id] : ledger.started) {
        ++per_kind[kind];
    }
    std::cerr << "load: " << ledger.started.size() << " instances 201'd in "
              << std::chrono::duration_cast<std::chrono::seconds>(starts_done - load_began).count()
              << " s (" << per_kind[Kind::kTimer] << " timers), " << ledger.started_after_kill
              << " of them after the kill; drained "
              << std::chrono::duration_cast<std::chrono::seconds>(drained_at - starts_done).count()
              << " s after the last start; " << ledger.task_ok.size() << " tasks and "
              << ledger.job_ok.size() << " jobs completed, " << ledger.signals_triggered
              << " signal catches triggered, " << ledger.lost.size()
              << " answers lost with the killed replica; last activation: "
              << ledger.last_activation << "\n";
    for (const auto& lost : ledger.lost) {
        std::cerr << "  lost: " << lost.substr(0, 200) << "\n";
    }
    EXPECT_TRUE(ledger.unexpected.empty())
        << ledger.unexpected.size() << " unexpected answers, first: " << ledger.unexpected.front();
    EXPECT_LE(ledger.lost.size(), static_cast<std::size_t>(kMaxLostAnswers));
    EXPECT_GE(per_kind[Kind::kTimer], kTimerInstances - kMaxLostAnswers);
    EXPECT_GE(per_kind[Kind::kJob], kMixedRounds - kMaxLostAnswers);
    EXPECT_GT(ledger.started_after_kill.load(), 500)
        << "the load did not keep going after the kill";
    EXPECT_LT(std::chrono::duration_cast<std::chrono::seconds>(killed_at - load_began).count(),
              std::chrono::duration_cast<std::chrono::seconds>(starts_done - load_began).count());
    for (const auto& [job, times] : ledger.job_ok) {
        EXPECT_EQ(times, 1) << "job " << job << " was completed " << times << " times";
        EXPECT_EQ(ledger.job_handed[job], 1)
            << "job " << job << " was handed out " << ledger.job_handed[job] << " times";
    }
    for (const auto& [task, times] : ledger.task_ok) {
        EXPECT_EQ(times, 1) << "task " << task << " was completed " << times << " times";
    }
    EXPECT_GE(ledger.job_ok.size(),
              static_cast<std::size_t>(per_kind[Kind::kJob]) - ledger.job_retried.size());
    EXPECT_GE(ledger.task_ok.size(),
              static_cast<std::size_t>(per_kind[Kind::kTask]) - ledger.task_retried.size());
    EXPECT_GT(ledger.signals_triggered, 0);

    // No start ran twice (nginx never retries a POST that reached a replica): the store holds
    // the 201'd instances, plus at most the starts whose answer was lost.
    {
        std::vector<std::string> keys = {"rx_straight", "rx_task", "rx_message", "rx_signal",
                                         "rx_job"};
        for (const int seconds : kTimerSeconds) {
            keys.push_back("rx_timer_" + std::to_string(seconds));
        }
        HttpClient direct(ports_[0]);
        std::int64_t stored = 0;
        for (const auto& key : keys) {
            auto listed = direct.get("/api/v1/processes/" + key + "/instances?page_size=1");
            ASSERT_TRUE(listed && listed->status == 200);
            stored += listed->json()["data"].value("total", std::int64_t{0});
        }
        const auto lost_starts =
            std::count_if(ledger.lost.begin(), ledger.lost.end(),
                          [](const std::string& l) { return l.starts_with("start "); });
        EXPECT_GE(stored, static_cast<std::int64_t>(ledger.started.size()));
        EXPECT_LE(stored, static_cast<std::int64_t>(ledger.started.size()) + lost_starts)
            << "more instances in the store than starts sent: a start ran twice";
    }

    // A second completion of a completed job is refused, through nginx and on each replica.
    int refused = 0;
    for (const auto& [job, times] : ledger.job_ok) {
        HttpClient direct(ports_[refused % ports_.size()]);
        auto again = direct.send_json("POST", "/api/v1/jobs/" + job + "/complete", json::object());
        ASSERT_TRUE(again) << again.error().message;
        EXPECT_TRUE(again->status == 404 || again->status == 409) << again->describe();
        if (++refused == 12) {
            break;
        }
    }

    // ---- every instance, on the surviving replicas, in parallel ---------------------------------
    std::vector<std::string> problems;
    std::mutex problems_mutex;
    std::vector<std::thread> checkers;
    constexpr int kCheckers = 4;
    for (int c = 0; c < kCheckers; ++c) {
        checkers.emplace_back([&, c] {
            HttpClient client(ports_[c % 2 == 0 ? 0 : 2], 30s);
            std::vector<std::string> found;
            for (std::size_t i = static_cast<std::size_t>(c); i < ledger.started.size();
                 i += kCheckers) {
                check_instance(client, ledger.started[i].first, ledger.started[i].second, found);
            }
            std::lock_guard lock(problems_mutex);
            problems.insert(problems.end(), found.begin(), found.end());
        });
    }
    for (auto& thread : checkers) {
        thread.join();
    }
    EXPECT_TRUE(problems.empty()) << problems.size() << " problems, first: " << problems.front()
                                  << (problems.size() > 1 ? "\nsecond: " + problems[1] : "");

    // ---- the redeploy reached every replica's cache ---------------------------------------------
    for (std::size_t i = 0; i < ports_.size(); ++i) {
        HttpClient direct(ports_[i]);
        json latest;
        EXPECT_TRUE(eventually(5s,
                               [&] {
                                   auto got = direct.get("/api/v1/processes/rx_versioned");
                                   latest =
                                       got && got->status == 200 ? got->json()["data"] : json();
                                   return latest.is_object() && latest.value("version", 0) == 2;
                               }))
            << "replica " << i << " still serves " << latest.dump().substr(0, 300);
        auto started =
            direct.send_json("POST", "/api/v1/processes/rx_versioned/instances", json::object());
        ASSERT_TRUE(started) << started.error().message;
        ASSERT_EQ(started->status, 201) << started->describe();
        EXPECT_EQ(started->json()["data"].value("process_version", 0), 2)
            << "replica " << i << " started an old version: " << started->describe();
        const std::string id = started->json()["data"].value("id", "");
        auto history = direct.get("/api/v1/instances/" + id + "/activities?page_size=100");
        ASSERT_TRUE(history && history->status == 200);
        EXPECT_NE(history->body.find("\"v2_step\""), std::string::npos) << history->describe();
        EXPECT_EQ(history->body.find("\"v1_step\""), std::string::npos) << history->describe();
    }

    // The worker role took part: it fired timers too.
    HttpClient worker_ops(worker_->port());
    auto metrics = worker_ops.get("/metrics");
    ASSERT_TRUE(metrics && metrics->status == 200);
    const std::string sample = "\npythmata_timer_lateness_seconds_count ";
    const auto at = metrics->body.find(sample);
    ASSERT_NE(at, std::string::npos);
    EXPECT_GT(std::stod(metrics->body.substr(at + sample.size())), 0)
        << "the worker fired no timer";
}

}  // namespace
}  // namespace pythmata::test
