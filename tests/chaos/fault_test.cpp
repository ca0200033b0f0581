// Dependency and resource faults under load (issue 6), over the real `pythmata serve`:
// PostgreSQL stopped for 10 s, Redis killed, the SQLite disk full or turned read-only, and an
// overload burst. Each test asserts what the client sees while it lasts (the documented 503s with
// Retry-After, or nothing at all), that nothing is half-written, and how the server comes back.

#include <sqlite3.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "chaos_support.hpp"
#include "runtime_models.hpp"

namespace pythmata::test::chaos {
namespace {

namespace fs = std::filesystem;

/// One answer the load got, with when it was asked.
struct Answer {
    Clock::time_point sent;
    Clock::duration took{};
    std::string what;
    bool reached = false;  ///< an HTTP answer came back (else `error` says what failed)
    HttpResponse response;
    std::string error;
};

/// The answers of every load thread, and the instances acknowledged with a 201.
struct LoadLog {
    std::mutex mutex;
    std::vector<Answer> answers;
    std::vector<std::string> acknowledged;    ///< instance ids that got a 201
    std::vector<std::string> refused_starts;  ///< business keys of starts answered with an error
    std::vector<std::string> completed;       ///< instance ids whose task completion got a 200
    std::deque<std::string> to_complete;

    /// Sends one request, records the answer, returns it.
    Answer call(HttpClient& client, const std::string& method, const std::string& target,
                const std::string& body = {}) {
        Answer answer;
        answer.sent = Clock::now();
        answer.what = method + " " + target;
        auto response =
            body.empty() && method == "GET"
                ? client.get(target)
                : client.request(method, target, body, {{"Content-Type", "application/json"}});
        answer.took = Clock::now() - answer.sent;
        if (response.ok()) {
            answer.reached = true;
            answer.response = std::move(response).value();
        } else {
            answer.error = response.error().message;
        }
        std::lock_guard lock(mutex);
        answers.push_back(answer);
        return answer;
    }
};

/// Load thread: starts `key` with business keys `prefix`-N; every second acknowledged instance
/// is queued for completion.
void start_loop(std::uint16_t port, const std::string& key, const std::string& prefix, LoadLog& log,
                std::atomic<bool>& stop, std::chrono::milliseconds pace = 25ms) {
    HttpClient client(port, 20s);
    for (int n = 0; !stop.load(); ++n) {
        const std::string business_key = prefix + "-" + std::to_string(n);
        const auto answer = log.call(client, "POST", "/api/v1/processes/" + key + "/instances",
                                     json{{"business_key", business_key}}.dump());
        {
            std::lock_guard lock(log.mutex);
            if (answer.reached && answer.response.status == 201) {
                const std::string id = answer.response.json()["data"].value("id", "");
                log.acknowledged.push_back(id);
                if (n % 2 == 0) {
                    log.to_complete.push_back(id);
                }
            } else {
                log.refused_starts.push_back(business_key);
            }
        }
        std::this_thread::sleep_for(pace);
    }
}

/// Load thread: completes the tasks of queued instances; one that fails goes back in the queue.
void complete_loop(std::uint16_t port, LoadLog& log, std::atomic<bool>& stop) {
    HttpClient client(port, 20s);
    while (!stop.load()) {
        const auto next = take_next(log.mutex, log.to_complete);
        if (!next) {
            std::this_thread::sleep_for(25ms);
            continue;
        }
        const std::string& id = *next;
        const auto tasks = log.call(client, "GET", "/api/v1/tasks?instance_id=" + id);
        bool done = false;
        if (tasks.reached && tasks.response.status == 200 && items_of(tasks.response).size() == 1) {
            const std::string task = items_of(tasks.response)[0].value("id", "");
            const auto completed =
                log.call(client, "POST", "/api/v1/tasks/" + task + "/complete", "{}");
            done = completed.reached && completed.response.status == 200;
        }
        {
            std::lock_guard lock(log.mutex);
            if (done) {
                log.completed.push_back(id);
            } else {
                log.to_complete.push_back(id);
            }
        }
        std::this_thread::sleep_for(25ms);
    }
}

/// Every acknowledged instance exists whole: RUNNING at `review` with exactly one open task, or
/// COMPLETED when its completion got a 200; every refused start is absent. Adds to `problems`.
void check_nothing_half_written(HttpClient& client, const std::string& key, LoadLog& log,
                                Problems& problems) {
    std::set<std::string> completed(log.completed.begin(), log.completed.end());
    for (const auto& id : log.acknowledged) {
        auto response = client.get("/api/v1/instances/" + id);
        if (!response.ok() || response.value().status != 200) {
            problems.add("acknowledged instance " + id + " is missing");
            continue;
        }
        const json instance = response.value().json()["data"];
        const std::string status = instance.value("status", "");
        if (completed.count(id) != 0) {
            if (status != "COMPLETED") {
                problems.add(id + ": its completion got a 200 but it is " + status);
            }
            continue;
        }
        auto tasks = client.get("/api/v1/tasks?instance_id=" + id);
        if (status == "RUNNING" && (!tasks.ok() || items_of(tasks.value()).size() != 1 ||
                                    instance["active_elements"] != json::array({"review"}))) {
            problems.add(id + ": RUNNING without its one open task: " + instance.dump());
        } else if (status != "RUNNING" && status != "COMPLETED") {
            problems.add(id + ": unexpected status " + status);
        }
    }
    for (const auto& business_key : log.refused_starts) {
        auto found =
            client.get("/api/v1/instances?process_key=" + key + "&business_key=" + business_key);
        if (!found.ok() || found.value().status != 200) {
            problems.add("cannot look up business key " + business_key);
        } else if (!items_of(found.value()).empty()) {
            problems.add("start " + business_key + " was answered with an error but is there");
        }
    }
    auto listed = client.get("/api/v1/instances?page_size=1&process_key=" + key);
    if (!listed.ok() || listed.value().json()["data"].value("total", -1) !=
                            static_cast<int>(log.acknowledged.size())) {
        problems.add("the store holds another number of " + key + " instances than the " +
                     std::to_string(log.acknowledged.size()) + " acknowledged");
    }
}

// ---- PostgreSQL stopped for 10 s ----------------------------------------------------------

TEST(Faults, PostgresStoppedForTenSecondsUnderLoad) {
    Dependencies dependencies;
    if (!dependencies.start()) {
        GTEST_SKIP() << "PostgreSQL 15 / redis-server not available: " << dependencies.why;
    }
    auto env = base_env();
    env["PYTHMATA_DB_URL"] = dependencies.postgres->url();
    env["PYTHMATA_DB_POOL_SIZE"] = "4";
    env["PYTHMATA_DB_MAX_OVERFLOW"] = "2";
    auto server = start_server(env, false);
    ASSERT_NE(server, nullptr);
    const pid_t pid = server->pid();
    HttpClient client(server->port(), 20s);
    auto deployed =
        client.send_xml("POST", "/api/v1/processes", runtime::models::user_task("Outage"));
    ASSERT_TRUE(deployed.ok() && deployed.value().status == 201);

    LoadLog log;
    std::atomic<bool> stop{false};
    std::vector<std::thread> load;
    load.emplace_back([&] { start_loop(server->port(), "Outage", "a", log, stop); });
    load.emplace_back([&] { start_loop(server->port(), "Outage", "b", log, stop); });
    load.emplace_back([&] { complete_loop(server->port(), log, stop); });

    std::this_thread::sleep_for(3s);
    const auto stopped_at = Clock::now();
    ASSERT_TRUE(dependencies.postgres->stop(PostgresServer::Shutdown::kFast));
    // While it is down: liveness answers, readiness names the store, with Retry-After.
    std::vector<HttpResponse> ready_answers;
    int live = 0;
    while (Clock::now() - stopped_at < 10s) {
        std::this_thread::sleep_for(500ms);
        auto ready = client.get("/health/ready");
        if (ready.ok() && Clock::now() - stopped_at > 2s) {
            ready_answers.push_back(ready.value());
        }
        auto health = client.get("/health");
        live += health.ok() && health.value().status == 200 ? 1 : 0;
    }
    ASSERT_TRUE(dependencies.postgres->start()) << dependencies.postgres->log_tail();
    const auto back_at = Clock::now();
    // The server serves again on its own: the first 201 after PostgreSQL returned.
    Clock::time_point recovered_at{};
    const bool recovered = eventually(30s, [&] {
        std::lock_guard lock(log.mutex);
        for (const auto& answer : log.answers) {
            if (answer.sent >= back_at && answer.reached && answer.response.status == 201) {
                recovered_at = answer.sent + answer.took;
                return true;
            }
        }
        return false;
    });
    std::this_thread::sleep_for(4s);
    stop = true;
    for (auto& thread : load) {
        thread.join();
    }

    ASSERT_TRUE(recovered) << "no start succeeded within 30 s after PostgreSQL came back";
    EXPECT_LT(recovered_at - back_at, 15s) << "recovery took too long";
    EXPECT_EQ(server->pid(), pid) << "the server was restarted";
    EXPECT_TRUE(server->running());
    EXPECT_GE(live, 5) << "GET /health must answer while the store is down";
    ASSERT_FALSE(ready_answers.empty());
    for (const auto& ready : ready_answers) {
        EXPECT_TRUE(is_unavailable(ready, {"NOT_READY"})) << ready.describe();
        EXPECT_EQ(ready.json()["context"]["checks"]["store"], "down") << ready.describe();
    }

    // Every answer was a success or a documented store 503 with Retry-After; answers to
    // requests sent well after the recovery all succeed.
    int unavailable = 0;
    int after_recovery = 0;
    for (const auto& answer : log.answers) {
        ASSERT_TRUE(answer.reached) << answer.what << ": " << answer.error;
        const int status = answer.response.status;
        if (status >= 200 && status < 300) {
            if (answer.sent > recovered_at + 2s) {
                ++after_recovery;
            }
            continue;
        }
        EXPECT_TRUE(is_unavailable(answer.response, kStoreDownCodes)) << answer.what;
        ++unavailable;
        EXPECT_LT(answer.sent, recovered_at + 2s)
            << answer.what
            << " failed after the server had recovered: " << answer.response.describe();
        EXPECT_GT(answer.sent + answer.took, stopped_at) << "an error before the outage";
    }
    EXPECT_GT(unavailable, 5) << "the load did not meet the outage";
    EXPECT_GT(after_recovery, 20);
    // An answer takes about the connect timeout while the store is down, not unbounded time.
    for (const auto& answer : log.answers) {
        EXPECT_LT(answer.took, 8s) << answer.what;
    }

    Problems problems;
    check_nothing_half_written(client, "Outage", log, problems);
    EXPECT_TRUE(problems.none());
    std::cout << log.acknowledged.size() << " starts acknowledged, " << log.completed.size()
              << " completions, " << unavailable << " 503s during the outage\n";
    if (HasFailure()) {
        std::cerr << server->stderr_tail(4000) << "\n";
    }
}

// ---- Redis killed ---------------------------------------------------------------------------

TEST(Faults, RedisKilledUnderLoadIsInvisibleToClients) {
    Dependencies dependencies;
    if (!dependencies.start()) {
        GTEST_SKIP() << "PostgreSQL 15 / redis-server not available: " << dependencies.why;
    }
    auto env = base_env();
    env["PYTHMATA_DB_URL"] = dependencies.postgres->url();
    env["PYTHMATA_REDIS_URL"] = dependencies.redis->url();
    auto server = start_server(env, false);
    ASSERT_NE(server, nullptr);
    HttpClient client(server->port(), 20s);
    for (const auto& xml :
         {runtime::models::user_task("Steady"), runtime::models::user_task("Versioned")}) {
        auto deployed = client.send_xml("POST", "/api/v1/processes", xml);
        ASSERT_TRUE(deployed.ok() && deployed.value().status == 201);
    }

    LoadLog log;
    std::atomic<bool> stop{false};
    std::vector<std::thread> load;
    const auto port = server->port();
    load.emplace_back([&] { start_loop(port, "Steady", "r", log, stop); });
    load.emplace_back([&] { complete_loop(port, log, stop); });
    // Definition reads (the cache's business) and new versions (its invalidations).
    load.emplace_back([&] {
        HttpClient reader(port, 20s);
        for (int n = 0; !stop.load(); ++n) {
            (void)log.call(reader, "GET",
                           n % 2 == 0 ? "/api/v1/processes/Steady" : "/api/v1/processes/Versioned");
            std::this_thread::sleep_for(20ms);
        }
    });
    load.emplace_back([&] {
        HttpClient deployer(port, 20s);
        for (int n = 0; !stop.load(); ++n) {
            Answer answer;
            answer.sent = Clock::now();
            answer.what = "PUT /api/v1/processes/Versioned";
            auto response = deployer.send_xml(
                "PUT", "/api/v1/processes/Versioned",
                runtime::models::user_task("Versioned", "review", "v" + std::to_string(n)));
            answer.took = Clock::now() - answer.sent;
            answer.reached = response.ok();
            if (response.ok()) {
                answer.response = response.value();
            } else {
                answer.error = response.error().message;
            }
            {
                std::lock_guard lock(log.mutex);
                log.answers.push_back(answer);
            }
            std::this_thread::sleep_for(300ms);
        }
    });

    std::this_thread::sleep_for(3s);
    const auto killed_at = Clock::now();
    dependencies.redis->kill();
    std::this_thread::sleep_for(6s);
    auto restarted = dependencies.redis->restart();
    ASSERT_TRUE(restarted.ok()) << restarted.error().message;
    const auto back_at = Clock::now();
    std::this_thread::sleep_for(6s);
    stop = true;
    for (auto& thread : load) {
        thread.join();
    }

    int during = 0;
    int after = 0;
    for (const auto& answer : log.answers) {
        ASSERT_TRUE(answer.reached) << answer.what << ": " << answer.error;
        EXPECT_TRUE(answer.response.status >= 200 && answer.response.status < 300)
            << answer.what << " while Redis was "
            << (answer.sent < killed_at ? "up"
                : answer.sent < back_at ? "down"
                                        : "back")
            << ": " << answer.response.describe();
        EXPECT_LT(answer.took, 5s) << answer.what << ": a dead Redis must not make requests slow";
        during += answer.sent > killed_at && answer.sent < back_at ? 1 : 0;
        after += answer.sent > back_at ? 1 : 0;
    }
    EXPECT_GT(during, 50) << "the load did not meet the outage";
    EXPECT_GT(after, 50);
    Problems problems;
    check_nothing_half_written(client, "Steady", log, problems);
    EXPECT_TRUE(problems.none());
    // The cache is in use again once Redis is back.
    EXPECT_TRUE(eventually(15s, [&] {
        (void)client.get("/api/v1/processes/Steady");
        auto ready = client.get("/health/ready");
        return ready.ok() && ready.value().status == 200 &&
               ready.value().json()["data"]["checks"]["cache"] == "ok";
    }));
}

// ---- SQLite disk full / read-only -----------------------------------------------------------

/// PRAGMA integrity_check of a SQLite file (the server stopped): "ok" or what it reported.
std::string integrity_check(const fs::path& file) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        const std::string why = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close(db);
        return "cannot open: " + why;
    }
    std::string result;
    sqlite3_stmt* statement = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &statement, nullptr) == SQLITE_OK) {
        while (sqlite3_step(statement) == SQLITE_ROW) {
            result += reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
        }
    } else {
        result = sqlite3_errmsg(db);
    }
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return result;
}

/// Runs a shell command; its exit code (commands are fixed strings built by the test).
int shell(const std::string& command) {
    return std::system((command + " >/dev/null 2>&1").c_str());
}

/// A small file system mounted on a temp dir for one test: tmpfs (for a full disk) or ext4 on a
/// loop device (which the kernel can turn read-only under open files). Unmounted at the end.
class SmallDisk {
  public:
    enum class Kind { kTmpfs, kExt4 };

    /// Mounts it; false with `why` when this machine does not let the test mount.
    bool mount(Kind kind, std::string& why) {
        std::string pattern = (fs::temp_directory_path() / "pythmata-disk-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            why = std::string("mkdtemp: ") + std::strerror(errno);
            return false;
        }
        root_ = pattern;
        dir_ = root_ / "mnt";
        fs::create_directories(dir_);
        if (kind == Kind::kTmpfs) {
            if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=8m") != 0) {
                why = std::string("mount -t tmpfs: ") + std::strerror(errno) +
                      " (needs CAP_SYS_ADMIN)";
                return false;
            }
        } else {
            image_ = root_ / "disk.img";
            if (shell("truncate -s 64M " + image_.string()) != 0 ||
                shell("mkfs.ext4 -q -O ^has_journal " + image_.string()) != 0) {
                why = "mkfs.ext4 failed or is missing";
                return false;
            }
            if (shell("mount -o loop,errors=remount-ro " + image_.string() + " " + dir_.string()) !=
                0) {
                why =
                    "mount -o loop of an ext4 image failed (needs CAP_SYS_ADMIN and loop "
                    "devices)";
                return false;
            }
        }
        mounted_ = true;
        return true;
    }

    /// The ext4 error path the kernel takes on a failing disk (errors=remount-ro): the file
    /// system turns read-only under the files the server holds open. False when not possible.
    bool turn_read_only() {
        const std::string source = command_output("findmnt -n -o SOURCE " + dir_.string());
        const fs::path trigger =
            fs::path("/sys/fs/ext4") / fs::path(source).filename() / "trigger_fs_error";
        std::ofstream out(trigger);
        out << "pythmata chaos test\n";
        out.close();
        // Read-only now: creating a file fails with EROFS.
        std::ofstream probe(dir_ / "probe");
        return out.good() && !probe.is_open();
    }

    /// Unmounts, checks and repairs the file system, and mounts it again (what an operator
    /// does after the kernel made it read-only). The server must be stopped.
    bool repair_and_remount() {
        if (shell("umount " + dir_.string()) != 0) {
            return false;
        }
        mounted_ = false;
        (void)shell("e2fsck -fy " + image_.string());  // exit code 1: errors fixed
        if (shell("mount -o loop,errors=remount-ro " + image_.string() + " " + dir_.string()) !=
            0) {
            return false;
        }
        mounted_ = true;
        return true;
    }

    ~SmallDisk() {
        if (mounted_) {
            ::umount2(dir_.c_str(), MNT_DETACH);
        }
        if (!root_.empty()) {
            std::error_code ignored;
            fs::remove_all(root_, ignored);
        }
    }

    [[nodiscard]] const fs::path& dir() const { return dir_; }

    static std::string command_output(const std::string& command) {
        std::string out;
        if (FILE* pipe = ::popen(command.c_str(), "r")) {
            std::array<char, 256> buffer{};
            while (std::fgets(buffer.data(), buffer.size(), pipe) != nullptr) {
                out += buffer.data();
            }
            ::pclose(pipe);
        }
        while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
            out.pop_back();
        }
        return out;
    }

  private:
    fs::path root_;
    fs::path dir_;
    fs::path image_;
    bool mounted_ = false;
};

/// A SQLite server on `disk`, with a user-task model deployed.
std::unique_ptr<ServerProcess> sqlite_server_on(const SmallDisk& disk) {
    auto env = base_env();
    env["PYTHMATA_DB_URL"] = "sqlite://" + (disk.dir() / "pythmata.db").string();
    env["PYTHMATA_MAX_VARIABLE_SIZE"] = std::to_string(1 << 20);
    auto server = start_server(env, false);
    if (server) {
        HttpClient client(server->port(), 20s);
        auto deployed =
            client.send_xml("POST", "/api/v1/processes", runtime::models::user_task("Disk"));
        EXPECT_TRUE(deployed.ok() && deployed.value().status == 201);
    }
    return server;
}

/// Starts "Disk" with business key `key` and a `padding`-byte variable; records the outcome.
Answer start_on_disk(HttpClient& client, LoadLog& log, const std::string& key,
                     std::size_t padding) {
    const json body = {{"business_key", key},
                       {"variables", {{"padding", std::string(padding, 'x')}}}};
    Answer answer = log.call(client, "POST", "/api/v1/processes/Disk/instances", body.dump());
    std::lock_guard lock(log.mutex);
    if (answer.reached && answer.response.status == 201) {
        log.acknowledged.push_back(answer.response.json()["data"].value("id", ""));
    } else {
        log.refused_starts.push_back(key);
    }
    return answer;
}

TEST(Faults, SqliteOnAFullDiskAnswers503AndRecoversWhenSpaceReturns) {
    SmallDisk disk;
    std::string why;
    if (!disk.mount(SmallDisk::Kind::kTmpfs, why)) {
        GTEST_SKIP() << why;
    }
    auto server = sqlite_server_on(disk);
    ASSERT_NE(server, nullptr);
    const pid_t pid = server->pid();
    HttpClient client(server->port(), 20s);
    LoadLog log;
    for (int i = 0; i < 10; ++i) {
        ASSERT_EQ(start_on_disk(client, log, "before-" + std::to_string(i), 1000).response.status,
                  201);
    }

    // Fill the disk to the last byte.
    const fs::path filler = disk.dir() / "filler";
    {
        std::ofstream out(filler, std::ios::binary);
        const std::string chunk(64 * 1024, '\0');
        while (out.write(chunk.data(), static_cast<std::streamsize>(chunk.size())) && out.flush()) {
        }
    }
    int refused = 0;
    for (int i = 0; i < 120 && refused < 5; ++i) {
        const auto answer = start_on_disk(client, log, "full-" + std::to_string(i), 100'000);
        ASSERT_TRUE(answer.reached) << answer.error;
        if (answer.response.status == 201) {
            continue;
        }
        EXPECT_TRUE(is_unavailable(answer.response, {"DB_UNAVAILABLE"}))
            << "a full disk must be a 503 with Retry-After";
        EXPECT_LT(answer.took, 5s);
        ++refused;
    }
    EXPECT_EQ(refused, 5) << "the full disk was never noticed";
    std::cout << "full disk: " << log.acknowledged.size() << " starts acknowledged before the "
              << "first refusal, then " << refused << " refused with "
              << log.answers.back().response.json().value("code", "") << "\n";
    // Reads and liveness go on.
    auto health = client.get("/health");
    EXPECT_TRUE(health.ok() && health.value().status == 200);
    auto read = client.get("/api/v1/instances/" + log.acknowledged.front());
    EXPECT_TRUE(read.ok() && read.value().status == 200)
        << (read.ok() ? read.value().describe() : read.error().message);

    // Space returns: the server writes again without a restart.
    fs::remove(filler);
    int n = 0;
    EXPECT_TRUE(eventually(15s, [&] {
        return start_on_disk(client, log, "after-" + std::to_string(n++), 1000).response.status ==
               201;
    })) << "no 201 within 15 s after the disk had room again";
    EXPECT_EQ(server->pid(), pid);
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(start_on_disk(client, log, "later-" + std::to_string(i), 1000).response.status,
                  201);
    }

    // Nothing half-written, and the file is sound after a clean stop and after a restart.
    Problems problems;
    check_nothing_half_written(client, "Disk", log, problems);
    EXPECT_TRUE(problems.none());
    auto stopped = server->terminate();
    ASSERT_TRUE(stopped.ok()) << stopped.error().message;
    EXPECT_EQ(integrity_check(disk.dir() / "pythmata.db"), "ok");
    ASSERT_TRUE(server->restart().ok());
    HttpClient again(server->port(), 20s);
    Problems after_restart;
    check_nothing_half_written(again, "Disk", log, after_restart);
    EXPECT_TRUE(after_restart.none());
    if (HasFailure()) {
        std::cerr << server->stderr_tail(4000) << "\n";
    }
}

TEST(Faults, SqliteOnADiskTurnedReadOnlyAnswers503AndLosesNothing) {
    SmallDisk disk;
    std::string why;
    if (!disk.mount(SmallDisk::Kind::kExt4, why)) {
        GTEST_SKIP() << why;
    }
    auto server = sqlite_server_on(disk);
    ASSERT_NE(server, nullptr);
    HttpClient client(server->port(), 20s);
    LoadLog log;
    for (int i = 0; i < 10; ++i) {
        ASSERT_EQ(start_on_disk(client, log, "before-" + std::to_string(i), 1000).response.status,
                  201);
    }
    if (!disk.turn_read_only()) {
        GTEST_SKIP() << "cannot make the ext4 file system read-only here "
                        "(/sys/fs/ext4/<dev>/trigger_fs_error)";
    }
    // Every write is refused with a 503; liveness answers; nothing blocks.
    for (int i = 0; i < 10; ++i) {
        const auto answer = start_on_disk(client, log, "ro-" + std::to_string(i), 1000);
        ASSERT_TRUE(answer.reached) << answer.error;
        EXPECT_TRUE(is_unavailable(answer.response, {"DB_UNAVAILABLE"}))
            << "a read-only disk must be a 503 with Retry-After";
        EXPECT_LT(answer.took, 5s);
    }
    auto health = client.get("/health");
    EXPECT_TRUE(health.ok() && health.value().status == 200);
    EXPECT_TRUE(server->running());
    // What was committed before can still be read.
    auto read = client.get("/api/v1/instances/" + log.acknowledged.front());
    EXPECT_TRUE(read.ok() && read.value().status == 200)
        << (read.ok() ? read.value().describe() : read.error().message);
    auto listed = client.get("/api/v1/instances?process_key=Disk");
    EXPECT_TRUE(listed.ok() && listed.value().status == 200)
        << (listed.ok() ? listed.value().describe() : listed.error().message);
    std::cout << "read-only disk: " << log.refused_starts.size() << " starts refused with "
              << log.answers.back().response.json().value("code", "") << ": "
              << log.answers.back().response.json().value("detail", "") << "\n";

    // The kernel does not let a file system it turned read-only become writable again while
    // it is mounted: the operator stops the server, repairs and remounts. Then every 201 is
    // there, every refused start absent, and the file is sound.
    auto stopped = server->terminate();
    ASSERT_TRUE(stopped.ok()) << stopped.error().message;
    ASSERT_TRUE(disk.repair_and_remount());
    EXPECT_EQ(integrity_check(disk.dir() / "pythmata.db"), "ok");
    ASSERT_TRUE(server->restart().ok()) << server->stderr_tail();
    HttpClient again(server->port(), 20s);
    EXPECT_EQ(start_on_disk(again, log, "after", 1000).response.status, 201);
    Problems problems;
    check_nothing_half_written(again, "Disk", log, problems);
    EXPECT_TRUE(problems.none());
    if (HasFailure()) {
        std::cerr << server->stderr_tail(4000) << "\n";
    }
}

// ---- Overload -------------------------------------------------------------------------------

TEST(Faults, OverloadIsRefusedPromptlyWith503WhileHealthStaysResponsive) {
    constexpr int kQueue = 8;
    constexpr int kBurst = 48;
    auto env = base_env();
    env["PYTHMATA_HTTP_MAX_QUEUED_REQUESTS"] = std::to_string(kQueue);
    env["PYTHMATA_BLOCKING_THREADS"] = "4";
    env["PYTHMATA_DB_POOL_SIZE"] = "2";
    env["PYTHMATA_DB_MAX_OVERFLOW"] = "0";
    env["PYTHMATA_ENGINE_QUEUE_CAPACITY"] = "16";
    env["PYTHMATA_MAX_JOB_WAIT_MS"] = "3000";
    auto server = start_server(env);
    ASSERT_NE(server, nullptr);
    const auto port = server->port();

    // A burst of slow requests (3 s long polls for a job type nobody produces).
    std::vector<Answer> answers(kBurst);
    std::atomic<int> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> burst;
    for (int i = 0; i < kBurst; ++i) {
        burst.emplace_back([&, i] {
            HttpClient client(port, 20s);
            (void)client.connect();
            ++ready;
            while (!go.load()) {
                std::this_thread::sleep_for(1ms);
            }
            Answer& answer = answers[static_cast<std::size_t>(i)];
            answer.sent = Clock::now();
            auto response = client.request(
                "POST", "/api/v1/jobs/activate",
                json{{"type", "nobody-produces-this"}, {"worker", "w"}, {"wait_ms", 3000}}.dump(),
                {{"Content-Type", "application/json"}});
            answer.took = Clock::now() - answer.sent;
            answer.reached = response.ok();
            if (response.ok()) {
                answer.response = response.value();
            } else {
                answer.error = response.error().message;
            }
        });
    }
    ASSERT_TRUE(eventually(10s, [&] { return ready.load() == kBurst; }));
    go = true;
    // Meanwhile /health answers at once, every time.
    std::this_thread::sleep_for(200ms);
    Clock::duration slowest_health{};
    int healthy = 0;
    for (int i = 0; i < 20; ++i) {
        HttpClient fresh(port, 5s);
        const auto before = Clock::now();
        auto health = fresh.get("/health");
        slowest_health = std::max(slowest_health, Clock::now() - before);
        healthy += health.ok() && health.value().status == 200 ? 1 : 0;
        std::this_thread::sleep_for(100ms);
    }
    for (auto& thread : burst) {
        thread.join();
    }
    EXPECT_EQ(healthy, 20);
    EXPECT_LT(slowest_health, 1s) << "GET /health slowed down under overload";

    int admitted = 0;
    int rejected = 0;
    for (const auto& answer : answers) {
        ASSERT_TRUE(answer.reached) << answer.error;
        if (answer.response.status == 200) {
            ++admitted;
            EXPECT_GE(answer.took, 2s) << "an admitted long poll waits its time";
            continue;
        }
        EXPECT_TRUE(is_unavailable(answer.response, {"OVERLOADED"}));
        EXPECT_LT(answer.took, 1s) << "a refusal must be prompt, not a wait in a queue";
        ++rejected;
    }
    EXPECT_GE(admitted, 1);
    EXPECT_LE(admitted, kQueue) << "more requests admitted than http_max_queued_requests";
    EXPECT_EQ(admitted + rejected, kBurst);

    // A burst of starts beyond the small queues: each is a 201 or a prompt 503 OVERLOADED,
    // and every 201 exists.
    HttpClient client(port, 20s);
    auto deployed =
        client.send_xml("POST", "/api/v1/processes", runtime::models::user_task("Burst"));
    ASSERT_TRUE(deployed.ok() && deployed.value().status == 201);
    LoadLog log;
    go = false;
    ready = 0;
    std::vector<std::thread> starts;
    for (int i = 0; i < kBurst; ++i) {
        starts.emplace_back([&, i] {
            HttpClient starter(port, 20s);
            (void)starter.connect();
            ++ready;
            while (!go.load()) {
                std::this_thread::sleep_for(1ms);
            }
            const std::string key = "burst-" + std::to_string(i);
            const auto answer = log.call(starter, "POST", "/api/v1/processes/Burst/instances",
                                         json{{"business_key", key}}.dump());
            std::lock_guard lock(log.mutex);
            if (answer.reached && answer.response.status == 201) {
                log.acknowledged.push_back(answer.response.json()["data"].value("id", ""));
            } else {
                log.refused_starts.push_back(key);
            }
        });
    }
    ASSERT_TRUE(eventually(10s, [&] { return ready.load() == kBurst; }));
    go = true;
    for (auto& thread : starts) {
        thread.join();
    }
    for (const auto& answer : log.answers) {
        ASSERT_TRUE(answer.reached) << answer.error;
        if (answer.response.status != 201) {
            EXPECT_TRUE(is_unavailable(answer.response, {"OVERLOADED"}));
            EXPECT_LT(answer.took, 1s);
        }
    }
    EXPECT_GE(log.acknowledged.size(), 1u);
    Problems problems;
    check_nothing_half_written(client, "Burst", log, problems);
    EXPECT_TRUE(problems.none());
    std::cout << "long polls: " << admitted << " admitted, " << rejected
              << " refused; starts: " << log.acknowledged.size() << " of " << kBurst
              << " admitted; slowest /health "
              << std::chrono::duration_cast<std::chrono::milliseconds>(slowest_health).count()
              << " ms\n";
}

}  // namespace
}  // namespace pythmata::test::chaos
