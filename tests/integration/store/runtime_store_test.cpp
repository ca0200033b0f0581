// The RuntimeStore suite, run against both backends: a temp SQLite file and a real PostgreSQL 15
// (tests/support/postgres, one schema per test). Group commit and its rollback, every query with
// its filters and paging, job and timer acquisition under concurrency, idempotency claims, the
// DELETE cascade, and PostgreSQL outage and recovery.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cutting_proxy.hpp"
#include "postgres/statements.hpp"
#include "postgres_server.hpp"
#include "pythmata/common/uuid.hpp"
#include "pythmata/metrics/registry.hpp"
#include "pythmata/store/store.hpp"

namespace pythmata::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using app::WaitRowKind;

enum class Backend { kSqlite, kPostgres };

void PrintTo(Backend backend, std::ostream* out) {
    *out << (backend == Backend::kSqlite ? "sqlite" : "postgresql");
}

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
    return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

test::PostgresServer* shared_postgres(std::string& why) {
    static std::string failure;
    static std::unique_ptr<test::PostgresServer> server = test::PostgresServer::start_new(failure);
    why = failure;
    return server.get();
}

std::string unique_name(const std::string& prefix) {
    static std::atomic<int> counter{0};
    return prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
}

TimePoint at(std::int64_t ms) {
    return from_epoch_ms(1'800'000'000'000 + ms);
}

/// Bytes that are not text: NULs, high bytes, quotes and backslashes.
std::string binary_state(int seed) {
    std::string bytes;
    for (int i = 0; i < 300; ++i) {
        bytes.push_back(static_cast<char>((i * 37 + seed) % 256));
    }
    bytes += "\"\\'{}, NULL";
    return bytes;
}

/// Counts rows on the test's own connection.
class Sql {
  public:
    virtual ~Sql() = default;
    virtual std::int64_t count(const std::string& sql) = 0;
    /// Runs statements that return nothing (DDL, inserts); throws on failure.
    virtual void exec(const std::string& sql) = 0;
};

class SqliteSql final : public Sql {
  public:
    explicit SqliteSql(const std::string& path) {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
            throw std::runtime_error("cannot open " + path);
        }
        sqlite3_busy_timeout(db_, 5000);
    }
    ~SqliteSql() override { sqlite3_close_v2(db_); }
    std::int64_t count(const std::string& sql) override {
        sqlite3_stmt* stmt = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
            throw std::runtime_error(std::string(sqlite3_errmsg(db_)) + " in " + sql);
        }
        std::int64_t value = -1;
        if (sqlite3_step(stmt) == SQLITE_ROW) {
            value = sqlite3_column_int64(stmt, 0);
        }
        sqlite3_finalize(stmt);
        return value;
    }
    void exec(const std::string& sql) override {
        char* message = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
            const std::string what = message == nullptr ? "?" : message;
            sqlite3_free(message);
            throw std::runtime_error(what + " in " + sql);
        }
    }

  private:
    sqlite3* db_ = nullptr;
};

class PostgresSql final : public Sql {
  public:
    explicit PostgresSql(const std::string& url) : connection_(url) {}
    std::int64_t count(const std::string& sql) override {
        pqxx::nontransaction tx(connection_);
        return tx.exec1(sql)[0].as<std::int64_t>();
    }
    void exec(const std::string& sql) override {
        pqxx::nontransaction tx(connection_);
        tx.exec(sql);
    }

  private:
    pqxx::connection connection_;
};

// ---- Row builders -----------------------------------------------------------------------

app::InstanceRow instance_row(const app::DefinitionRecord& definition, TimePoint created) {
    app::InstanceRow row;
    row.id = new_uuid();
    row.definition_id = definition.id;
    row.process_key = definition.key;
    row.process_version = definition.version;
    row.status = "RUNNING";
    row.variables = {{"amount", 100}, {"name", "o'brien \"quoted\""}};
    row.state = binary_state(1);
    row.version = 0;
    row.active_elements = {"task"};
    row.created_at = created;
    row.updated_at = created;
    return row;
}

app::WaitRow wait_row(WaitRowKind kind, const std::string& instance_id, std::uint64_t wait_id,
                      const std::string& name, TimePoint created) {
    app::WaitRow row;
    row.id = new_uuid();
    row.kind = kind;
    row.instance_id = instance_id;
    row.wait_id = wait_id;
    row.element_id = "element_" + std::to_string(wait_id);
    row.name = name;
    row.created_at = created;
    return row;
}

app::HistoryRow history_row(const std::string& instance_id, const std::string& element,
                            app::HistoryEventKind event, TimePoint when) {
    return {instance_id, element, "userTask", element + " name", event, when};
}

/// A new instance of `definition` with one open user task (wait 1) and a STARTED history row.
app::InstanceWrite new_instance(const app::DefinitionRecord& definition, TimePoint created) {
    app::InstanceWrite write;
    write.insert = true;
    write.instance = instance_row(definition, created);
    write.waits_opened.push_back(
        wait_row(WaitRowKind::kUserTask, write.instance.id, 1, "Approve", created));
    write.history.push_back(
        history_row(write.instance.id, "start", app::HistoryEventKind::kStarted, created));
    return write;
}

/// The next write of `row` (version `expected`), with nothing else changed yet.
app::InstanceWrite update_of(const app::InstanceRow& row, std::int64_t expected, TimePoint now) {
    app::InstanceWrite write;
    write.instance = row;
    write.instance.version = expected + 1;
    write.instance.updated_at = now;
    write.expected_version = expected;
    return write;
}

class RuntimeStoreTest : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        settings_.pool_size = 4;
        settings_.max_overflow = 2;
        settings_.pool_timeout = 2s;
        settings_.statement_timeout = 10s;
        settings_.connect_timeout = 2s;
        if (GetParam() == Backend::kSqlite) {
            std::string pattern = (fs::temp_directory_path() / "pythmata-runtime-XXXXXX").string();
            ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
            dir_ = pattern;
            sqlite_path_ = (dir_ / "store.db").string();
            settings_.url = "sqlite://" + sqlite_path_;
        } else {
            std::string why;
            postgres_ = shared_postgres(why);
            if (postgres_ == nullptr) {
                GTEST_SKIP() << "PostgreSQL backend skipped: " << why;
            }
            ASSERT_TRUE(postgres_->running() || postgres_->start()) << postgres_->log_tail();
            const std::string schema = unique_name("runtime");
            ASSERT_TRUE(postgres_->execute("CREATE SCHEMA " + schema)) << postgres_->log_tail();
            settings_.url = postgres_->schema_url(schema);
        }
        registry_ = std::make_unique<metrics::Registry>();
        store_ = open(settings_, *registry_);
        ASSERT_NE(store_, nullptr);
        order_ = deploy("Order", "h1");
    }

    void TearDown() override {
        store_.reset();
        if (!dir_.empty()) {
            std::error_code ec;
            fs::remove_all(dir_, ec);
        }
    }

    static std::unique_ptr<Store> open(const app::DbSettings& settings,
                                       metrics::Registry& registry) {
        auto opened = open_store(settings, registry);
        EXPECT_TRUE(opened.ok()) << opened.error().code << ": " << opened.error().message << " / "
                                 << opened.error().internal;
        return opened.ok() ? std::move(opened).value() : nullptr;
    }

    std::unique_ptr<Sql> sql() {
        if (GetParam() == Backend::kSqlite) {
            return std::make_unique<SqliteSql>(sqlite_path_);
        }
        return std::make_unique<PostgresSql>(settings_.url);
    }

    /// Commits of history stored for `instance_id` (every instance when empty): history rows
    /// and, on PostgreSQL, the first commit that a new instance's own row holds (migration 11).
    std::int64_t history_commits(const std::string& instance_id = "") {
        return stored_history("count(*)", "count(*) FILTER (WHERE history_entries > 0)",
                              instance_id);
    }

    /// Entries of history stored for `instance_id`, counted the same way.
    std::int64_t history_entries(const std::string& instance_id) {
        return stored_history("coalesce(sum(entries), 0)", "coalesce(sum(history_entries), 0)",
                              instance_id);
    }

    std::int64_t stored_history(const std::string& of_history, const std::string& of_instances,
                                const std::string& instance_id) {
        auto db = sql();
        std::int64_t stored =
            db->count("SELECT " + of_history + " FROM history" +
                      (instance_id.empty() ? "" : " WHERE instance_id = '" + instance_id + "'"));
        if (GetParam() == Backend::kPostgres) {
            stored += db->count("SELECT " + of_instances + " FROM instances" +
                                (instance_id.empty() ? "" : " WHERE id = '" + instance_id + "'"));
        }
        return stored;
    }

    app::DefinitionRecord deploy(const std::string& key, const std::string& hash) {
        auto deployed = store_->deploy(
            {{key, key + " process", "<definitions id=\"" + hash + "\"/>", hash}}, at(0));
        EXPECT_TRUE(deployed.ok());
        return deployed.ok() ? deployed.value()[0].record : app::DefinitionRecord{};
    }

    void commit_ok(const app::Batch& batch) {
        const Status committed = store_->commit(batch);
        ASSERT_TRUE(committed.ok()) << committed.error().code << ": " << committed.error().message
                                    << " / " << committed.error().internal;
    }

    /// Commits a batch of one instance write.
    void commit_one(const app::InstanceWrite& write) {
        app::Batch batch;
        batch.instances.push_back(write);
        commit_ok(batch);
    }

    app::InstanceRow stored(const std::string& id, bool with_state = false) {
        auto found = store_->instance(id, with_state);
        EXPECT_TRUE(found.ok());
        if (!found.ok() || !found.value()) {
            ADD_FAILURE() << "instance " << id << " not found";
            return {};
        }
        return *found.value();
    }

    /// A job of `type` for a new instance, due at `due`.
    app::WaitRow add_job(const std::string& type, TimePoint due) {
        app::InstanceWrite write = new_instance(order_, at(0));
        app::WaitRow job = wait_row(WaitRowKind::kJob, write.instance.id, 2, type, at(0));
        job.due_at = due;
        write.waits_opened.push_back(job);
        commit_one(write);
        return job;
    }

    app::DbSettings settings_;
    fs::path dir_;
    std::string sqlite_path_;
    test::PostgresServer* postgres_ = nullptr;
    std::unique_ptr<metrics::Registry> registry_;
    std::unique_ptr<Store> store_;
    app::DefinitionRecord order_;
};

// ---- Commit -------------------------------------------------------------------------------

TEST_P(RuntimeStoreTest, CommitWritesEveryRowKindAndReadsThemBack) {
    app::InstanceWrite write = new_instance(order_, at(10));
    const std::string id = write.instance.id;
    write.instance.business_key = "order-7";
    write.instance.active_elements = {"task", "wait_paid", "ext"};
    write.instance.parent_wait_id = 9;  // no parent instance: the column stands alone
    write.waits_opened[0].assignee = "alice";
    write.waits_opened[0].candidate_groups = {"sales", "ops"};
    write.waits_opened[0].due_at = at(5000);
    const app::WaitRow task = write.waits_opened[0];
    app::WaitRow job = wait_row(WaitRowKind::kJob, id, 2, "send-mail", at(10));
    job.payload = {{"variables", {{"to", "x@y"}}}, {"headers", nlohmann::json::object()}};
    job.retries = 5;
    job.definition_id = order_.id;
    app::WaitRow timer = wait_row(WaitRowKind::kTimer, id, 3, "Wait a day", at(10));
    timer.due_at = at(86'400'000);
    timer.repeat = -1;
    app::WaitRow message = wait_row(WaitRowKind::kMessage, id, 4, "paid", at(10));
    message.correlation_key = "order-7";
    app::WaitRow signal = wait_row(WaitRowKind::kSignal, id, 5, "alarm", at(10));
    write.waits_opened.insert(write.waits_opened.end(), {job, timer, message, signal});
    write.history.push_back(history_row(id, "start", app::HistoryEventKind::kCompleted, at(10)));
    write.history.push_back(history_row(id, "task", app::HistoryEventKind::kStarted, at(11)));
    app::IncidentRow incident{new_uuid(), id,           7,      std::nullopt, "script",
                              "SCRIPT",   "boom \"x\"", "OPEN", at(12),       std::nullopt};
    write.incidents_opened.push_back(incident);
    commit_one(write);

    const app::InstanceRow row = stored(id, true);
    EXPECT_EQ(row.definition_id, order_.id);
    EXPECT_EQ(row.process_key, "Order");
    EXPECT_EQ(row.process_version, 1);
    EXPECT_EQ(row.business_key, "order-7");
    EXPECT_EQ(row.status, "RUNNING");
    EXPECT_EQ(row.variables, write.instance.variables);
    EXPECT_EQ(row.state, binary_state(1));
    EXPECT_EQ(row.version, 0);
    EXPECT_EQ(row.parent_wait_id, std::optional<std::uint64_t>(9));
    EXPECT_FALSE(row.parent_instance_id.has_value());
    EXPECT_EQ(row.active_elements, write.instance.active_elements);
    EXPECT_EQ(row.open_incidents, 1);
    EXPECT_EQ(row.created_at, at(10));
    EXPECT_EQ(row.updated_at, at(10));
    EXPECT_FALSE(row.ended_at.has_value());
    EXPECT_TRUE(stored(id, false).state.empty());

    auto stored_task = store_->task(task.id);
    ASSERT_TRUE(stored_task.ok() && stored_task.value().has_value());
    EXPECT_EQ(stored_task.value()->instance_id, id);
    EXPECT_EQ(stored_task.value()->wait_id, 1u);
    EXPECT_EQ(stored_task.value()->process_key, "Order");
    EXPECT_EQ(stored_task.value()->element_id, "element_1");
    EXPECT_EQ(stored_task.value()->name, "Approve");
    EXPECT_EQ(stored_task.value()->assignee, "alice");
    EXPECT_EQ(stored_task.value()->candidate_groups, task.candidate_groups);
    EXPECT_EQ(stored_task.value()->state, "OPEN");
    EXPECT_EQ(stored_task.value()->created_at, at(10));
    EXPECT_EQ(stored_task.value()->due_at, at(5000));
    EXPECT_FALSE(stored_task.value()->completed_at.has_value());

    auto stored_job = store_->job(job.id);
    ASSERT_TRUE(stored_job.ok() && stored_job.value().has_value());
    EXPECT_EQ(stored_job.value()->kind, "job");
    EXPECT_EQ(stored_job.value()->type, "send-mail");
    EXPECT_EQ(stored_job.value()->instance_id, id);
    EXPECT_EQ(stored_job.value()->definition_id, order_.id);
    EXPECT_EQ(stored_job.value()->wait_id, 2u);
    EXPECT_EQ(stored_job.value()->due_at, at(10));  // a job without due_at is due at once
    EXPECT_EQ(stored_job.value()->retries, 5);
    EXPECT_EQ(stored_job.value()->payload, job.payload);
    EXPECT_FALSE(stored_job.value()->lock_owner.has_value());

    auto timers = store_->list_timers(id, {});
    ASSERT_TRUE(timers.ok());
    ASSERT_EQ(timers.value().items.size(), 1u);
    EXPECT_EQ(timers.value().items[0].id, timer.id);
    EXPECT_EQ(timers.value().items[0].type, "timer");
    EXPECT_EQ(timers.value().items[0].due_at, at(86'400'000));
    EXPECT_EQ(timers.value().items[0].repeat, -1);
    EXPECT_EQ(timers.value().items[0].wait_id, 3u);

    auto matched = store_->find_message_subscription("paid", "order-7");
    ASSERT_TRUE(matched.ok() && matched.value().has_value());
    EXPECT_EQ(matched.value()->id, message.id);
    EXPECT_EQ(matched.value()->instance_id, id);
    EXPECT_EQ(matched.value()->wait_id, 4u);
    EXPECT_EQ(matched.value()->element_id, "element_4");

    auto signals = store_->signal_subscriptions("alarm");
    ASSERT_TRUE(signals.ok());
    ASSERT_EQ(signals.value().size(), 1u);
    EXPECT_EQ(signals.value()[0].id, signal.id);
    EXPECT_EQ(signals.value()[0].wait_id, 5u);

    auto stored_incident = store_->incident(incident.id);
    ASSERT_TRUE(stored_incident.ok() && stored_incident.value().has_value());
    EXPECT_EQ(stored_incident.value()->instance_id, id);
    EXPECT_EQ(stored_incident.value()->engine_incident_id, 7u);
    EXPECT_EQ(stored_incident.value()->kind, "SCRIPT");
    EXPECT_EQ(stored_incident.value()->message, "boom \"x\"");
    EXPECT_EQ(stored_incident.value()->state, "OPEN");
    EXPECT_EQ(stored_incident.value()->created_at, at(12));

    auto history = store_->history(id, {1, 20});
    ASSERT_TRUE(history.ok());
    ASSERT_EQ(history.value().total, 3);
    EXPECT_EQ(history.value().items[0].event, app::HistoryEventKind::kStarted);
    EXPECT_EQ(history.value().items[1].event, app::HistoryEventKind::kCompleted);
    EXPECT_EQ(history.value().items[2].element_id, "task");
    EXPECT_EQ(history.value().items[2].element_type, "userTask");
    EXPECT_EQ(history.value().items[2].name, "task name");
    EXPECT_EQ(history.value().items[2].at, at(11));
}

TEST_P(RuntimeStoreTest, SeveralInstancesAreReadInOneCallWithOrWithoutState) {
    std::vector<std::string> ids;
    app::Batch batch;
    for (int i = 0; i < 5; ++i) {
        app::InstanceWrite write = new_instance(order_, at(10 + i));
        ids.push_back(write.instance.id);
        batch.instances.push_back(std::move(write));
    }
    commit_ok(batch);
    // Two of them, an unknown id and a text that is no UUID: the two come back.
    auto some = store_->instances({ids[1], new_uuid(), ids[3], "not-a-uuid"}, true);
    ASSERT_TRUE(some.ok()) << some.error().message;
    ASSERT_EQ(some.value().size(), 2u);
    std::set<std::string> found;
    for (const auto& row : some.value()) {
        found.insert(row.id);
        const app::InstanceRow one = stored(row.id, true);
        EXPECT_EQ(row.state, one.state) << "with_state reads the state";
        EXPECT_FALSE(row.state.empty());
        EXPECT_EQ(row.version, one.version);
        EXPECT_EQ(row.process_key, one.process_key);
    }
    EXPECT_EQ(found, (std::set<std::string>{ids[1], ids[3]}));
    auto all = store_->instances(ids, false);
    ASSERT_TRUE(all.ok()) << all.error().message;
    EXPECT_EQ(all.value().size(), ids.size());
    for (const auto& row : all.value()) {
        EXPECT_TRUE(row.state.empty()) << "without state";
    }
    auto none = store_->instances({}, true);
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none.value().empty());
}

TEST_P(RuntimeStoreTest, UpdateClosesWaitsAndBumpsTheVersion) {
    app::InstanceWrite first = new_instance(order_, at(0));
    const std::string id = first.instance.id;
    app::WaitRow second_task = wait_row(WaitRowKind::kUserTask, id, 2, "Review", at(0));
    app::WaitRow job = wait_row(WaitRowKind::kJob, id, 3, "mail", at(0));
    app::WaitRow timer = wait_row(WaitRowKind::kTimer, id, 4, "t", at(0));
    timer.due_at = at(100);
    app::WaitRow message = wait_row(WaitRowKind::kMessage, id, 5, "paid", at(0));
    app::WaitRow signal = wait_row(WaitRowKind::kSignal, id, 6, "alarm", at(0));
    first.waits_opened.insert(first.waits_opened.end(), {second_task, job, timer, message, signal});
    commit_one(first);

    app::InstanceWrite next = update_of(first.instance, 0, at(50));
    next.instance.status = "COMPLETED";
    next.instance.ended_at = at(50);
    next.instance.variables = {{"done", true}};
    next.instance.state = binary_state(2);
    next.instance.active_elements = {};
    next.waits_closed = {1, 2, 3, 4, 5, 6};
    next.tasks_completed = {1};
    next.history.push_back(history_row(id, "end", app::HistoryEventKind::kCompleted, at(50)));
    commit_one(next);

    const app::InstanceRow row = stored(id, true);
    EXPECT_EQ(row.version, 1);
    EXPECT_EQ(row.status, "COMPLETED");
    EXPECT_EQ(row.ended_at, at(50));
    EXPECT_EQ(row.updated_at, at(50));
    EXPECT_EQ(row.variables, next.instance.variables);
    EXPECT_EQ(row.state, binary_state(2));
    EXPECT_TRUE(row.active_elements.empty());

    auto completed = store_->task(first.waits_opened[0].id);
    ASSERT_TRUE(completed.ok() && completed.value().has_value());
    EXPECT_EQ(completed.value()->state, "COMPLETED");
    EXPECT_EQ(completed.value()->completed_at, at(50));
    auto cancelled = store_->task(second_task.id);
    ASSERT_TRUE(cancelled.ok() && cancelled.value().has_value());
    EXPECT_EQ(cancelled.value()->state, "CANCELLED");
    auto gone_job = store_->job(job.id);
    ASSERT_TRUE(gone_job.ok());
    EXPECT_FALSE(gone_job.value().has_value());
    auto timers = store_->list_timers(std::nullopt, {});
    ASSERT_TRUE(timers.ok());
    EXPECT_TRUE(timers.value().items.empty());
    auto no_message = store_->find_message_subscription("paid", std::nullopt);
    ASSERT_TRUE(no_message.ok());
    EXPECT_FALSE(no_message.value().has_value());
    auto no_signal = store_->signal_subscriptions("alarm");
    ASSERT_TRUE(no_signal.ok());
    EXPECT_TRUE(no_signal.value().empty());
}

TEST_P(RuntimeStoreTest, AReArmedTimerClosesAndReopensItsWaitIdInOneWrite) {
    app::InstanceWrite write = new_instance(order_, at(0));
    app::WaitRow timer = wait_row(WaitRowKind::kTimer, write.instance.id, 2, "cycle", at(0));
    timer.due_at = at(100);
    timer.repeat = 2;
    write.waits_opened.push_back(timer);
    commit_one(write);

    app::InstanceWrite fired = update_of(write.instance, 0, at(100));
    app::WaitRow rearmed = timer;
    rearmed.id = new_uuid();
    rearmed.due_at = at(200);
    rearmed.repeat = 1;
    fired.waits_closed = {2};
    fired.waits_opened = {rearmed};
    commit_one(fired);
    auto timers = store_->list_timers(write.instance.id, {});
    ASSERT_TRUE(timers.ok());
    ASSERT_EQ(timers.value().items.size(), 1u);
    EXPECT_EQ(timers.value().items[0].id, rearmed.id);
    EXPECT_EQ(timers.value().items[0].wait_id, 2u);
    EXPECT_EQ(timers.value().items[0].due_at, at(200));
}

TEST_P(RuntimeStoreTest, StaleVersionRollsBackTheWholeBatchWithDbConflict) {
    app::InstanceWrite a = new_instance(order_, at(0));
    app::InstanceWrite b = new_instance(order_, at(1));
    app::Batch setup;
    setup.instances = {a, b};
    commit_ok(setup);

    app::Batch batch;
    app::InstanceWrite a_next = update_of(a.instance, 0, at(5));
    a_next.instance.status = "SUSPENDED";
    a_next.waits_closed = {1};
    a_next.tasks_completed = {1};
    a_next.history.push_back(
        history_row(a.instance.id, "task", app::HistoryEventKind::kCompleted, at(5)));
    app::InstanceWrite c = new_instance(order_, at(5));
    app::InstanceWrite b_stale = update_of(b.instance, 3, at(5));  // stored version is 0
    b_stale.instance.status = "CANCELLED";
    batch.instances = {a_next, c, b_stale};
    batch.idempotency.push_back({"key-1", "hash", 201, "{}", at(5)});

    const Status committed = store_->commit(batch);
    ASSERT_FALSE(committed.ok());
    EXPECT_EQ(committed.error().code, "DB_CONFLICT");
    EXPECT_EQ(committed.error().kind, ErrorKind::kConflict);
    EXPECT_EQ(committed.error().context.value("instance_id", ""), b.instance.id);

    EXPECT_EQ(stored(a.instance.id).status, "RUNNING");
    EXPECT_EQ(stored(a.instance.id).version, 0);
    EXPECT_EQ(stored(b.instance.id).status, "RUNNING");
    auto c_row = store_->instance(c.instance.id, false);
    ASSERT_TRUE(c_row.ok());
    EXPECT_FALSE(c_row.value().has_value());
    auto task = store_->task(a.waits_opened[0].id);
    ASSERT_TRUE(task.ok() && task.value().has_value());
    EXPECT_EQ(task.value()->state, "OPEN");
    auto history = store_->history(a.instance.id, {1, 20});
    ASSERT_TRUE(history.ok());
    EXPECT_EQ(history.value().total, 1);
    auto claim = store_->claim_idempotency_key("key-1", "hash", at(6), at(0));
    ASSERT_TRUE(claim.ok());
    EXPECT_TRUE(claim.value().claimed);  // the record of the failed batch was not written
}

TEST_P(RuntimeStoreTest, TwoReplicasUpdatingOneVersionOnlyOneWins) {
    app::InstanceWrite a = new_instance(order_, at(0));
    commit_one(a);
    metrics::Registry other;
    auto replica = open(settings_, other);
    ASSERT_NE(replica, nullptr);
    app::InstanceWrite mine = update_of(a.instance, 0, at(1));
    mine.instance.status = "SUSPENDED";
    app::InstanceWrite theirs = update_of(a.instance, 0, at(1));
    theirs.instance.status = "CANCELLED";
    app::Batch first;
    first.instances = {mine};
    app::Batch second;
    second.instances = {theirs};
    auto one = std::async(std::launch::async, [&] { return store_->commit(first).ok(); });
    auto two = std::async(std::launch::async, [&] { return replica->commit(second).ok(); });
    const bool mine_won = one.get();
    const bool theirs_won = two.get();
    EXPECT_NE(mine_won, theirs_won);
    EXPECT_EQ(stored(a.instance.id).version, 1);
    EXPECT_EQ(stored(a.instance.id).status, mine_won ? "SUSPENDED" : "CANCELLED");
}

TEST_P(RuntimeStoreTest, DuplicateIdIsAConflictAndWritesNothing) {
    app::InstanceWrite a = new_instance(order_, at(0));
    commit_one(a);
    app::Batch batch;
    app::InstanceWrite fresh = new_instance(order_, at(1));
    app::InstanceWrite again = a;
    batch.instances = {fresh, again};
    const Status committed = store_->commit(batch);
    ASSERT_FALSE(committed.ok());
    EXPECT_EQ(committed.error().code, "DB_CONFLICT");
    auto row = store_->instance(fresh.instance.id, false);
    ASSERT_TRUE(row.ok());
    EXPECT_FALSE(row.value().has_value());
}

TEST_P(RuntimeStoreTest, InstanceOfAVanishedDefinitionIsAConflictAndWritesNothing) {
    app::InstanceWrite fine = new_instance(order_, at(0));
    app::DefinitionRecord gone = order_;
    gone.id = new_uuid();
    app::InstanceWrite orphan = new_instance(gone, at(0));
    app::Batch batch;
    batch.instances = {fine, orphan};
    const Status committed = store_->commit(batch);
    ASSERT_FALSE(committed.ok());
    EXPECT_EQ(committed.error().code, "DB_CONFLICT") << committed.error().internal;
    auto row = store_->instance(fine.instance.id, false);
    ASSERT_TRUE(row.ok());
    EXPECT_FALSE(row.value().has_value());
    // The writer is usable afterwards.
    commit_one(fine);
}

/// A new instance that ends in its first batch: no waits, its history in the same write.
app::InstanceWrite straight_through(const app::DefinitionRecord& definition, TimePoint created) {
    app::InstanceWrite write;
    write.insert = true;
    write.instance = instance_row(definition, created);
    write.instance.status = "COMPLETED";
    write.instance.ended_at = created;
    for (const char* element : {"start", "task", "end"}) {
        write.history.push_back(
            history_row(write.instance.id, element, app::HistoryEventKind::kStarted, created));
        write.history.push_back(
            history_row(write.instance.id, element, app::HistoryEventKind::kCompleted, created));
    }
    return write;
}

TEST_P(RuntimeStoreTest, ABatchOfStraightThroughStartsIsAllOrNothing) {
    // Only new instances holding all they write: on PostgreSQL ONE statement outside a
    // transaction block (no BEGIN/COMMIT). It must still write all of them or none: a vanished
    // definition fails the whole batch with DB_CONFLICT, and the store stays usable.
    app::InstanceWrite a = straight_through(order_, at(0));
    app::InstanceWrite b = straight_through(order_, at(1));
    app::Batch ok;
    ok.instances = {a, b};
    commit_ok(ok);
    for (const auto* write : {&a, &b}) {
        EXPECT_EQ(stored(write->instance.id).status, "COMPLETED");
        auto history = store_->history(write->instance.id, {1, 20});
        ASSERT_TRUE(history.ok()) << history.error().internal;
        EXPECT_EQ(history.value().total, 6);
        ASSERT_EQ(history.value().items.size(), 6u);
        EXPECT_EQ(history.value().items[0].element_id, "start");
        EXPECT_EQ(history.value().items[5].element_id, "end");
        EXPECT_EQ(history.value().items[5].event, app::HistoryEventKind::kCompleted);
    }

    app::DefinitionRecord gone = order_;
    gone.id = new_uuid();
    app::InstanceWrite fine = straight_through(order_, at(2));
    app::InstanceWrite orphan = straight_through(gone, at(2));
    app::Batch mixed;
    mixed.instances = {fine, orphan};
    const Status committed = store_->commit(mixed);
    ASSERT_FALSE(committed.ok());
    EXPECT_EQ(committed.error().code, "DB_CONFLICT") << committed.error().internal;
    for (const auto* write : {&fine, &orphan}) {
        auto row = store_->instance(write->instance.id, false);
        ASSERT_TRUE(row.ok());
        EXPECT_FALSE(row.value().has_value());
    }
    EXPECT_EQ(history_commits(fine.instance.id), 0);

    // So is a called instance whose parent is gone (the parent's foreign key).
    app::InstanceWrite child = straight_through(order_, at(2));
    child.instance.parent_instance_id = new_uuid();
    app::Batch called;
    called.instances = {fine, child};
    const Status orphaned = store_->commit(called);
    ASSERT_FALSE(orphaned.ok());
    EXPECT_EQ(orphaned.error().code, "DB_CONFLICT") << orphaned.error().internal;
    EXPECT_FALSE(store_->instance(fine.instance.id, false).value().has_value());

    // A duplicate id is a conflict too, and nothing of its batch is written.
    app::InstanceWrite again = a;
    app::InstanceWrite next = straight_through(order_, at(3));
    app::Batch duplicate;
    duplicate.instances = {next, again};
    const Status refused = store_->commit(duplicate);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, "DB_CONFLICT");
    EXPECT_FALSE(store_->instance(next.instance.id, false).value().has_value());

    app::Batch later;
    later.instances = {fine};
    commit_ok(later);
    EXPECT_EQ(stored(fine.instance.id).status, "COMPLETED");
}

TEST_P(RuntimeStoreTest, SeveralWritesOfOneInstanceInOneBatchApplyInOrder) {
    app::InstanceWrite start = new_instance(order_, at(0));
    app::InstanceWrite complete = update_of(start.instance, 0, at(1));
    complete.waits_closed = {1};
    complete.tasks_completed = {1};
    complete.history.push_back(
        history_row(start.instance.id, "task", app::HistoryEventKind::kCompleted, at(1)));
    app::InstanceWrite finish = update_of(complete.instance, 1, at(2));
    finish.instance.status = "COMPLETED";
    finish.history.push_back(
        history_row(start.instance.id, "end", app::HistoryEventKind::kCompleted, at(2)));
    app::Batch batch;
    batch.instances = {start, complete, finish};
    commit_ok(batch);

    const app::InstanceRow row = stored(start.instance.id);
    EXPECT_EQ(row.version, 2);
    EXPECT_EQ(row.status, "COMPLETED");
    auto task = store_->task(start.waits_opened[0].id);
    ASSERT_TRUE(task.ok() && task.value().has_value());
    EXPECT_EQ(task.value()->state, "COMPLETED");
    auto history = store_->history(start.instance.id, {1, 20});
    ASSERT_TRUE(history.ok());
    ASSERT_EQ(history.value().items.size(), 3u);
    EXPECT_EQ(history.value().items[0].element_id, "start");
    EXPECT_EQ(history.value().items[1].element_id, "task");
    EXPECT_EQ(history.value().items[2].element_id, "end");
}

TEST_P(RuntimeStoreTest, CalledInstanceMayPrecedeItsCallerInTheBatch) {
    app::InstanceWrite caller = new_instance(order_, at(0));
    app::InstanceWrite called = new_instance(order_, at(0));
    called.instance.parent_instance_id = caller.instance.id;
    called.instance.parent_wait_id = 4;
    app::Batch batch;
    batch.instances = {called, caller};
    commit_ok(batch);
    const app::InstanceRow row = stored(called.instance.id);
    EXPECT_EQ(row.parent_instance_id, caller.instance.id);
    EXPECT_EQ(row.parent_wait_id, std::optional<std::uint64_t>(4));
}

// SQLite checks keys at once unless a caller follows its called instance; another forward
// reference fails at its statement and the batch is written again with keys checked at COMMIT.
TEST_P(RuntimeStoreTest, ARowReferringToALaterInstanceOfTheBatchIsWritten) {
    app::InstanceWrite first = new_instance(order_, at(0));
    app::InstanceWrite later = new_instance(order_, at(0));
    app::IncidentRow incident{new_uuid(), later.instance.id, 1,   std::nullopt,
                              "a",        "SCRIPT",          "x", "OPEN",
                              at(1),      std::nullopt};
    first.incidents_opened = {incident};
    app::Batch batch;
    batch.instances = {first, later};
    commit_ok(batch);
    EXPECT_EQ(stored(first.instance.id).id, first.instance.id);
    EXPECT_EQ(stored(later.instance.id).id, later.instance.id);
    auto read = store_->incident(incident.id);
    ASSERT_TRUE(read.ok() && read.value().has_value());
    EXPECT_EQ(read.value()->instance_id, later.instance.id);
}

TEST_P(RuntimeStoreTest, IncidentsOpenAndResolveAndTheCountFollows) {
    app::InstanceWrite write = new_instance(order_, at(0));
    const std::string id = write.instance.id;
    app::IncidentRow one{new_uuid(),   id,  1,      std::nullopt, "a",
                         "JOB_FAILED", "x", "OPEN", at(1),        std::nullopt};
    app::IncidentRow two{new_uuid(), id,  2,      std::nullopt, "b",
                         "SCRIPT",   "y", "OPEN", at(2),        std::nullopt};
    write.incidents_opened = {one, two};
    write.instance.status = "ERROR";
    commit_one(write);
    EXPECT_EQ(stored(id).open_incidents, 2);

    app::InstanceWrite resolve = update_of(write.instance, 0, at(10));
    resolve.instance.status = "RUNNING";
    resolve.incidents_resolved = {1};
    commit_one(resolve);
    EXPECT_EQ(stored(id).open_incidents, 1);
    auto resolved = store_->incident(one.id);
    ASSERT_TRUE(resolved.ok() && resolved.value().has_value());
    EXPECT_EQ(resolved.value()->state, "RESOLVED");
    EXPECT_EQ(resolved.value()->resolved_at, at(10));

    app::IncidentFilter open;
    open.state = "OPEN";
    auto open_list = store_->list_incidents(open, {1, 20});
    ASSERT_TRUE(open_list.ok());
    ASSERT_EQ(open_list.value().total, 1);
    EXPECT_EQ(open_list.value().items[0].id, two.id);
    app::IncidentFilter mine;
    mine.instance_id = id;
    auto all = store_->list_incidents(mine, {1, 20});
    ASSERT_TRUE(all.ok());
    ASSERT_EQ(all.value().total, 2);
    EXPECT_EQ(all.value().items[0].id, two.id);  // newest first
    mine.instance_id = new_uuid();
    auto other = store_->list_incidents(mine, {1, 20});
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(other.value().total, 0);
}

// ---- Queries ------------------------------------------------------------------------------

TEST_P(RuntimeStoreTest, ListInstancesFiltersAndPagesNewestFirst) {
    const app::DefinitionRecord invoice = deploy("Invoice", "i1");
    std::vector<std::string> order_ids;
    app::Batch batch;
    for (int i = 0; i < 5; ++i) {
        app::InstanceWrite write = new_instance(order_, at(100 + i));
        write.instance.business_key = "bk-" + std::to_string(i % 2);
        if (i == 4) {
            write.instance.status = "COMPLETED";
        }
        order_ids.push_back(write.instance.id);
        batch.instances.push_back(write);
    }
    batch.instances.push_back(new_instance(invoice, at(200)));
    commit_ok(batch);

    auto all = store_->list_instances({}, {1, 20});
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all.value().total, 6);
    ASSERT_EQ(all.value().items.size(), 6u);
    EXPECT_EQ(all.value().items[0].process_key, "Invoice");
    EXPECT_EQ(all.value().items[1].id, order_ids[4]);
    EXPECT_TRUE(all.value().items[1].state.empty());

    app::InstanceFilter filter;
    filter.process_key = "Order";
    filter.status = "RUNNING";
    auto running = store_->list_instances(filter, {1, 2});
    ASSERT_TRUE(running.ok());
    EXPECT_EQ(running.value().total, 4);
    ASSERT_EQ(running.value().items.size(), 2u);
    EXPECT_EQ(running.value().items[0].id, order_ids[3]);
    EXPECT_EQ(running.value().items[1].id, order_ids[2]);
    auto page2 = store_->list_instances(filter, {2, 2});
    ASSERT_TRUE(page2.ok());
    ASSERT_EQ(page2.value().items.size(), 2u);
    EXPECT_EQ(page2.value().items[1].id, order_ids[0]);
    EXPECT_EQ(page2.value().total, 4);
    auto last = store_->list_instances(filter, {2, 3});  // a partial page after the first
    ASSERT_TRUE(last.ok());
    EXPECT_EQ(last.value().total, 4);
    ASSERT_EQ(last.value().items.size(), 1u);
    EXPECT_EQ(last.value().items[0].id, order_ids[0]);
    auto beyond = store_->list_instances(filter, {3, 2});
    ASSERT_TRUE(beyond.ok());
    EXPECT_EQ(beyond.value().total, 4);
    EXPECT_TRUE(beyond.value().items.empty());

    app::InstanceFilter by_key;
    by_key.business_key = "bk-1";
    auto keyed = store_->list_instances(by_key, {1, 20});
    ASSERT_TRUE(keyed.ok());
    EXPECT_EQ(keyed.value().total, 2);

    app::InstanceFilter window;
    window.created_after = at(100);
    window.created_before = at(104);
    auto windowed = store_->list_instances(window, {1, 20});
    ASSERT_TRUE(windowed.ok());
    ASSERT_EQ(windowed.value().total, 3);
    EXPECT_EQ(windowed.value().items[0].id, order_ids[3]);
    EXPECT_EQ(windowed.value().items[2].id, order_ids[1]);

    // Filter values are data, never SQL.
    app::InstanceFilter hostile;
    hostile.process_key = "Order' OR '1'='1";
    auto none = store_->list_instances(hostile, {1, 20});
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none.value().total, 0);

    auto unfinished = store_->unfinished_instances("Order");
    ASSERT_TRUE(unfinished.ok());
    EXPECT_EQ(unfinished.value().size(), 4u);
    EXPECT_EQ(std::count(unfinished.value().begin(), unfinished.value().end(), order_ids[4]), 0);
}

TEST_P(RuntimeStoreTest, UnknownAndMalformedIdsAreEmptyNotErrors) {
    for (const std::string& id : {new_uuid(), std::string("not-a-uuid")}) {
        auto instance = store_->instance(id, true);
        ASSERT_TRUE(instance.ok()) << id;
        EXPECT_FALSE(instance.value().has_value());
        auto task = store_->task(id);
        ASSERT_TRUE(task.ok());
        EXPECT_FALSE(task.value().has_value());
        auto job = store_->job(id);
        ASSERT_TRUE(job.ok());
        EXPECT_FALSE(job.value().has_value());
        auto incident = store_->incident(id);
        ASSERT_TRUE(incident.ok());
        EXPECT_FALSE(incident.value().has_value());
        auto claimed = store_->claim_task(id, "bob");
        ASSERT_TRUE(claimed.ok());
        EXPECT_FALSE(claimed.value());
        auto history = store_->history(id, {1, 20});
        ASSERT_TRUE(history.ok());
        EXPECT_EQ(history.value().total, 0);
        const Status failed = store_->fail_job(id, 1, "x", at(0));
        ASSERT_FALSE(failed.ok());
        EXPECT_EQ(failed.error().code, "JOB_NOT_FOUND");
        EXPECT_EQ(failed.error().kind, ErrorKind::kNotFound);
        const Status rescheduled = store_->reschedule_timer(id, at(1), 0);
        ASSERT_FALSE(rescheduled.ok());
        EXPECT_EQ(rescheduled.error().code, "TIMER_NOT_FOUND");
    }
}

TEST_P(RuntimeStoreTest, ListTasksFiltersByEveryField) {
    const app::DefinitionRecord invoice = deploy("Invoice", "i1");
    app::InstanceWrite a = new_instance(order_, at(0));
    a.waits_opened[0].candidate_groups = {"sales", "ops"};
    a.waits_opened[0].assignee = "alice";
    app::WaitRow a2 = wait_row(WaitRowKind::kUserTask, a.instance.id, 2, "Ship", at(5));
    a2.candidate_groups = {"warehouse"};
    a.waits_opened.push_back(a2);
    app::InstanceWrite b = new_instance(invoice, at(1));
    b.waits_opened[0].candidate_groups = {"salesforce"};
    app::Batch batch;
    batch.instances = {a, b};
    commit_ok(batch);

    auto open = store_->list_tasks({}, {1, 20});
    ASSERT_TRUE(open.ok());
    ASSERT_EQ(open.value().total, 3);
    EXPECT_EQ(open.value().items[0].id, a2.id);  // newest first
    EXPECT_EQ(open.value().items[1].process_key, "Invoice");

    app::TaskFilter by_group;
    by_group.candidate_group = "sales";
    auto sales = store_->list_tasks(by_group, {1, 20});
    ASSERT_TRUE(sales.ok());
    ASSERT_EQ(sales.value().total, 1);  // "salesforce" is another group
    EXPECT_EQ(sales.value().items[0].id, a.waits_opened[0].id);

    app::TaskFilter by_process;
    by_process.process_key = "Order";
    auto order_tasks = store_->list_tasks(by_process, {1, 1});
    ASSERT_TRUE(order_tasks.ok());
    EXPECT_EQ(order_tasks.value().total, 2);
    EXPECT_EQ(order_tasks.value().items.size(), 1u);

    app::TaskFilter by_assignee;
    by_assignee.assignee = "alice";
    auto alice = store_->list_tasks(by_assignee, {1, 20});
    ASSERT_TRUE(alice.ok());
    EXPECT_EQ(alice.value().total, 1);

    app::TaskFilter by_element;
    by_element.element_id = "element_2";
    by_element.instance_id = a.instance.id;
    auto element = store_->list_tasks(by_element, {1, 20});
    ASSERT_TRUE(element.ok());
    ASSERT_EQ(element.value().total, 1);
    EXPECT_EQ(element.value().items[0].id, a2.id);

    app::InstanceWrite done = update_of(a.instance, 0, at(9));
    done.waits_closed = {1};
    done.tasks_completed = {1};
    commit_one(done);
    app::TaskFilter completed;
    completed.state = "COMPLETED";
    auto finished = store_->list_tasks(completed, {1, 20});
    ASSERT_TRUE(finished.ok());
    ASSERT_EQ(finished.value().total, 1);
    EXPECT_EQ(finished.value().items[0].id, a.waits_opened[0].id);
    app::TaskFilter any;
    any.state = "";
    auto everything = store_->list_tasks(any, {1, 20});
    ASSERT_TRUE(everything.ok());
    EXPECT_EQ(everything.value().total, 3);
}

TEST_P(RuntimeStoreTest, TasksOfOneInstancePageInEveryStateWithTheTotal) {
    // The task page by instance is its own statement on PostgreSQL: the same answers as the
    // general one, in any state, on every page and past the end.
    app::InstanceWrite a = new_instance(order_, at(0));
    a.waits_opened.push_back(wait_row(WaitRowKind::kUserTask, a.instance.id, 2, "Ship", at(5)));
    a.waits_opened.push_back(wait_row(WaitRowKind::kUserTask, a.instance.id, 3, "Bill", at(7)));
    app::InstanceWrite other = new_instance(order_, at(1));
    app::Batch batch;
    batch.instances = {a, other};
    commit_ok(batch);
    app::InstanceWrite done = update_of(a.instance, 0, at(9));
    done.waits_closed = {1};
    done.tasks_completed = {1};
    commit_one(done);

    app::TaskFilter open_of_a;
    open_of_a.instance_id = a.instance.id;
    auto open = store_->list_tasks(open_of_a, {1, 20});
    ASSERT_TRUE(open.ok()) << open.error().internal;
    ASSERT_EQ(open.value().total, 2);
    ASSERT_EQ(open.value().items.size(), 2u);
    EXPECT_EQ(open.value().items[0].id, a.waits_opened[2].id);  // newest first
    EXPECT_EQ(open.value().items[1].id, a.waits_opened[1].id);
    EXPECT_EQ(open.value().items[0].process_key, "Order");

    app::TaskFilter any_of_a = open_of_a;
    any_of_a.state = "";
    auto any = store_->list_tasks(any_of_a, {2, 2});
    ASSERT_TRUE(any.ok());
    EXPECT_EQ(any.value().total, 3);
    ASSERT_EQ(any.value().items.size(), 1u);
    EXPECT_EQ(any.value().items[0].id, a.waits_opened[0].id);
    EXPECT_EQ(any.value().items[0].state, "COMPLETED");

    app::TaskFilter completed_of_a = open_of_a;
    completed_of_a.state = "COMPLETED";
    auto completed = store_->list_tasks(completed_of_a, {1, 20});
    ASSERT_TRUE(completed.ok());
    ASSERT_EQ(completed.value().total, 1);
    EXPECT_EQ(completed.value().items[0].id, a.waits_opened[0].id);

    auto past_end = store_->list_tasks(open_of_a, {3, 2});
    ASSERT_TRUE(past_end.ok());
    EXPECT_TRUE(past_end.value().items.empty());
    EXPECT_EQ(past_end.value().total, 2);  // counted although no row carries it

    app::TaskFilter nobody = open_of_a;
    nobody.instance_id = new_uuid();
    auto none = store_->list_tasks(nobody, {1, 20});
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none.value().total, 0);
    EXPECT_TRUE(none.value().items.empty());

    // With a further filter the general statement answers.
    app::TaskFilter shipping = open_of_a;
    shipping.element_id = "element_2";
    auto ship = store_->list_tasks(shipping, {1, 20});
    ASSERT_TRUE(ship.ok());
    ASSERT_EQ(ship.value().total, 1);
    EXPECT_EQ(ship.value().items[0].id, a.waits_opened[1].id);
}

TEST_P(RuntimeStoreTest, ClaimSetsTheAssigneeOfOpenTasksOnly) {
    app::InstanceWrite write = new_instance(order_, at(0));
    app::WaitRow other = wait_row(WaitRowKind::kUserTask, write.instance.id, 2, "Other", at(0));
    write.waits_opened.push_back(other);
    commit_one(write);
    const std::string task_id = write.waits_opened[0].id;

    auto claimed = store_->claim_task(task_id, "bob");
    ASSERT_TRUE(claimed.ok());
    EXPECT_TRUE(claimed.value());
    EXPECT_EQ(store_->task(task_id).value()->assignee, "bob");

    app::InstanceWrite done = update_of(write.instance, 0, at(1));
    done.waits_closed = {1};
    done.tasks_completed = {1};
    commit_one(done);
    auto late = store_->claim_task(task_id, "carol");
    ASSERT_TRUE(late.ok());
    EXPECT_FALSE(late.value());
    EXPECT_EQ(store_->task(task_id).value()->assignee, "bob");
}

TEST_P(RuntimeStoreTest, MessagesCorrelateByKeyOldestFirstElseToTheLatestStartEvent) {
    app::InstanceWrite a = new_instance(order_, at(0));
    app::WaitRow a_paid = wait_row(WaitRowKind::kMessage, a.instance.id, 2, "paid", at(10));
    a_paid.correlation_key = "o-1";
    a.waits_opened.push_back(a_paid);
    app::InstanceWrite b = new_instance(order_, at(0));
    app::WaitRow b_paid = wait_row(WaitRowKind::kMessage, b.instance.id, 2, "paid", at(5));
    b_paid.correlation_key = "o-2";
    b.waits_opened.push_back(b_paid);
    app::Batch batch;
    batch.instances = {a, b};
    // Message start events of two versions of Order: only the latest counts.
    const app::DefinitionRecord order_v2 = deploy("Order", "h2");
    app::WaitRow start_v1 = wait_row(WaitRowKind::kMessage, "", 0, "paid", at(1));
    app::WaitRow start_v2 = wait_row(WaitRowKind::kMessage, "", 0, "paid", at(2));
    batch.start_events = {{order_.id, {start_v1}}, {order_v2.id, {start_v2}}};
    commit_ok(batch);

    auto by_key = store_->find_message_subscription("paid", "o-1");
    ASSERT_TRUE(by_key.ok() && by_key.value().has_value());
    EXPECT_EQ(by_key.value()->id, a_paid.id);
    EXPECT_EQ(by_key.value()->instance_id, a.instance.id);
    auto any = store_->find_message_subscription("paid", std::nullopt);
    ASSERT_TRUE(any.ok() && any.value().has_value());
    EXPECT_EQ(any.value()->id, b_paid.id);  // the oldest
    auto start = store_->find_message_subscription("paid", "o-unknown");
    ASSERT_TRUE(start.ok() && start.value().has_value());
    EXPECT_EQ(start.value()->id, start_v2.id);
    EXPECT_TRUE(start.value()->instance_id.empty());
    EXPECT_EQ(start.value()->definition_id, order_v2.id);
    auto none = store_->find_message_subscription("refunded", std::nullopt);
    ASSERT_TRUE(none.ok());
    EXPECT_FALSE(none.value().has_value());
}

TEST_P(RuntimeStoreTest, SignalsReachEveryInstanceAndEveryLatestStartEvent) {
    const app::DefinitionRecord alarm = deploy("Alarm", "a1");
    app::Batch batch;
    std::set<std::string> expected;
    for (int i = 0; i < 3; ++i) {
        app::InstanceWrite write = new_instance(order_, at(i));
        app::WaitRow signal = wait_row(WaitRowKind::kSignal, write.instance.id, 2, "fire", at(i));
        expected.insert(signal.id);
        write.waits_opened.push_back(signal);
        batch.instances.push_back(write);
    }
    app::WaitRow other =
        wait_row(WaitRowKind::kSignal, batch.instances[0].instance.id, 3, "other", at(0));
    batch.instances[0].waits_opened.push_back(other);
    app::WaitRow old_start = wait_row(WaitRowKind::kSignal, "", 0, "fire", at(0));
    app::WaitRow start = wait_row(WaitRowKind::kSignal, "", 0, "fire", at(0));
    batch.start_events = {{order_.id, {old_start}}, {alarm.id, {start}}};
    commit_ok(batch);
    deploy("Order", "h2");  // the Order start event is of an old version now
    expected.insert(start.id);

    auto fired = store_->signal_subscriptions("fire");
    ASSERT_TRUE(fired.ok());
    std::set<std::string> got;
    for (const auto& row : fired.value()) {
        got.insert(row.id);
        if (row.id == start.id) {
            EXPECT_TRUE(row.instance_id.empty());
            EXPECT_EQ(row.definition_id, alarm.id);
        }
    }
    EXPECT_EQ(got, expected);
}

TEST_P(RuntimeStoreTest, StartEventsOfADefinitionAreReplacedAsAWhole) {
    app::WaitRow timer = wait_row(WaitRowKind::kTimer, "", 0, "Every hour", at(0));
    timer.due_at = at(3'600'000);
    timer.repeat = -1;
    app::WaitRow message = wait_row(WaitRowKind::kMessage, "", 0, "order", at(0));
    app::Batch first;
    first.start_events = {{order_.id, {timer, message}}};
    commit_ok(first);
    auto timers = store_->list_timers(std::nullopt, {});
    ASSERT_TRUE(timers.ok());
    ASSERT_EQ(timers.value().items.size(), 1u);
    EXPECT_EQ(timers.value().items[0].type, "timer-start");
    EXPECT_EQ(timers.value().items[0].definition_id, order_.id);
    EXPECT_TRUE(timers.value().items[0].instance_id.empty());

    app::WaitRow signal = wait_row(WaitRowKind::kSignal, "", 0, "go", at(1));
    app::Batch second;
    second.start_events = {{order_.id, {signal}}};
    commit_ok(second);
    timers = store_->list_timers(std::nullopt, {});
    ASSERT_TRUE(timers.ok());
    EXPECT_TRUE(timers.value().items.empty());
    auto message_start = store_->find_message_subscription("order", std::nullopt);
    ASSERT_TRUE(message_start.ok());
    EXPECT_FALSE(message_start.value().has_value());
    auto signals = store_->signal_subscriptions("go");
    ASSERT_TRUE(signals.ok());
    ASSERT_EQ(signals.value().size(), 1u);
}

// ---- Jobs and timers ----------------------------------------------------------------------

TEST_P(RuntimeStoreTest, AcquireLocksDueJobsOfTheTypeOldestDueFirst) {
    const app::WaitRow late = add_job("mail", at(30));
    const app::WaitRow early = add_job("mail", at(10));
    add_job("mail", at(1000));  // not due yet
    add_job("sms", at(0));      // another type

    auto acquired = store_->acquire_jobs("mail", "worker-1", 10, at(100), at(60'100));
    ASSERT_TRUE(acquired.ok()) << acquired.error().internal;
    ASSERT_EQ(acquired.value().size(), 2u);
    EXPECT_EQ(acquired.value()[0].id, early.id);
    EXPECT_EQ(acquired.value()[1].id, late.id);
    EXPECT_EQ(acquired.value()[0].lock_owner, "worker-1");
    EXPECT_EQ(acquired.value()[0].lock_expires_at, at(60'100));
    EXPECT_EQ(acquired.value()[0].type, "mail");

    auto again = store_->acquire_jobs("mail", "worker-2", 10, at(200), at(60'200));
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(again.value().empty());  // locked, not expired

    auto limited = store_->acquire_jobs("mail", "worker-2", 1, at(2000), at(3000));
    ASSERT_TRUE(limited.ok());
    ASSERT_EQ(limited.value().size(), 1u);  // the one that fell due meanwhile
    EXPECT_EQ(limited.value()[0].due_at, at(1000));
    auto none = store_->acquire_jobs("mail", "worker-2", 0, at(2000), at(3000));
    ASSERT_TRUE(none.ok());
    EXPECT_TRUE(none.value().empty());
}

TEST_P(RuntimeStoreTest, ExpiredLocksAreAcquiredAgain) {
    const app::WaitRow job = add_job("mail", at(0));
    auto first = store_->acquire_jobs("mail", "crashed", 1, at(10), at(1000));
    ASSERT_TRUE(first.ok());
    ASSERT_EQ(first.value().size(), 1u);
    auto before = store_->acquire_jobs("mail", "other", 1, at(999), at(5000));
    ASSERT_TRUE(before.ok());
    EXPECT_TRUE(before.value().empty());
    auto after = store_->acquire_jobs("mail", "other", 1, at(1000), at(5000));
    ASSERT_TRUE(after.ok());
    ASSERT_EQ(after.value().size(), 1u);
    EXPECT_EQ(after.value()[0].id, job.id);
    EXPECT_EQ(after.value()[0].lock_owner, "other");
    auto stored_job = store_->job(job.id);
    ASSERT_TRUE(stored_job.ok() && stored_job.value().has_value());
    EXPECT_EQ(stored_job.value()->lock_expires_at, at(5000));
}

/// Four acquirers, alternately on `a` and `b` (two replicas), each calling `acquire(store, t)`
/// until it returns nothing (or 200 rounds); every id handed out, in any order.
template <typename Acquire>
std::vector<std::string> acquire_concurrently(Store* a, Store* b, Acquire acquire) {
    std::mutex mutex;
    std::vector<std::string> handed_out;
    std::vector<std::future<void>> acquirers;
    for (int t = 0; t < 4; ++t) {
        Store* store = t % 2 == 0 ? a : b;
        acquirers.push_back(std::async(std::launch::async, [&, store, t] {
            for (int round = 0; round < 200; ++round) {
                auto got = acquire(store, t);
                if (!got.ok()) {
                    ADD_FAILURE() << got.error().code << " " << got.error().internal;
                    return;
                }
                if (got.value().empty()) {
                    return;
                }
                std::lock_guard lock(mutex);
                for (const auto& row : got.value()) {
                    handed_out.push_back(row.id);
                }
            }
        }));
    }
    for (auto& acquirer : acquirers) {
        EXPECT_EQ(acquirer.wait_for(60s), std::future_status::ready);
    }
    return handed_out;
}

TEST_P(RuntimeStoreTest, ConcurrentAcquirersNeverGetTheSameJob) {
    constexpr int kJobs = 120;
    app::Batch batch;
    app::InstanceWrite write = new_instance(order_, at(0));
    for (int i = 0; i < kJobs; ++i) {
        app::WaitRow job = wait_row(WaitRowKind::kJob, write.instance.id,
                                    static_cast<std::uint64_t>(10 + i), "hot", at(0));
        job.due_at = at(i);
        write.waits_opened.push_back(job);
    }
    batch.instances.push_back(write);
    commit_ok(batch);
    // Half the acquirers go through a second store object: a second replica.
    metrics::Registry other;
    auto replica = open(settings_, other);
    ASSERT_NE(replica, nullptr);

    const auto handed_out =
        acquire_concurrently(store_.get(), replica.get(), [](Store* store, int t) {
            return store->acquire_jobs("hot", "w" + std::to_string(t), 7, at(1'000), at(100'000));
        });
    std::set<std::string> unique(handed_out.begin(), handed_out.end());
    EXPECT_EQ(handed_out.size(), static_cast<std::size_t>(kJobs));
    EXPECT_EQ(unique.size(), static_cast<std::size_t>(kJobs));
}

TEST_P(RuntimeStoreTest, FailJobSetsRetriesAndBackoffAndFreesTheLock) {
    const app::WaitRow job = add_job("mail", at(0));
    ASSERT_EQ(store_->acquire_jobs("mail", "w", 1, at(1), at(10'000)).value().size(), 1u);
    ASSERT_TRUE(store_->fail_job(job.id, 2, "smtp down", at(500)).ok());
    auto failed = store_->job(job.id);
    ASSERT_TRUE(failed.ok() && failed.value().has_value());
    EXPECT_EQ(failed.value()->retries, 2);
    EXPECT_EQ(failed.value()->error_message, "smtp down");
    EXPECT_EQ(failed.value()->due_at, at(500));
    EXPECT_FALSE(failed.value()->lock_owner.has_value());
    EXPECT_FALSE(failed.value()->lock_expires_at.has_value());

    EXPECT_TRUE(store_->acquire_jobs("mail", "w", 1, at(499), at(10'000)).value().empty());
    ASSERT_EQ(store_->acquire_jobs("mail", "w", 1, at(500), at(10'000)).value().size(), 1u);
    // Out of retries: the job stays (an incident holds it) but is never handed out again.
    ASSERT_TRUE(store_->fail_job(job.id, 0, "gave up", at(600)).ok());
    EXPECT_TRUE(store_->acquire_jobs("mail", "w", 1, at(100'000), at(200'000)).value().empty());
    ASSERT_TRUE(store_->job(job.id).value().has_value());
}

TEST_P(RuntimeStoreTest, TimersFallDueInOrderAndTheNextDueTimeFollowsLocks) {
    auto empty = store_->next_timer_due();
    ASSERT_TRUE(empty.ok());
    EXPECT_FALSE(empty.value().has_value());

    app::InstanceWrite write = new_instance(order_, at(0));
    const std::string id = write.instance.id;
    for (const auto& [wait_id, due] : std::vector<std::pair<std::uint64_t, std::int64_t>>{
             {2, 300}, {3, 100}, {4, 200}, {5, 5000}}) {
        app::WaitRow timer = wait_row(WaitRowKind::kTimer, id, wait_id, "t", at(0));
        timer.due_at = at(due);
        write.waits_opened.push_back(timer);
    }
    app::WaitRow job = wait_row(WaitRowKind::kJob, id, 6, "mail", at(0));
    job.due_at = at(0);
    write.waits_opened.push_back(job);
    app::Batch batch;
    batch.instances.push_back(write);
    app::WaitRow start = wait_row(WaitRowKind::kTimer, "", 0, "cron", at(0));
    start.due_at = at(250);
    start.repeat = 3;
    batch.start_events = {{order_.id, {start}}};
    commit_ok(batch);

    auto next = store_->next_timer_due();
    ASSERT_TRUE(next.ok() && next.value().has_value());
    EXPECT_EQ(*next.value(), at(100));

    auto due = store_->acquire_timers("scheduler", 10, at(260), at(10'000));
    ASSERT_TRUE(due.ok()) << due.error().internal;
    ASSERT_EQ(due.value().size(), 3u);
    EXPECT_EQ(due.value()[0].due_at, at(100));
    EXPECT_EQ(due.value()[1].due_at, at(200));
    EXPECT_EQ(due.value()[2].id, start.id);
    EXPECT_EQ(due.value()[2].type, "timer-start");
    EXPECT_EQ(due.value()[2].repeat, 3);
    EXPECT_EQ(due.value()[0].kind, "timer");
    EXPECT_EQ(due.value()[0].instance_id, id);

    // Locked timers count again when their lock expires; the 300 ms one is free. A job a
    // worker holds is no timer: its earlier lock expiry is not the next timer.
    ASSERT_EQ(store_->acquire_jobs("mail", "w", 1, at(100), at(150)).value().size(), 1u);
    next = store_->next_timer_due();
    ASSERT_TRUE(next.ok() && next.value().has_value());
    EXPECT_EQ(*next.value(), at(300));
    auto limited = store_->acquire_timers("scheduler", 1, at(6000), at(7000));
    ASSERT_TRUE(limited.ok());
    ASSERT_EQ(limited.value().size(), 1u);
    EXPECT_EQ(limited.value()[0].due_at, at(300));
    // Every timer before 5000 is locked, until 10,000 and 7,000: the next is the 5000 one.
    next = store_->next_timer_due();
    ASSERT_TRUE(next.ok() && next.value().has_value());
    EXPECT_EQ(*next.value(), at(5000));
    // All timers locked: the earliest lease to run out, whatever the due times.
    ASSERT_EQ(store_->acquire_timers("scheduler", 1, at(6000), at(6500)).value().size(), 1u);
    next = store_->next_timer_due();
    ASSERT_TRUE(next.ok() && next.value().has_value());
    EXPECT_EQ(*next.value(), at(6500));

    // Firing closes the instance timer: its row goes.
    app::InstanceWrite fired = update_of(write.instance, 0, at(300));
    fired.waits_closed = {3};
    commit_one(fired);
    auto remaining = store_->list_timers(id, {});
    ASSERT_TRUE(remaining.ok());
    EXPECT_EQ(remaining.value().items.size(), 3u);
    auto all = store_->list_timers(std::nullopt, {});
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all.value().items.size(), 4u);
    EXPECT_EQ(all.value().total, 4);
    // Paged in due order: 200 (instance), 250 (start event), then 5000.
    auto first = store_->list_timers(std::nullopt, {1, 2});
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(first.value().total, 4);
    ASSERT_EQ(first.value().items.size(), 2u);
    EXPECT_EQ(first.value().items[0].due_at, at(200));
    EXPECT_EQ(first.value().items[1].id, start.id);
    auto second = store_->list_timers(id, {2, 1});
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(second.value().total, 3);
    ASSERT_EQ(second.value().items.size(), 1u);
    EXPECT_EQ(second.value().items[0].due_at, at(300));
}

TEST_P(RuntimeStoreTest, ClosedWaitsAreLookedForOnlyInTheTablesTheWriteNames) {
    app::InstanceWrite write = new_instance(order_, at(0));
    const std::string id = write.instance.id;
    app::WaitRow timer = wait_row(WaitRowKind::kTimer, id, 2, "t", at(0));
    timer.due_at = at(100);
    app::WaitRow message = wait_row(WaitRowKind::kMessage, id, 3, "paid", at(0));
    message.correlation_key = "k-" + id;
    app::WaitRow task = wait_row(WaitRowKind::kUserTask, id, 4, "approve", at(0));
    write.waits_opened = {timer, message, task};
    commit_one(write);

    // Names the user tasks only: the timer and the subscription stay, the task is cancelled.
    app::InstanceWrite first = update_of(write.instance, 0, at(10));
    first.waits_closed = {2, 3, 4};
    first.closed_in = app::WaitTables{true, false, false, false};
    commit_one(first);
    EXPECT_EQ(store_->list_timers(id, {}).value().items.size(), 1u);
    EXPECT_TRUE(store_->find_message_subscription("paid", "k-" + id).value().has_value());
    EXPECT_EQ(store_->task(task.id).value()->state, "CANCELLED");

    // Names jobs and messages: both rows go.
    app::InstanceWrite second = update_of(first.instance, 1, at(20));
    second.waits_closed = {2, 3};
    second.closed_in = app::WaitTables{false, true, true, false};
    commit_one(second);
    EXPECT_TRUE(store_->list_timers(id, {}).value().items.empty());
    EXPECT_FALSE(store_->find_message_subscription("paid", "k-" + id).value().has_value());
}

TEST_P(RuntimeStoreTest, RescheduleMovesAStartTimerOrDeletesIt) {
    app::WaitRow start = wait_row(WaitRowKind::kTimer, "", 0, "cron", at(0));
    start.due_at = at(100);
    start.repeat = 2;
    app::Batch batch;
    batch.start_events = {{order_.id, {start}}};
    commit_ok(batch);
    ASSERT_EQ(store_->acquire_timers("s", 5, at(100), at(9'000)).value().size(), 1u);

    ASSERT_TRUE(store_->reschedule_timer(start.id, at(200), 1).ok());
    auto moved = store_->job(start.id);
    ASSERT_TRUE(moved.ok() && moved.value().has_value());
    EXPECT_EQ(moved.value()->due_at, at(200));
    EXPECT_EQ(moved.value()->repeat, 1);
    EXPECT_FALSE(moved.value()->lock_owner.has_value());
    EXPECT_EQ(*store_->next_timer_due().value(), at(200));
    EXPECT_EQ(store_->acquire_timers("s", 5, at(200), at(9'000)).value().size(), 1u);

    ASSERT_TRUE(store_->reschedule_timer(start.id, std::nullopt, 0).ok());
    auto gone = store_->job(start.id);
    ASSERT_TRUE(gone.ok());
    EXPECT_FALSE(gone.value().has_value());
    EXPECT_FALSE(store_->next_timer_due().value().has_value());
}

// ---- Idempotency, counts, history ---------------------------------------------------------

TEST_P(RuntimeStoreTest, IdempotencyKeysAreClaimedOnceAndExpire) {
    auto first = store_->claim_idempotency_key("k", "hash-a", at(100), at(0));
    ASSERT_TRUE(first.ok()) << first.error().internal;
    EXPECT_TRUE(first.value().claimed);

    auto in_flight = store_->claim_idempotency_key("k", "hash-a", at(110), at(0));
    ASSERT_TRUE(in_flight.ok());
    EXPECT_FALSE(in_flight.value().claimed);
    ASSERT_TRUE(in_flight.value().stored.has_value());
    EXPECT_EQ(in_flight.value().stored->status, 0);
    EXPECT_EQ(in_flight.value().stored->request_hash, "hash-a");
    EXPECT_EQ(in_flight.value().stored->created_at, at(100));

    app::Batch batch;
    batch.idempotency.push_back({"k", "hash-a", 201, "{\"data\":1}", at(100)});
    commit_ok(batch);
    auto replay = store_->claim_idempotency_key("k", "hash-b", at(120), at(0));
    ASSERT_TRUE(replay.ok());
    EXPECT_FALSE(replay.value().claimed);
    ASSERT_TRUE(replay.value().stored.has_value());
    EXPECT_EQ(replay.value().stored->status, 201);
    EXPECT_EQ(replay.value().stored->body, "{\"data\":1}");
    EXPECT_EQ(replay.value().stored->request_hash, "hash-a");

    // Finished answers survive a release; only in-flight claims are dropped.
    ASSERT_TRUE(store_->release_idempotency_key("k").ok());
    EXPECT_FALSE(store_->claim_idempotency_key("k", "hash-a", at(130), at(0)).value().claimed);

    // Older than the retention window: replaced by a new claim.
    auto expired = store_->claim_idempotency_key("k", "hash-c", at(500), at(101));
    ASSERT_TRUE(expired.ok());
    EXPECT_TRUE(expired.value().claimed);
    ASSERT_TRUE(store_->release_idempotency_key("k").ok());
    EXPECT_TRUE(store_->claim_idempotency_key("k", "hash-d", at(510), at(0)).value().claimed);
}

TEST_P(RuntimeStoreTest, ConcurrentClaimsOfOneKeyHaveOneWinner) {
    metrics::Registry other;
    auto replica = open(settings_, other);
    ASSERT_NE(replica, nullptr);
    std::vector<std::future<bool>> claims;
    for (int i = 0; i < 6; ++i) {
        Store* store = i % 2 == 0 ? store_.get() : replica.get();
        claims.push_back(std::async(std::launch::async, [store] {
            auto claim = store->claim_idempotency_key("race", "h", at(1), at(0));
            EXPECT_TRUE(claim.ok());
            return claim.ok() && claim.value().claimed;
        }));
    }
    int winners = 0;
    for (auto& claim : claims) {
        winners += claim.get() ? 1 : 0;
    }
    EXPECT_EQ(winners, 1);
}

TEST_P(RuntimeStoreTest, CountsReflectInstancesAndWaits) {
    app::Batch batch;
    for (const char* status : {"RUNNING", "RUNNING", "SUSPENDED", "ERROR", "COMPLETED"}) {
        app::InstanceWrite write = new_instance(order_, at(0));
        write.instance.status = status;
        batch.instances.push_back(write);
    }
    app::InstanceWrite& first = batch.instances[0];
    app::WaitRow job = wait_row(WaitRowKind::kJob, first.instance.id, 2, "j", at(0));
    app::WaitRow timer = wait_row(WaitRowKind::kTimer, first.instance.id, 3, "t", at(0));
    timer.due_at = at(5);
    first.waits_opened.insert(first.waits_opened.end(), {job, timer});
    first.incidents_opened.push_back({new_uuid(), first.instance.id, 1, std::nullopt, "x", "K", "m",
                                      "OPEN", at(0), std::nullopt});
    commit_ok(batch);
    auto counts = store_->counts();
    ASSERT_TRUE(counts.ok());
    EXPECT_EQ(counts.value().running, 2);
    EXPECT_EQ(counts.value().suspended, 1);
    EXPECT_EQ(counts.value().error, 1);
    EXPECT_EQ(counts.value().completed, 1);
    EXPECT_EQ(counts.value().cancelled, 0);
    EXPECT_EQ(counts.value().open_tasks, 5);
    EXPECT_EQ(counts.value().pending_jobs, 1);
    EXPECT_EQ(counts.value().pending_timers, 1);
    EXPECT_EQ(counts.value().open_incidents, 1);
}

TEST_P(RuntimeStoreTest, HistoryReadsBackInTheOrderItHappenedAcrossBatchesAndPages) {
    app::InstanceWrite write = new_instance(order_, at(0));
    const std::string id = write.instance.id;
    // Equal timestamps: the order of writing decides.
    for (int i = 0; i < 4; ++i) {
        write.history.push_back(
            history_row(id, "a" + std::to_string(i), app::HistoryEventKind::kStarted, at(0)));
    }
    commit_one(write);
    app::InstanceWrite next = update_of(write.instance, 0, at(1));
    for (int i = 0; i < 3; ++i) {
        next.history.push_back(
            history_row(id, "b" + std::to_string(i), app::HistoryEventKind::kTerminated, at(1)));
    }
    commit_one(next);

    const std::vector<std::string> expected = {"start", "a0", "a1", "a2", "a3", "b0", "b1", "b2"};
    std::vector<std::string> got;
    for (int page = 1; page <= 3; ++page) {
        auto history = store_->history(id, {page, 3});
        ASSERT_TRUE(history.ok());
        EXPECT_EQ(history.value().total, 8);
        for (const auto& row : history.value().items) {
            got.push_back(row.element_id);
        }
    }
    EXPECT_EQ(got, expected);
    auto last = store_->history(id, {3, 3});
    ASSERT_TRUE(last.ok());
    EXPECT_EQ(last.value().items.back().event, app::HistoryEventKind::kTerminated);
}

/// Entries of `element_prefix`0..n-1 with event `kind` at `when`.
std::vector<app::HistoryRow> history_rows(const std::string& id, const std::string& prefix, int n,
                                          app::HistoryEventKind kind, TimePoint when) {
    std::vector<app::HistoryRow> rows;
    for (int i = 0; i < n; ++i) {
        rows.push_back(history_row(id, prefix + std::to_string(i), kind, when));
    }
    return rows;
}

TEST_P(RuntimeStoreTest, HistoryIsOneRowPerInstancePerCommitAndPagesOverItsEntries) {
    // Three commits of 5 ("start" + a0..a3), 2 and 4 entries; another instance in the second
    // batch keeps its own row.
    app::InstanceWrite write = new_instance(order_, at(0));
    const std::string id = write.instance.id;
    for (auto& row : history_rows(id, "a", 4, app::HistoryEventKind::kStarted, at(1))) {
        write.history.push_back(std::move(row));
    }
    commit_one(write);
    app::InstanceWrite second = update_of(write.instance, 0, at(2));
    second.history = history_rows(id, "b", 2, app::HistoryEventKind::kCompleted, at(2));
    app::InstanceWrite other = new_instance(order_, at(2));
    app::Batch batch;
    batch.instances = {second, other};
    commit_ok(batch);
    app::InstanceWrite third = update_of(second.instance, 1, at(3));
    third.history = history_rows(id, "c", 4, app::HistoryEventKind::kCancelled, at(3));
    commit_one(third);

    auto db = sql();
    EXPECT_EQ(history_commits(id), 3) << "one row per commit";
    EXPECT_EQ(history_entries(id), 11);
    EXPECT_EQ(history_commits(other.instance.id), 1);
    if (GetParam() == Backend::kPostgres) {
        // The first commit is in the instance's row, the two after it are history rows.
        EXPECT_EQ(db->count("SELECT count(*) FROM history WHERE instance_id = '" + id + "'"), 2);
        EXPECT_EQ(db->count("SELECT history_entries FROM instances WHERE id = '" + id + "'"), 5);
    }

    const std::vector<std::string> all = {"start", "a0", "a1", "a2", "a3", "b0",
                                          "b1",    "c0", "c1", "c2", "c3"};
    // Pages of 4 start at entries 0, 4 (the last of the first commit) and 8 (inside the third).
    for (const int size : {1, 2, 3, 4, 7, 11, 20}) {
        std::vector<std::string> got;
        for (int page = 1; page <= (11 + size - 1) / size; ++page) {
            auto history = store_->history(id, {page, size});
            ASSERT_TRUE(history.ok()) << history.error().internal;
            EXPECT_EQ(history.value().total, 11) << "page size " << size;
            EXPECT_EQ(history.value().items.size(),
                      static_cast<std::size_t>(std::min(size, 11 - (page - 1) * size)));
            for (const auto& row : history.value().items) {
                EXPECT_EQ(row.instance_id, id);
                got.push_back(row.element_id);
            }
        }
        EXPECT_EQ(got, all) << "page size " << size;
    }
    auto middle = store_->history(id, {2, 4});
    ASSERT_TRUE(middle.ok());
    ASSERT_EQ(middle.value().items.size(), 4u);
    EXPECT_EQ(middle.value().items[0].element_id, "a3");
    EXPECT_EQ(middle.value().items[0].event, app::HistoryEventKind::kStarted);
    EXPECT_EQ(middle.value().items[0].at, at(1));
    EXPECT_EQ(middle.value().items[1].event, app::HistoryEventKind::kCompleted);
    EXPECT_EQ(middle.value().items[1].at, at(2));
    EXPECT_EQ(middle.value().items[3].element_id, "c0");
    EXPECT_EQ(middle.value().items[3].event, app::HistoryEventKind::kCancelled);
    EXPECT_EQ(middle.value().items[3].at, at(3));
    auto beyond = store_->history(id, {5, 4});
    ASSERT_TRUE(beyond.ok());
    EXPECT_TRUE(beyond.value().items.empty());
    EXPECT_EQ(beyond.value().total, 11);
    auto own = store_->history(other.instance.id, {1, 20});
    ASSERT_TRUE(own.ok());
    ASSERT_EQ(own.value().total, 1);
    EXPECT_EQ(own.value().items[0].element_id, "start");
}

TEST_P(RuntimeStoreTest, HistoryEntriesAreStoredAsArraysAndRowsOfObjectsStillRead) {
    // A row as earlier builds wrote it (entries as objects), then a commit of this build: one
    // history, in order, either way.
    app::InstanceWrite first = new_instance(order_, at(1));
    first.history.clear();
    commit_one(first);
    const std::string id = first.instance.id;
    auto db = sql();
    const std::string objects =
        R"([{"element_id":"start","element_type":"startEvent","name":"","event":"STARTED","at":)" +
        std::to_string(to_epoch_ms(at(1))) +
        R"(},{"element_id":"start","element_type":"startEvent","name":"Go \"now\"",)"
        R"("event":"COMPLETED","at":)" +
        std::to_string(to_epoch_ms(at(2))) + "}]";
    db->exec("INSERT INTO history (instance_id, entries, events) VALUES ('" + id + "', 2, '" +
             objects + "')");
    app::InstanceWrite next = update_of(first.instance, 0, at(3));
    next.history.push_back(history_row(id, "task", app::HistoryEventKind::kStarted, at(3)));
    next.history.back().name = "Say \"hi\"\n";
    next.history.push_back(history_row(id, "task", app::HistoryEventKind::kFailed, at(4)));
    commit_one(next);

    EXPECT_EQ(db->count("SELECT count(*) FROM history WHERE instance_id = '" + id +
                        "' AND CAST(events AS text) LIKE '[[\"task\",\"userTask\",%'"),
              1)
        << "this build writes each entry as [element_id, element_type, name, event, at]";
    auto history = store_->history(id, {1, 20});
    ASSERT_TRUE(history.ok()) << history.error().internal;
    ASSERT_EQ(history.value().total, 4);
    ASSERT_EQ(history.value().items.size(), 4u);
    const auto& items = history.value().items;
    EXPECT_EQ(items[0].element_id, "start");
    EXPECT_EQ(items[0].element_type, "startEvent");
    EXPECT_EQ(items[0].name, "");
    EXPECT_EQ(items[0].event, app::HistoryEventKind::kStarted);
    EXPECT_EQ(items[0].at, at(1));
    EXPECT_EQ(items[1].name, "Go \"now\"");
    EXPECT_EQ(items[1].event, app::HistoryEventKind::kCompleted);
    EXPECT_EQ(items[1].at, at(2));
    EXPECT_EQ(items[2].element_id, "task");
    EXPECT_EQ(items[2].element_type, "userTask");
    EXPECT_EQ(items[2].name, "Say \"hi\"\n");
    EXPECT_EQ(items[2].event, app::HistoryEventKind::kStarted);
    EXPECT_EQ(items[2].at, at(3));
    EXPECT_EQ(items[3].event, app::HistoryEventKind::kFailed);
    EXPECT_EQ(items[3].at, at(4));
    auto second_page = store_->history(id, {2, 3});
    ASSERT_TRUE(second_page.ok());
    ASSERT_EQ(second_page.value().items.size(), 1u);
    EXPECT_EQ(second_page.value().items[0].event, app::HistoryEventKind::kFailed);
}

TEST_P(RuntimeStoreTest, HistoryTextsReadBackExactly) {
    app::InstanceWrite write = new_instance(order_, at(0));
    const std::string id = write.instance.id;
    app::HistoryRow odd = history_row(id, "el \"1\"\\", app::HistoryEventKind::kFailed, at(-5));
    odd.element_type = "scriptTask";
    odd.name =
        "tab\there, new\nline, \x01, quote \" and Gr\xc3\xbc\xc3\x9f"
        "e \xe2\x9c\x93";
    write.history.push_back(odd);
    app::HistoryRow unnamed = history_row(id, "end", app::HistoryEventKind::kTerminated, at(7));
    unnamed.name.clear();
    write.history.push_back(unnamed);
    commit_one(write);
    auto history = store_->history(id, {1, 20});
    ASSERT_TRUE(history.ok());
    ASSERT_EQ(history.value().items.size(), 3u);
    const app::HistoryRow& got = history.value().items[1];
    EXPECT_EQ(got.element_id, odd.element_id);
    EXPECT_EQ(got.element_type, "scriptTask");
    EXPECT_EQ(got.name, odd.name);
    EXPECT_EQ(got.event, app::HistoryEventKind::kFailed);
    EXPECT_EQ(got.at, at(-5));
    EXPECT_EQ(history.value().items[2].name, "");
    EXPECT_EQ(history.value().items[2].event, app::HistoryEventKind::kTerminated);
}

// PostgreSQL binds each column as a binary array (uuid, bigint, int, text, json, jsonb, bytea and
// boolean elements); these values would need quoting in an array literal, or sit at the edges of
// their type, or look like NULL without being NULL.
TEST_P(RuntimeStoreTest, ColumnValuesAtTheEdgesOfTheirTypesReadBackExactly) {
    const std::string odd = "{\"a\",b}\\ NULL, \t\n \xc3\xbc\xe2\x9c\x93 ' ";
    app::InstanceWrite write = new_instance(order_, at(-86'400'000));  // before 1970
    const std::string id = write.instance.id;
    write.instance.business_key = "NULL";
    write.instance.variables = {{"odd", odd},
                                {"big", 9007199254740993LL},
                                {"neg", -1},
                                {"nested", {{"list", {1, "two", nullptr, false}}}}};
    write.instance.state = std::string("\0\xff\0", 3) + odd;
    write.instance.active_elements = {odd, ""};
    write.instance.parent_wait_id = std::numeric_limits<std::int64_t>::max();
    write.instance.updated_at = at(253'402'300'799'000);  // 9999-12-31T23:59:59Z
    write.waits_opened[0].name = odd;
    write.waits_opened[0].assignee = "NULL";
    write.waits_opened[0].candidate_groups = {odd, "NULL"};
    write.waits_opened[0].due_at = at(-1);
    const app::WaitRow task = write.waits_opened[0];
    app::WaitRow message = wait_row(WaitRowKind::kMessage, id, 2, odd, at(3));
    message.correlation_key = "";  // an empty key is a key, not NULL
    write.waits_opened.push_back(message);
    app::WaitRow job = wait_row(WaitRowKind::kJob, id, 3, "NULL", at(4));
    job.payload = {{"text", odd}};
    job.retries = std::numeric_limits<std::int32_t>::max();
    write.waits_opened.push_back(job);
    app::HistoryRow history = history_row(id, odd, app::HistoryEventKind::kCompleted, at(-7));
    history.name = odd;
    write.history.push_back(history);
    app::IncidentRow incident{new_uuid(),   id,     std::numeric_limits<std::int64_t>::max(),
                              std::nullopt, odd,    "NULL",
                              odd,          "OPEN", at(5),
                              std::nullopt};
    write.incidents_opened.push_back(incident);
    app::Batch batch;
    batch.instances.push_back(write);
    batch.idempotency.push_back({odd, "NULL", 200, odd, at(6)});
    commit_ok(batch);

    const app::InstanceRow row = stored(id, true);
    EXPECT_EQ(row.business_key, std::optional<std::string>("NULL"));
    EXPECT_EQ(row.variables, write.instance.variables);
    EXPECT_EQ(row.state, write.instance.state);
    EXPECT_EQ(row.active_elements, write.instance.active_elements);
    EXPECT_EQ(row.parent_wait_id, write.instance.parent_wait_id);
    EXPECT_EQ(row.created_at, at(-86'400'000));
    EXPECT_EQ(row.updated_at, at(253'402'300'799'000));

    auto stored_task = store_->task(task.id);
    ASSERT_TRUE(stored_task.ok() && stored_task.value().has_value());
    EXPECT_EQ(stored_task.value()->name, odd);
    EXPECT_EQ(stored_task.value()->assignee, std::optional<std::string>("NULL"));
    EXPECT_EQ(stored_task.value()->candidate_groups, task.candidate_groups);
    EXPECT_EQ(stored_task.value()->due_at, at(-1));

    auto by_empty_key = store_->find_message_subscription(odd, "");
    ASSERT_TRUE(by_empty_key.ok() && by_empty_key.value().has_value());
    EXPECT_EQ(by_empty_key.value()->id, message.id);

    auto stored_job = store_->job(job.id);
    ASSERT_TRUE(stored_job.ok() && stored_job.value().has_value());
    EXPECT_EQ(stored_job.value()->type, "NULL");
    EXPECT_EQ(stored_job.value()->payload, job.payload);
    EXPECT_EQ(stored_job.value()->retries, std::numeric_limits<std::int32_t>::max());

    auto entries = store_->history(id, {1, 20});
    ASSERT_TRUE(entries.ok());
    ASSERT_EQ(entries.value().items.size(), 2u);
    EXPECT_EQ(entries.value().items[1].element_id, odd);
    EXPECT_EQ(entries.value().items[1].name, odd);
    EXPECT_EQ(entries.value().items[1].at, at(-7));

    auto stored_incident = store_->incident(incident.id);
    ASSERT_TRUE(stored_incident.ok() && stored_incident.value().has_value());
    EXPECT_EQ(stored_incident.value()->engine_incident_id, incident.engine_incident_id);
    EXPECT_EQ(stored_incident.value()->message, odd);
    EXPECT_EQ(stored_incident.value()->element_id, odd);

    auto replay = store_->claim_idempotency_key(odd, "other", at(7), at(0));
    ASSERT_TRUE(replay.ok());
    ASSERT_TRUE(replay.value().stored.has_value());
    EXPECT_EQ(replay.value().stored->request_hash, "NULL");
    EXPECT_EQ(replay.value().stored->status, 200);
    EXPECT_EQ(replay.value().stored->body, odd);
}

TEST_P(RuntimeStoreTest, RetentionDeletesHistoryOfEveryCommitAndCountsItsEntries) {
    app::InstanceWrite ended = new_instance(order_, at(0));
    ended.history.push_back(
        history_row(ended.instance.id, "task", app::HistoryEventKind::kStarted, at(0)));
    commit_one(ended);  // 2 entries
    app::InstanceWrite done = update_of(ended.instance, 0, at(10));
    done.instance.status = "COMPLETED";
    done.instance.ended_at = at(10);
    done.history =
        history_rows(ended.instance.id, "z", 3, app::HistoryEventKind::kCompleted, at(10));
    app::InstanceWrite kept = new_instance(order_, at(0));
    app::Batch batch;
    batch.instances = {done, kept};
    commit_ok(batch);  // 3 more entries

    auto swept = store_->delete_ended_instances(at(100), 10, app::ProcessKeyFilter::all());
    ASSERT_TRUE(swept.ok()) << swept.error().internal;
    EXPECT_EQ(swept.value().instances, 1);
    EXPECT_EQ(swept.value().history, 5) << "entries, not rows (the rows were 2)";
    auto gone = store_->history(ended.instance.id, {1, 20});
    ASSERT_TRUE(gone.ok());
    EXPECT_EQ(gone.value().total, 0);
    EXPECT_TRUE(gone.value().items.empty());
    auto db = sql();
    EXPECT_EQ(history_commits(), 1);
    EXPECT_EQ(store_->history(kept.instance.id, {1, 20}).value().total, 1);
}

TEST_P(RuntimeStoreTest, MigrationFiveTurnsPerEventRowsIntoCompactRows) {
    // Back to the schema of migration 4 with per-event rows, then reopen: migration 5 runs.
    const std::string a = new_uuid();
    const std::string b = new_uuid();
    store_.reset();
    {
        auto db = sql();
        db->exec("DROP TABLE history");
        db->exec(GetParam() == Backend::kSqlite
                     ? "CREATE TABLE history (id integer PRIMARY KEY AUTOINCREMENT,"
                       " instance_id text NOT NULL, element_id text NOT NULL,"
                       " element_type text NOT NULL, name text, event text NOT NULL,"
                       " at bigint NOT NULL)"
                     : "CREATE TABLE history (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
                       " instance_id uuid NOT NULL, element_id text NOT NULL,"
                       " element_type text NOT NULL, name text, event text NOT NULL,"
                       " at bigint NOT NULL)");
        db->exec("CREATE INDEX history_instance_idx ON history (instance_id, id)");
        const std::string t = std::to_string(to_epoch_ms(at(0)));
        db->exec(
            "INSERT INTO history (instance_id, element_id, element_type, name, event, at)"
            " VALUES ('" +
            a + "', 'start', 'startEvent', NULL, 'STARTED', " + t +
            "),"
            " ('" +
            b + "', 'start', 'startEvent', 'B', 'STARTED', " + t +
            "),"
            " ('" +
            a + "', 'start', 'startEvent', NULL, 'COMPLETED', " + t +
            "),"
            " ('" +
            a + "', 'task', 'userTask', 'It''s \"it\"', 'STARTED', " + t + " + 5)");
        db->exec("DELETE FROM schema_migrations WHERE version = 5");
        // Migration 7 changes the history column 5 creates: it runs again after 5.
        db->exec("DROP INDEX instances_process_key_unfinished_idx");
        db->exec("CREATE INDEX instances_process_key_idx ON instances (process_key, status)");
        db->exec("DELETE FROM schema_migrations WHERE version = 7");
    }
    store_ = open(settings_, *registry_);
    ASSERT_NE(store_, nullptr);
    auto applied = store_->applied_migrations();
    ASSERT_TRUE(applied.ok());
    ASSERT_GE(applied.value().size(), 5u);
    EXPECT_EQ(applied.value()[4].version, 5);
    EXPECT_EQ(applied.value()[4].name, "compact_history");

    auto history = store_->history(a, {1, 20});
    ASSERT_TRUE(history.ok()) << history.error().internal;
    ASSERT_EQ(history.value().total, 3);
    ASSERT_EQ(history.value().items.size(), 3u);
    EXPECT_EQ(history.value().items[0].event, app::HistoryEventKind::kStarted);
    EXPECT_EQ(history.value().items[0].name, "");
    EXPECT_EQ(history.value().items[1].event, app::HistoryEventKind::kCompleted);
    EXPECT_EQ(history.value().items[2].element_id, "task");
    EXPECT_EQ(history.value().items[2].element_type, "userTask");
    EXPECT_EQ(history.value().items[2].name, "It's \"it\"");
    EXPECT_EQ(history.value().items[2].at, at(5));
    auto page = store_->history(a, {2, 2});
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page.value().items.size(), 1u);
    EXPECT_EQ(page.value().items[0].element_id, "task");
    auto other = store_->history(b, {1, 20});
    ASSERT_TRUE(other.ok());
    ASSERT_EQ(other.value().total, 1);
    EXPECT_EQ(other.value().items[0].name, "B");

    // New commits append compact rows after the migrated ones.
    app::InstanceWrite write = new_instance(order_, at(9));
    commit_one(write);
    EXPECT_EQ(store_->history(write.instance.id, {1, 20}).value().total, 1);
}

TEST_P(RuntimeStoreTest, DeleteKeyWithCascadeRemovesEveryRuntimeRow) {
    const app::DefinitionRecord other = deploy("Other", "o1");
    app::InstanceWrite parent = new_instance(order_, at(0));
    app::WaitRow job = wait_row(WaitRowKind::kJob, parent.instance.id, 2, "j", at(0));
    app::WaitRow timer = wait_row(WaitRowKind::kTimer, parent.instance.id, 3, "t", at(0));
    timer.due_at = at(9);
    app::WaitRow message = wait_row(WaitRowKind::kMessage, parent.instance.id, 4, "m", at(0));
    app::WaitRow signal = wait_row(WaitRowKind::kSignal, parent.instance.id, 5, "s", at(0));
    parent.waits_opened.insert(parent.waits_opened.end(), {job, timer, message, signal});
    parent.incidents_opened.push_back({new_uuid(), parent.instance.id, 1, std::nullopt, "x", "K",
                                       "m", "OPEN", at(0), std::nullopt});
    // A called instance of another process goes with its caller.
    app::InstanceWrite child = new_instance(other, at(1));
    child.instance.parent_instance_id = parent.instance.id;
    app::InstanceWrite survivor = new_instance(other, at(2));
    app::Batch batch;
    batch.instances = {parent, child, survivor};
    app::WaitRow start = wait_row(WaitRowKind::kTimer, "", 0, "cron", at(0));
    start.due_at = at(100);
    batch.start_events = {{order_.id, {start}}};
    commit_ok(batch);

    auto deleted = store_->delete_key("Order", true);
    ASSERT_TRUE(deleted.ok()) << deleted.error().internal;
    EXPECT_EQ(deleted.value(), 1);
    auto db = sql();
    EXPECT_EQ(db->count("SELECT count(*) FROM instances"), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM user_tasks"), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM jobs"), 0);
    EXPECT_EQ(db->count("SELECT count(*) FROM message_subscriptions"), 0);
    EXPECT_EQ(db->count("SELECT count(*) FROM signal_subscriptions"), 0);
    EXPECT_EQ(db->count("SELECT count(*) FROM incidents"), 0);
    EXPECT_EQ(history_commits(), 1);
    EXPECT_EQ(stored(survivor.instance.id).process_key, "Other");
    auto counts = store_->counts();
    ASSERT_TRUE(counts.ok());
    EXPECT_EQ(counts.value().running, 1);
    EXPECT_EQ(counts.value().pending_timers, 0);
}

TEST_P(RuntimeStoreTest, DeleteKeyTakesItsInstancesInTransactionsOfTheBatchSetting) {
    // db_delete_batch_size 2: five instances of Order, one calling an Other instance, go in
    // three transactions, the versions with the last; the Other instance no one called stays.
    settings_.delete_batch_size = 2;
    metrics::Registry other_registry;
    auto batched = open(settings_, other_registry);
    ASSERT_NE(batched, nullptr);
    const app::DefinitionRecord other = deploy("Other", "o1");
    app::Batch batch;
    for (int i = 0; i < 5; ++i) {
        batch.instances.push_back(new_instance(order_, at(i)));
    }
    app::InstanceWrite child = new_instance(other, at(9));
    child.instance.parent_instance_id = batch.instances[3].instance.id;
    app::InstanceWrite survivor = new_instance(other, at(10));
    batch.instances.push_back(child);
    batch.instances.push_back(survivor);
    commit_ok(batch);

    // Without cascade, unfinished instances refuse it, and nothing goes.
    auto refused = batched->delete_key("Order", false);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, "PROCESS_HAS_INSTANCES");
    auto db = sql();
    EXPECT_EQ(db->count("SELECT count(*) FROM instances"), 7);

    // Transactions counted as the store's connection leases (the writer's, on SQLite): 2 + 2 +
    // 1 instances, the last one with the versions.
    const std::string leases = std::string("pythmata_db_pool_wait_seconds_count{pool=\"") +
                               (GetParam() == Backend::kPostgres ? "postgres" : "sqlite_writer") +
                               "\"} ";
    const auto leased = [&] {
        const std::string text = other_registry.render();
        const auto at = text.find(leases);
        return at == std::string::npos ? -1.0 : std::stod(text.substr(at + leases.size()));
    };
    const double before = leased();
    auto deleted = batched->delete_key("Order", true);
    ASSERT_TRUE(deleted.ok()) << deleted.error().internal;
    EXPECT_EQ(deleted.value(), 1);
    EXPECT_EQ(leased() - before, 3) << other_registry.render();
    EXPECT_EQ(db->count("SELECT count(*) FROM instances"), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM user_tasks"), 1);
    EXPECT_EQ(history_commits(), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM definitions WHERE key = 'Order'"), 0);
    EXPECT_EQ(stored(survivor.instance.id).process_key, "Other");
    auto again = batched->delete_key("Order", true);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again.value(), 0);  // an unknown key now
}

// ---- Outbox -------------------------------------------------------------------------------

app::OutboxRow outbox_row(const std::string& kind, TimePoint created) {
    app::OutboxRow row;
    row.id = new_uuid();
    row.kind = kind;
    row.payload = {{"name", "go"}, {"variables", {{"text", "o'brien \"quoted\""}}}};
    row.created_at = created;
    return row;
}

TEST_P(RuntimeStoreTest, OutboxRowsAreWrittenWithTheirBatchAndAcquiredOldestFirstWithALock) {
    app::Batch batch;
    batch.instances.push_back(new_instance(order_, at(0)));
    const app::OutboxRow late = outbox_row("signal", at(20));
    const app::OutboxRow early = outbox_row("message", at(10));
    const app::OutboxRow young = outbox_row("child_start", at(5'000));  // inside the grace period
    batch.outbox = {late, early, young};
    commit_ok(batch);
    auto pending = store_->outbox_pending();
    ASSERT_TRUE(pending.ok());
    EXPECT_EQ(pending.value(), 3);

    auto acquired = store_->acquire_outbox("replica-1", 10, at(1'000), at(1'000), at(61'000));
    ASSERT_TRUE(acquired.ok()) << acquired.error().internal;
    ASSERT_EQ(acquired.value().size(), 2u);
    EXPECT_EQ(acquired.value()[0].id, early.id);
    EXPECT_EQ(acquired.value()[1].id, late.id);
    EXPECT_EQ(acquired.value()[0].kind, "message");
    EXPECT_EQ(acquired.value()[0].payload, early.payload);
    EXPECT_EQ(acquired.value()[0].created_at, at(10));
    EXPECT_EQ(acquired.value()[0].lock_owner, "replica-1");
    EXPECT_EQ(acquired.value()[0].lock_expires_at, at(61'000));

    // Locked: nobody else gets them before the lock expires.
    auto locked = store_->acquire_outbox("replica-2", 10, at(1'000), at(60'999), at(120'000));
    ASSERT_TRUE(locked.ok());
    EXPECT_TRUE(locked.value().empty());
    // Expired: taken over, oldest first, `max` at most.
    auto taken = store_->acquire_outbox("replica-2", 1, at(1'000), at(61'000), at(121'000));
    ASSERT_TRUE(taken.ok());
    ASSERT_EQ(taken.value().size(), 1u);
    EXPECT_EQ(taken.value()[0].id, early.id);
    EXPECT_EQ(taken.value()[0].lock_owner, "replica-2");
}

TEST_P(RuntimeStoreTest, ABatchThatFailsWritesNoOutboxRow) {
    app::InstanceWrite stale = update_of(instance_row(order_, at(0)), 7, at(1));  // no such row
    app::Batch batch;
    batch.instances.push_back(stale);
    batch.outbox = {outbox_row("signal", at(0))};
    EXPECT_FALSE(store_->commit(batch).ok());
    auto pending = store_->outbox_pending();
    ASSERT_TRUE(pending.ok());
    EXPECT_EQ(pending.value(), 0);
}

TEST_P(RuntimeStoreTest, DeliveredOutboxRowsAreDeletedByABatchOrByDeleteOutbox) {
    const app::OutboxRow a = outbox_row("signal", at(0));
    const app::OutboxRow b = outbox_row("message", at(0));
    const app::OutboxRow c = outbox_row("parent_notice", at(0));
    app::Batch first;
    first.outbox = {a, b, c};
    commit_ok(first);

    app::Batch second;  // the delivering command's batch deletes the row it delivers
    second.instances.push_back(new_instance(order_, at(1)));
    second.outbox_done = {a.id, new_uuid()};  // an unknown id is no error
    commit_ok(second);
    EXPECT_TRUE(store_->delete_outbox({b.id, "not-a-uuid"}).ok());
    EXPECT_TRUE(store_->delete_outbox({}).ok());

    auto left = store_->acquire_outbox("replica-1", 10, at(10), at(10), at(100));
    ASSERT_TRUE(left.ok());
    ASSERT_EQ(left.value().size(), 1u);
    EXPECT_EQ(left.value()[0].id, c.id);
    EXPECT_EQ(sql()->count("SELECT count(*) FROM outbox"), 1);
    for (const auto& [id, there] : std::vector<std::pair<std::string, bool>>{
             {c.id, true}, {a.id, false}, {b.id, false}, {"not-a-uuid", false}}) {
        auto exists = store_->outbox_row_exists(id);
        ASSERT_TRUE(exists.ok()) << exists.error().internal;
        EXPECT_EQ(exists.value(), there) << id;
    }
}

TEST_P(RuntimeStoreTest, ConcurrentOutboxSweepersNeverGetTheSameRow) {
    constexpr int kRows = 90;
    app::Batch batch;
    for (int i = 0; i < kRows; ++i) {
        batch.outbox.push_back(outbox_row("signal", at(i)));
    }
    commit_ok(batch);
    metrics::Registry other;
    auto replica = open(settings_, other);
    ASSERT_NE(replica, nullptr);
    const auto handed_out =
        acquire_concurrently(store_.get(), replica.get(), [](Store* store, int t) {
            return store->acquire_outbox("s" + std::to_string(t), 7, at(1'000), at(1'000),
                                         at(100'000));
        });
    std::set<std::string> unique(handed_out.begin(), handed_out.end());
    EXPECT_EQ(handed_out.size(), static_cast<std::size_t>(kRows));
    EXPECT_EQ(unique.size(), static_cast<std::size_t>(kRows));
}

TEST_P(RuntimeStoreTest, StartEventsWrittenIsMarkedByAStartEventWriteEvenOfNoRows) {
    const app::DefinitionRecord other = deploy("Other", "h2");
    auto before = store_->start_events_written(order_.id);
    ASSERT_TRUE(before.ok());
    EXPECT_FALSE(before.value());
    app::Batch batch;
    batch.start_events = {{order_.id, {}}};
    commit_ok(batch);
    commit_ok(batch);  // idempotent
    auto after = store_->start_events_written(order_.id);
    ASSERT_TRUE(after.ok());
    EXPECT_TRUE(after.value());
    auto untouched = store_->start_events_written(other.id);
    ASSERT_TRUE(untouched.ok());
    EXPECT_FALSE(untouched.value());
    auto unknown = store_->start_events_written(new_uuid());
    ASSERT_TRUE(unknown.ok());
    EXPECT_FALSE(unknown.value());
}

TEST_P(RuntimeStoreTest, MigrationSixReplacesTheTaskWaitIndexAndKeepsTheTasks) {
    // Back to the index of migration 5, then reopen: migration 6 runs on the existing rows.
    app::InstanceWrite write = new_instance(order_, at(0));
    commit_one(write);
    store_.reset();
    {
        auto db = sql();
        db->exec("DROP INDEX user_tasks_instance_state_idx");
        db->exec("CREATE INDEX user_tasks_wait_idx ON user_tasks (instance_id, wait_id)");
        db->exec("DELETE FROM schema_migrations WHERE version = 6");
    }
    store_ = open(settings_, *registry_);
    ASSERT_NE(store_, nullptr);
    auto applied = store_->applied_migrations();
    ASSERT_TRUE(applied.ok());
    ASSERT_GE(applied.value().size(), 6u);
    EXPECT_EQ(applied.value()[5].version, 6);
    EXPECT_EQ(applied.value()[5].name, "task_instance_state_index");
    const std::string indexes =
        GetParam() == Backend::kSqlite
            ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = "
            : "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
              " AND indexname = ";
    auto db = sql();
    EXPECT_EQ(db->count(indexes + "'user_tasks_instance_state_idx'"), 1);
    EXPECT_EQ(db->count(indexes + "'user_tasks_wait_idx'"), 0);

    app::TaskFilter of_instance;
    of_instance.instance_id = write.instance.id;
    auto tasks = store_->list_tasks(of_instance, {1, 20});
    ASSERT_TRUE(tasks.ok());
    ASSERT_EQ(tasks.value().total, 1);
    app::InstanceWrite done = update_of(write.instance, 0, at(1));
    done.waits_closed = {1};
    done.tasks_completed = {1};
    commit_one(done);
    auto task = store_->task(write.waits_opened[0].id);
    ASSERT_TRUE(task.ok());
    ASSERT_TRUE(task.value().has_value());
    EXPECT_EQ(task.value()->state, "COMPLETED");
}

TEST_P(RuntimeStoreTest, MigrationSevenKeepsHistoryAndIndexesOnlyUnfinishedInstancesByKey) {
    // Rows written, then back to the schema of migration 6 (jsonb history on PostgreSQL, the
    // full (process_key, status) index) and reopen: migration 7 runs on the existing rows.
    app::InstanceWrite running = new_instance(order_, at(0));
    const std::string id = running.instance.id;
    for (auto& row : history_rows(id, "a", 3, app::HistoryEventKind::kStarted, at(1))) {
        running.history.push_back(std::move(row));
    }
    app::InstanceWrite ended = new_instance(order_, at(0));
    ended.instance.status = "COMPLETED";
    ended.instance.ended_at = at(2);
    app::Batch batch;
    batch.instances = {running, ended};
    commit_ok(batch);
    app::InstanceWrite next = update_of(running.instance, 0, at(3));
    next.history = history_rows(id, "b", 2, app::HistoryEventKind::kCompleted, at(3));
    commit_one(next);
    store_.reset();
    {
        auto db = sql();
        db->exec("DROP INDEX instances_process_key_unfinished_idx");
        db->exec("CREATE INDEX instances_process_key_idx ON instances (process_key, status)");
        if (GetParam() == Backend::kPostgres) {
            db->exec("ALTER TABLE history ALTER COLUMN events TYPE jsonb USING events::jsonb");
        }
        db->exec("DELETE FROM schema_migrations WHERE version = 7");
    }
    store_ = open(settings_, *registry_);
    ASSERT_NE(store_, nullptr);
    auto applied = store_->applied_migrations();
    ASSERT_TRUE(applied.ok());
    ASSERT_GE(applied.value().size(), 7u);
    EXPECT_EQ(applied.value()[6].version, 7);
    EXPECT_EQ(applied.value()[6].name, "history_json_process_key_index");
    auto db = sql();
    if (GetParam() == Backend::kPostgres) {
        EXPECT_EQ(db->count("SELECT count(*) FROM information_schema.columns"
                            " WHERE table_schema = current_schema() AND table_name = 'history'"
                            " AND column_name = 'events' AND data_type = 'json'"),
                  1);
    }
    const std::string indexes =
        GetParam() == Backend::kSqlite
            ? "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = "
            : "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()"
              " AND indexname = ";
    EXPECT_EQ(db->count(indexes + "'instances_process_key_unfinished_idx'"), 1);
    EXPECT_EQ(db->count(indexes + "'instances_process_key_idx'"), 0);

    // The rows written before read back in order and paged, and new commits append after them.
    app::InstanceWrite third = update_of(next.instance, 1, at(4));
    third.history = history_rows(id, "c", 2, app::HistoryEventKind::kCancelled, at(4));
    commit_one(third);
    const std::vector<std::string> all = {"start", "a0", "a1", "a2", "b0", "b1", "c0", "c1"};
    for (const int size : {1, 3, 8}) {
        std::vector<std::string> got;
        for (int page = 1; page <= (8 + size - 1) / size; ++page) {
            auto history = store_->history(id, {page, size});
            ASSERT_TRUE(history.ok()) << history.error().internal;
            EXPECT_EQ(history.value().total, 8);
            for (const auto& row : history.value().items) {
                got.push_back(row.element_id);
            }
        }
        EXPECT_EQ(got, all) << "page size " << size;
    }
    auto page = store_->history(id, {2, 3});
    ASSERT_TRUE(page.ok());
    ASSERT_EQ(page.value().items.size(), 3u);
    EXPECT_EQ(page.value().items[1].element_id, "b0");
    EXPECT_EQ(page.value().items[1].event, app::HistoryEventKind::kCompleted);
    EXPECT_EQ(page.value().items[1].at, at(3));

    // Unfinished by key: the running instance, not the ended one.
    auto count = store_->count_unfinished_instances("Order");
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(count.value(), 1);
    auto unfinished = store_->unfinished_instances("Order");
    ASSERT_TRUE(unfinished.ok());
    EXPECT_EQ(unfinished.value(), std::vector<std::string>{id});
    app::InstanceFilter completed;
    completed.process_key = "Order";
    completed.status = "COMPLETED";
    auto listed = store_->list_instances(completed, {1, 20});
    ASSERT_TRUE(listed.ok());
    ASSERT_EQ(listed.value().total, 1);
    EXPECT_EQ(listed.value().items[0].id, ended.instance.id);
}

TEST_P(RuntimeStoreTest, MigrationFourIsRecorded) {
    auto applied = store_->applied_migrations();
    ASSERT_TRUE(applied.ok());
    ASSERT_GE(applied.value().size(), 4u);
    EXPECT_EQ(applied.value()[3].version, 4);
    EXPECT_EQ(applied.value()[3].name, "outbox");
}

TEST_P(RuntimeStoreTest, MigrationTwoIsRecorded) {
    auto applied = store_->applied_migrations();
    ASSERT_TRUE(applied.ok());
    ASSERT_GE(applied.value().size(), 2u);
    EXPECT_EQ(applied.value()[1].version, 2);
    EXPECT_EQ(applied.value()[1].name, "runtime");
}

INSTANTIATE_TEST_SUITE_P(Backends, RuntimeStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), backend_name);

// ---- PostgreSQL outage ------------------------------------------------------------------

class PostgresRuntimeStoreTest : public RuntimeStoreTest {};

TEST_P(PostgresRuntimeStoreTest, OutageIsDbUnavailableAndTheStoreRecoversByItself) {
    app::InstanceWrite before = new_instance(order_, at(0));
    commit_one(before);
    ASSERT_TRUE(postgres_->stop(test::PostgresServer::Shutdown::kFast));

    app::Batch batch;
    batch.instances.push_back(new_instance(order_, at(1)));
    const Status down = store_->commit(batch);
    ASSERT_FALSE(down.ok());
    EXPECT_EQ(down.error().code, "DB_UNAVAILABLE");
    EXPECT_EQ(down.error().kind, ErrorKind::kUnavailable);
    EXPECT_GE(down.error().retry_after_seconds, 1);
    auto read = store_->instance(before.instance.id, false);
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.error().code, "DB_UNAVAILABLE");
    auto acquired = store_->acquire_jobs("x", "w", 1, at(0), at(1));
    ASSERT_FALSE(acquired.ok());
    EXPECT_EQ(acquired.error().kind, ErrorKind::kUnavailable);

    ASSERT_TRUE(postgres_->start()) << postgres_->log_tail();
    commit_ok(batch);
    EXPECT_EQ(stored(before.instance.id).status, "RUNNING");
    EXPECT_EQ(stored(batch.instances[0].instance.id).status, "RUNNING");
}

TEST_P(PostgresRuntimeStoreTest, LeasingDueTimersWritesNoIndexEntry) {
    // Migration 12: no index holds the lease columns and jobs' pages keep room, so the
    // acquisition's UPDATE of a burst of due timers is HOT for every row (an index on
    // lock_expires_at, or full pages, make it write a new entry into every index of jobs).
    app::InstanceWrite write = new_instance(order_, at(0));
    for (std::uint64_t wait_id = 1; wait_id <= 60; ++wait_id) {
        app::WaitRow timer = wait_row(WaitRowKind::kTimer, write.instance.id, wait_id, "t", at(0));
        timer.due_at = at(100);
        write.waits_opened.push_back(timer);
    }
    commit_one(write);
    pqxx::connection connection(settings_.url);
    pqxx::work tx(connection);
    const pqxx::result leased = pg::exec_statement(
        tx, pg::stmt::kAcquireTimers, std::string("pythmata-") + write.instance.id,
        to_epoch_ms(at(10'000)), to_epoch_ms(at(200)), 100);
    ASSERT_EQ(leased.size(), 60u);
    const pqxx::row counts = tx.exec1(
        "SELECT pg_stat_get_xact_tuples_updated('jobs'::regclass),"
        " pg_stat_get_xact_tuples_hot_updated('jobs'::regclass)");
    EXPECT_EQ(counts[0].as<int>(), 60);
    EXPECT_EQ(counts[1].as<int>(), 60);
}

TEST_P(PostgresRuntimeStoreTest, ConnectionsReplacingKilledOnesRunThePreparedStatements) {
    // Every pooled connection prepares the hot statements; one whose backend is killed is
    // discarded and the call is retried on a new connection, which must define them again
    // (exec_prepared of a statement the connection does not know fails).
    app::InstanceWrite write = new_instance(order_, at(0));
    commit_one(write);  // prepared INSERTs
    const std::string task_id = write.waits_opened[0].id;
    // More than five runs: the prepared reads are on their generic plans.
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(stored(write.instance.id, true).state, write.instance.state);
        ASSERT_TRUE(store_->task(task_id).ok());
    }
    auto db = sql();
    const std::string others =
        " FROM pg_stat_activity WHERE datname = current_database()"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()";
    ASSERT_GE(db->count("SELECT count(*)" + others), 1);
    // pg_terminate_backend(pid, timeout) waits until the backend is gone.
    EXPECT_GE(db->count("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))" + others),
              1);
    ASSERT_EQ(db->count("SELECT count(*)" + others), 0);

    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(stored(write.instance.id, true).state, write.instance.state);
        auto task = store_->task(task_id);
        ASSERT_TRUE(task.ok()) << task.error().code << ": " << task.error().internal;
        ASSERT_TRUE(task.value().has_value());
    }
    app::InstanceWrite next = update_of(write.instance, 0, at(1));
    next.waits_opened.push_back(wait_row(WaitRowKind::kUserTask, write.instance.id, 2, "B", at(1)));
    commit_one(next);
    EXPECT_EQ(stored(write.instance.id).version, 1);
    EXPECT_GE(db->count("SELECT count(*)" + others), 1);  // the new connections
}

/// Prepares `statement` on the test's own connection (as the store does on its connections) and
/// returns the text of EXPLAIN EXECUTE with `args`: under the settings of `tx` at that moment.
std::string prepared_plan(pqxx::transaction_base& tx, const pg::Statement& statement,
                          const std::string& args) {
    tx.exec(std::string("PREPARE ") + statement.name + " AS " + pg::sql_of(statement));
    std::string plan;
    for (const auto& row : tx.exec(std::string("EXPLAIN EXECUTE ") + statement.name + args)) {
        plan += row[0].c_str();
        plan += '\n';
    }
    return plan;
}

TEST_P(PostgresRuntimeStoreTest, TheTaskPageOfAnInstanceIsPreparedOnTheInstanceIndex) {
    // The task pages of one instance are prepared statements: the generic plan PostgreSQL keeps
    // after five runs must read the instance's tasks by user_tasks_instance_state_idx, also when
    // it is made on a new, never analysed table (this test's schema), not every OPEN task by
    // user_tasks_state_idx filtered by instance.
    app::InstanceWrite write = new_instance(order_, at(0));
    write.waits_opened.push_back(
        wait_row(WaitRowKind::kUserTask, write.instance.id, 2, "B", at(1)));
    commit_one(write);
    pqxx::connection connection(settings_.url);
    pqxx::nontransaction tx(connection);
    tx.exec("SET plan_cache_mode = force_generic_plan");
    const std::string id = tx.quote(write.instance.id);
    const std::pair<const pg::Statement*, std::string> pages[] = {
        {&pg::stmt::kTaskPageByInstance, "(" + id + ", 20, 0)"},
        {&pg::stmt::kTaskPageByInstanceState, "(" + id + ", 'OPEN', 20, 0)"}};
    for (const auto& [statement, args] : pages) {
        const std::string plan = prepared_plan(tx, *statement, args);
        EXPECT_NE(plan.find("user_tasks_instance_state_idx"), std::string::npos) << plan;
        EXPECT_EQ(plan.find("user_tasks_state_idx"), std::string::npos) << plan;
        EXPECT_EQ(tx.exec(std::string("EXECUTE ") + statement->name + args).size(), 2u);
    }
    // The store's own connections, past the five custom plans: the same answers.
    app::TaskFilter open_tasks;
    open_tasks.instance_id = write.instance.id;
    app::TaskFilter any_state = open_tasks;
    any_state.state = "";
    for (int i = 0; i < 8; ++i) {
        for (const auto& filter : {open_tasks, any_state}) {
            auto page = store_->list_tasks(filter, {1, 20});
            ASSERT_TRUE(page.ok()) << page.error().internal;
            EXPECT_EQ(page.value().total, 2);
            ASSERT_EQ(page.value().items.size(), 2u);
            EXPECT_EQ(page.value().items[0].id, write.waits_opened[1].id);
        }
    }
}

TEST_P(PostgresRuntimeStoreTest, ClosingTasksAndIncidentsProbesTheInstanceIndexes) {
    // A batch closes user tasks and resolves incidents by (instance, wait/incident, OPEN). With
    // statistics that say few rows are OPEN (most tasks done, as in any busy system), a generic
    // plan comparing state with a literal scanned every OPEN entry of the (state, created_at)
    // index once and joined the batch against them; that range also holds the entries of every
    // task closed since the last vacuum. The plan must probe the instance's index per row.
    app::Batch starts;
    for (int i = 0; i < 200; ++i) {
        starts.instances.push_back(new_instance(order_, at(i)));
    }
    commit_ok(starts);
    app::Batch completions;
    for (int i = 0; i < 195; ++i) {
        app::InstanceWrite done = update_of(starts.instances[i].instance, 0, at(1000 + i));
        done.waits_closed = {1};
        done.tasks_completed = {1};
        completions.instances.push_back(done);
    }
    commit_ok(completions);
    pqxx::connection connection(settings_.url);
    pqxx::work tx(connection);
    tx.exec("ANALYZE user_tasks, incidents");
    pg::join_by_index(tx);  // as write_round() runs them
    const std::string open_one = tx.quote("{" + starts.instances[199].instance.id + "}");
    const std::string tasks =
        prepared_plan(tx, pg::stmt::kCloseTasks, "(" + open_one + ", '{1}', '{t}', '{5}')");
    EXPECT_NE(tasks.find("user_tasks_instance_state_idx"), std::string::npos) << tasks;
    EXPECT_EQ(tasks.find("user_tasks_state_idx"), std::string::npos) << tasks;
    EXPECT_EQ(tasks.find("Materialize"), std::string::npos) << tasks;
    const std::string incidents =
        prepared_plan(tx, pg::stmt::kResolveIncidents, "(" + open_one + ", '{1}', '{5}')");
    EXPECT_NE(incidents.find("incidents_engine_idx"), std::string::npos) << incidents;
    EXPECT_EQ(incidents.find("incidents_state_idx"), std::string::npos) << incidents;
    tx.exec(std::string("EXECUTE ") + pg::stmt::kCloseTasks.name + "(" + open_one +
            ", '{1}', '{t}', '{5}')");
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM user_tasks WHERE state = 'OPEN'")[0].as<int>(), 4);
}

TEST_P(PostgresRuntimeStoreTest, DeleteKeyWaitsForStartsInFlightAndLeavesNoInstanceBehind) {
    // Instances have no foreign key to their definition (migration 10): the batch INSERT locks
    // the definitions it names FOR KEY SHARE, and delete_key's last pass locks them FOR UPDATE.
    // A start that read the definition before the delete and commits while it runs must not
    // leave an instance of a deleted definition: the delete waits for it and takes it (with
    // cascade), or refuses (without, as the instance is unfinished).
    for (const bool cascade : {false, true}) {
        SCOPED_TRACE(cascade ? "cascade" : "no cascade");
        const app::DefinitionRecord definition = deploy("Racing", cascade ? "r2" : "r1");
        pqxx::connection connection(settings_.url);
        pqxx::work start(connection);
        const std::string id = new_uuid();
        // The store's own INSERT, as a start's batch runs it; its transaction stays open.
        const pqxx::result inserted = start.exec_params(
            pg::sql_of(pg::stmt::kInsertInstances), "{" + id + "}", "{" + definition.id + "}",
            "{Racing}", "{1}", "{NULL}", "{RUNNING}", "{\"{}\"}", "{NULL}", "{0}", "{NULL}",
            "{NULL}", "{\"[]\"}", "{1}", "{1}", "{NULL}", "{0}", "{NULL}");
        ASSERT_EQ(inserted.affected_rows(), 1);

        auto deleting =
            std::async(std::launch::async, [&] { return store_->delete_key("Racing", cascade); });
        EXPECT_EQ(deleting.wait_for(std::chrono::milliseconds(500)), std::future_status::timeout)
            << "the delete did not wait for the start in flight";
        start.commit();
        auto deleted = deleting.get();
        auto db = sql();
        const std::string left = "SELECT count(*) FROM instances WHERE id = '" + id + "'";
        if (cascade) {
            ASSERT_TRUE(deleted.ok()) << deleted.error().internal;
            EXPECT_EQ(deleted.value(), 1);
            EXPECT_EQ(db->count(left), 0);
            EXPECT_EQ(db->count("SELECT count(*) FROM definitions WHERE key = 'Racing'"), 0);
        } else {
            ASSERT_FALSE(deleted.ok());
            EXPECT_EQ(deleted.error().code, "PROCESS_HAS_INSTANCES");
            EXPECT_EQ(db->count(left), 1);
            EXPECT_EQ(db->count("SELECT count(*) FROM definitions WHERE key = 'Racing'"), 1);
            db->exec("DELETE FROM instances WHERE id = '" + id + "'");
            db->exec("DELETE FROM definitions WHERE key = 'Racing'");
        }
    }
    // And a start after the delete finds its definition gone: nothing is written.
    const app::DefinitionRecord definition = deploy("Racing", "r3");
    auto deleted = store_->delete_key("Racing", true);
    ASSERT_TRUE(deleted.ok());
    app::Batch late;
    late.instances.push_back(new_instance(definition, at(0)));
    const Status committed = store_->commit(late);
    ASSERT_FALSE(committed.ok());
    EXPECT_EQ(committed.error().code, "DB_CONFLICT");
    EXPECT_EQ(sql()->count("SELECT count(*) FROM instances WHERE process_key = 'Racing'"), 0);
}

TEST_P(PostgresRuntimeStoreTest, ListsArePlannedWithTheirValuesOnGenericPlanConnections) {
    // The pool's connections run on generic plans (db_plan_cache_mode); plan_with_values gives
    // the rest of one transaction custom plans, and the connection keeps its mode after it.
    pqxx::connection connection(settings_.url);
    connection.set_variable("plan_cache_mode", "force_generic_plan");
    {
        pqxx::work tx(connection);
        pg::plan_with_values(tx);
        EXPECT_EQ(tx.exec1("SHOW plan_cache_mode")[0].as<std::string>(), "force_custom_plan");
        tx.commit();
    }
    pqxx::nontransaction after(connection);
    EXPECT_EQ(after.exec1("SHOW plan_cache_mode")[0].as<std::string>(), "force_generic_plan");
}

TEST_P(PostgresRuntimeStoreTest, TheBatchJoinsWithUnnestArePreparedAsNestedLoopsOverAnIndex) {
    // The batch's UPDATEs and DELETEs by instance (and wait) join the tables with unnest(...) of
    // array parameters. They are prepared and run after join_by_index(): their one generic plan,
    // made on a new, never analysed table (this test's schema), must look the rows up by index,
    // not hash-join a sequential scan of the table, which it would keep until the next ANALYZE.
    app::InstanceWrite write = new_instance(order_, at(0));
    commit_one(write);
    pqxx::connection connection(settings_.url);
    pqxx::work tx(connection);
    pg::join_by_index(tx);
    const std::string ids = tx.quote("{" + write.instance.id + "}");
    const std::pair<const pg::Statement*, std::string> joins[] = {
        {&pg::stmt::kUpdateInstances,
         "(" + ids +
             ", '{0}', '{NULL}', '{RUNNING}', '{\"{}\"}', '{00}', '{\"[]\"}', '{1}', '{NULL}')"},
        {&pg::stmt::kCloseTasks, "(" + ids + ", '{1}', '{true}', '{1}')"},
        {&pg::stmt::kCloseJobs, "(" + ids + ", '{1}')"},
    };
    for (const auto& [statement, args] : joins) {
        const std::string plan = prepared_plan(tx, *statement, args);
        EXPECT_NE(plan.find("Nested Loop"), std::string::npos) << plan;
        EXPECT_NE(plan.find("Index Scan"), std::string::npos) << plan;
        EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
        EXPECT_EQ(plan.find("Hash"), std::string::npos) << plan;
    }
    tx.abort();
}

TEST_P(PostgresRuntimeStoreTest, AcquisitionsAndStartEventClearingReadByIndexOnGenericPlans) {
    // The pool's connections run on generic plans (db_plan_cache_mode), also for the statements
    // that are not prepared. On an analysed table of thousands of rows, the acquisitions must
    // lock the few due rows by index and update them by primary key, not hash-join a sequential
    // scan of the table (what `id IN (SELECT ... LIMIT $4)` planned, on every scheduler pass);
    // clearing a definition's start events must use the start-event index (migration 8), not
    // scan the waits of every instance of the definition.
    pqxx::connection connection(settings_.url);
    {
        pqxx::work fill(connection);
        // 3,000 instances of the definition, each waiting on a timer or a job due in a year;
        // three timers and three jobs due now; one timer start event of the definition.
        fill.exec_params(
            "INSERT INTO instances (id, definition_id, process_key, process_version, status,"
            " created_at, updated_at) SELECT gen_random_uuid(), $1::uuid, 'Order', 1, 'RUNNING',"
            " 0, 0 FROM generate_series(1, 3000)",
            order_.id);
        fill.exec(
            "INSERT INTO jobs (id, kind, type, instance_id, definition_id, wait_id, element_id,"
            " due_at, created_at) SELECT gen_random_uuid(), CASE WHEN n % 2 = 0 THEN 'timer'"
            " ELSE 'job' END, CASE WHEN n % 2 = 0 THEN 'timer' ELSE 'charge' END, id,"
            " definition_id, 1, 'e', CASE WHEN n <= 6 THEN 0 ELSE 31536000000 END, 0"
            " FROM (SELECT id, definition_id, row_number() OVER () AS n FROM instances) i");
        fill.exec_params(
            "INSERT INTO jobs (id, kind, type, definition_id, element_id, due_at, created_at)"
            " VALUES (gen_random_uuid(), 'timer', 'timer', $1::uuid, 'start', 31536000000, 0)",
            order_.id);
        fill.exec("ANALYZE jobs");
        fill.exec("ANALYZE instances");
        fill.commit();
    }
    pqxx::work tx(connection);
    tx.exec("SET LOCAL plan_cache_mode = force_generic_plan");
    const std::pair<const pg::Statement*, std::string> statements[] = {
        {&pg::stmt::kAcquireTimers, "('w', 60000, 1000, 100)"},
        {&pg::stmt::kAcquireJobs, "('w', 60000, 1000, 100, 'charge')"},
        {&pg::stmt::kClearStartJobs, "(" + tx.quote("{" + order_.id + "}") + ")"},
    };
    for (const auto& [statement, args] : statements) {
        const std::string plan = prepared_plan(tx, *statement, args);
        EXPECT_EQ(plan.find("Seq Scan"), std::string::npos) << plan;
        EXPECT_EQ(plan.find("Hash"), std::string::npos) << plan;
        EXPECT_NE(plan.find(statement == &pg::stmt::kClearStartJobs ? "jobs_start_event_idx"
                                                                    : "jobs_pkey"),
                  std::string::npos)
            << plan;
    }
    // And they still do their work: three due timers, three due jobs of the type.
    EXPECT_EQ(
        tx.exec(std::string("EXECUTE ") + pg::stmt::kAcquireTimers.name + "('w', 60000, 1000, 100)")
            .size(),
        3u);
    EXPECT_EQ(tx.exec(std::string("EXECUTE ") + pg::stmt::kAcquireJobs.name +
                      "('w', 60000, 1000, 100, 'charge')")
                  .size(),
              3u);
    tx.abort();
}

// The columns' uuids are encoded by the store (binary arrays): one it cannot read fails its batch
// as the server's own parser would, and nothing of the batch is written.
TEST_P(PostgresRuntimeStoreTest, AMalformedIdFailsItsBatchAndWritesNothing) {
    app::InstanceWrite good = new_instance(order_, at(0));
    app::InstanceWrite bad = new_instance(order_, at(0));
    bad.instance.parent_instance_id = "not-a-uuid";
    app::Batch batch;
    batch.instances = {good, bad};
    const Status committed = store_->commit(batch);
    ASSERT_FALSE(committed.ok());
    EXPECT_NE(committed.error().internal.find("uuid"), std::string::npos)
        << committed.error().internal;
    auto found = store_->instance(good.instance.id, false);
    ASSERT_TRUE(found.ok());
    EXPECT_FALSE(found.value().has_value());
    commit_one(new_instance(order_, at(1)));  // the store goes on
}

// ---- Connections cut while a write is on its way ---------------------------------------
// A proxy between the store and PostgreSQL cuts the connection at one point of the wire
// protocol: before the server saw the write (nothing happened, it may run again) or after the
// server ran it but before its reply came back (it happened, and the store cannot know).

class PostgresCutConnectionTest : public PostgresRuntimeStoreTest {
  protected:
    void SetUp() override {
        PostgresRuntimeStoreTest::SetUp();
        if (IsSkipped() || HasFatalFailure()) {
            return;
        }
        std::string why;
        proxy_ = test::CuttingProxy::start(postgres_->port(), why);
        ASSERT_NE(proxy_, nullptr) << why;
        // Same database and schema, through the proxy; no SSL or GSS negotiation, so that the
        // proxy can read the messages.
        app::DbSettings through = settings_;
        const std::string direct = ":" + std::to_string(postgres_->port()) + "/";
        const std::size_t at_port = through.url.find(direct);
        ASSERT_NE(at_port, std::string::npos) << through.url;
        through.url.replace(at_port, direct.size(), ":" + std::to_string(proxy_->port()) + "/");
        through.url += "&sslmode=disable&gssencmode=disable";
        cut_registry_ = std::make_unique<metrics::Registry>();
        cut_store_ = open(through, *cut_registry_);
        ASSERT_NE(cut_store_, nullptr);
        // Migrated and connected before a cut is armed (migrations COMMIT too).
        ASSERT_TRUE(cut_store_->instance(new_uuid(), false).ok());
    }

    void TearDown() override {
        cut_store_.reset();
        proxy_.reset();
        PostgresRuntimeStoreTest::TearDown();
    }

    /// Rows of `instance_id` in instances, read past the proxy.
    std::int64_t rows_of(const std::string& instance_id) {
        return sql()->count("SELECT count(*) FROM instances WHERE id = '" + instance_id + "'");
    }

    /// Its user task rows, read past the proxy.
    std::int64_t tasks_of(const std::string& instance_id) {
        return sql()->count("SELECT count(*) FROM user_tasks WHERE instance_id = '" + instance_id +
                            "'");
    }

    /// Commits `batch` through the proxy with one cut armed at the next frontend message of
    /// `type` holding `needle`, and checks that the cut happened.
    Status commit_with_cut(const app::Batch& batch, char type, const std::string& needle,
                           test::CuttingProxy::Cut when) {
        const int cuts_before = proxy_->cuts();
        proxy_->arm(type, needle, when);
        Status status = cut_store_->commit(batch);
        EXPECT_EQ(proxy_->cuts(), cuts_before + 1);
        return status;
    }

    /// The answer to a write whose outcome the store cannot know: 503 DB_UNAVAILABLE.
    static void expect_in_doubt(const Status& status) {
        ASSERT_FALSE(status.ok());
        EXPECT_EQ(status.error().code, "DB_UNAVAILABLE") << status.error().internal;
        EXPECT_EQ(status.error().kind, ErrorKind::kUnavailable);
        EXPECT_GE(status.error().retry_after_seconds, 1);
        EXPECT_NE(status.error().internal.find("outcome unknown"), std::string::npos)
            << status.error().internal;
    }

    /// A later write through the proxy commits: the store replaced the cut connection.
    void expect_store_recovers() {
        app::Batch next;
        next.instances = {straight_through(order_, at(9)), new_instance(order_, at(9))};
        const Status committed = cut_store_->commit(next);
        ASSERT_TRUE(committed.ok()) << committed.error().internal;
        EXPECT_EQ(rows_of(next.instances[0].instance.id), 1);
        EXPECT_EQ(tasks_of(next.instances[1].instance.id), 1);
    }

    std::unique_ptr<test::CuttingProxy> proxy_;
    std::unique_ptr<metrics::Registry> cut_registry_;
    std::unique_ptr<Store> cut_store_;
};

using Cut = test::CuttingProxy::Cut;

TEST_P(PostgresCutConnectionTest, AStraightBatchWhoseReplyIsLostIsInDoubtAndNotRunAgain) {
    // A batch of straight-through starts is one statement outside a transaction block: it
    // commits by itself. Lost after PostgreSQL ran it, its outcome is unknown: 503, and the
    // store must not run it again (it would fail as a duplicate, or write twice).
    app::Batch batch;
    batch.instances = {straight_through(order_, at(1)), straight_through(order_, at(2))};
    expect_in_doubt(commit_with_cut(batch, 'B', pg::stmt::kInsertInstances.name, Cut::kReply));
    for (const auto& write : batch.instances) {
        EXPECT_EQ(rows_of(write.instance.id), 1);  // it did happen, once
    }
    EXPECT_EQ(history_commits(batch.instances[0].instance.id), 1);
    expect_store_recovers();
}

TEST_P(PostgresCutConnectionTest, AStraightBatchCutBeforeItArrivesIsInDoubtAndWroteNothing) {
    // The store cannot tell this cut from the one above: the same answer, and here nothing is
    // written (a client retrying after the 503 starts the instances once).
    app::Batch batch;
    batch.instances = {straight_through(order_, at(1))};
    expect_in_doubt(
        commit_with_cut(batch, 'B', pg::stmt::kInsertInstances.name, Cut::kBeforeForwarding));
    EXPECT_EQ(rows_of(batch.instances[0].instance.id), 0);

    const Status retried = cut_store_->commit(batch);
    ASSERT_TRUE(retried.ok()) << retried.error().internal;
    EXPECT_EQ(rows_of(batch.instances[0].instance.id), 1);
}

TEST_P(PostgresCutConnectionTest, ATransactionCutBeforeItsCommitRunsAgainOnANewConnection) {
    // A batch with waits is a transaction. Cut after PostgreSQL ran one of its statements but
    // before COMMIT was sent, it rolled back, and the store runs it again on a fresh
    // connection: the caller sees success and every row is there once.
    app::InstanceWrite write = new_instance(order_, at(1));
    app::Batch batch;
    batch.instances = {write};
    const Status committed = commit_with_cut(batch, 'B', pg::stmt::kInsertTasks.name, Cut::kReply);
    ASSERT_TRUE(committed.ok()) << committed.error().code << " / " << committed.error().internal;
    EXPECT_EQ(rows_of(write.instance.id), 1);
    EXPECT_EQ(tasks_of(write.instance.id), 1);
}

TEST_P(PostgresCutConnectionTest, ATransactionWhoseCommitIsCutIsInDoubtWhetherItRanOrNot) {
    // Once COMMIT is written to the socket, a lost connection leaves the outcome unknown:
    // 503, not run again. Cut before it arrived, nothing is written; cut after it ran, all is.
    app::Batch never;
    never.instances = {new_instance(order_, at(1))};
    expect_in_doubt(commit_with_cut(never, 'Q', "COMMIT", Cut::kBeforeForwarding));
    EXPECT_EQ(rows_of(never.instances[0].instance.id), 0);

    app::Batch done;
    done.instances = {new_instance(order_, at(2))};
    expect_in_doubt(commit_with_cut(done, 'Q', "COMMIT", Cut::kReply));
    EXPECT_EQ(rows_of(done.instances[0].instance.id), 1);
    EXPECT_EQ(tasks_of(done.instances[0].instance.id), 1);
    expect_store_recovers();
}

INSTANTIATE_TEST_SUITE_P(Postgres, PostgresCutConnectionTest, ::testing::Values(Backend::kPostgres),
                         backend_name);

INSTANTIATE_TEST_SUITE_P(Postgres, PostgresRuntimeStoreTest, ::testing::Values(Backend::kPostgres),
                         backend_name);

}  // namespace
}  // namespace pythmata::store
