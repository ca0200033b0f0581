// RuntimeStore::delete_ended_instances (history retention) on both backends: a temp SQLite file
// and a real PostgreSQL 15 (tests/support/postgres, one schema per test). Only instances that
// ended before the cutoff go, with their history and everything that cascades; batches are
// bounded and oldest first; a parent goes after its children; concurrent sweeps on PostgreSQL
// delete every row once; a process-key filter (only / except) limits a sweep to some processes.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>
#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "postgres_server.hpp"
#include "pythmata/common/uuid.hpp"
#include "pythmata/metrics/registry.hpp"
#include "pythmata/store/store.hpp"

namespace pythmata::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

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

TimePoint at(std::int64_t ms) {
    return from_epoch_ms(1'800'000'000'000 + ms);
}

/// Counts rows with the test's own connection.
std::int64_t count_rows(const std::string& url, const std::string& sqlite_path,
                        const std::string& sql) {
    if (!sqlite_path.empty()) {
        sqlite3* db = nullptr;
        sqlite3_open_v2(sqlite_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
        sqlite3_busy_timeout(db, 5000);
        sqlite3_stmt* stmt = nullptr;
        std::int64_t value = -1;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
            sqlite3_step(stmt) == SQLITE_ROW) {
            value = sqlite3_column_int64(stmt, 0);
        }
        sqlite3_finalize(stmt);
        sqlite3_close_v2(db);
        return value;
    }
    pqxx::connection connection(url);
    pqxx::nontransaction tx(connection);
    return tx.exec1(sql)[0].as<std::int64_t>();
}

class RetentionStoreTest : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        settings_.pool_size = 4;
        settings_.max_overflow = 2;
        settings_.pool_timeout = 2s;
        settings_.statement_timeout = 10s;
        settings_.connect_timeout = 2s;
        if (GetParam() == Backend::kSqlite) {
            std::string pattern =
                (fs::temp_directory_path() / "pythmata-retention-XXXXXX").string();
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
            static std::atomic<int> counter{0};
            const std::string schema =
                "retention_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
            ASSERT_TRUE(postgres_->execute("CREATE SCHEMA " + schema)) << postgres_->log_tail();
            settings_.url = postgres_->schema_url(schema);
        }
        auto opened = open_store(settings_, registry_);
        ASSERT_TRUE(opened.ok()) << opened.error().message << " / " << opened.error().internal;
        store_ = std::move(opened).value();
        auto deployed = store_->deploy({{"Order", "Order", "<definitions id=\"h\"/>", "h"}}, at(0));
        ASSERT_TRUE(deployed.ok());
        definition_ = deployed.value()[0].record;
        for (const char* key : {"Invoice", "Audit"}) {
            auto other = store_->deploy(
                {{key, key, std::string("<definitions id=\"") + key + "\"/>", key}}, at(0));
            ASSERT_TRUE(other.ok());
            others_.push_back(other.value()[0].record);
        }
    }

    void TearDown() override {
        store_.reset();
        if (!dir_.empty()) {
            std::error_code ec;
            fs::remove_all(dir_, ec);
        }
    }

    /// An instance with `status`, ended at `ended` (nullopt: still running), with an open user
    /// task, an incident and two history rows.
    std::string add(const std::string& status, std::optional<TimePoint> ended,
                    std::optional<std::string> parent = std::nullopt) {
        return add_of(definition_, status, ended, parent);
    }

    /// As add(), for an instance of `definition`.
    std::string add_of(const app::DefinitionRecord& definition, const std::string& status,
                       std::optional<TimePoint> ended,
                       std::optional<std::string> parent = std::nullopt) {
        app::InstanceWrite w;
        w.insert = true;
        w.instance.id = new_uuid();
        w.instance.definition_id = definition.id;
        w.instance.process_key = definition.key;
        w.instance.process_version = definition.version;
        w.instance.status = status;
        w.instance.state = "state";
        w.instance.parent_instance_id = parent;
        w.instance.created_at = at(0);
        w.instance.updated_at = ended.value_or(at(0));
        w.instance.ended_at = ended;
        app::WaitRow task;
        task.id = new_uuid();
        task.kind = app::WaitRowKind::kUserTask;
        task.instance_id = w.instance.id;
        task.wait_id = 1;
        task.element_id = "review";
        task.name = "Review";
        task.created_at = at(0);
        w.waits_opened.push_back(task);
        for (const char* element : {"start", "review"}) {
            w.history.push_back({w.instance.id, element, "userTask", element,
                                 app::HistoryEventKind::kStarted, at(0)});
        }
        w.incidents_opened.push_back({new_uuid(), w.instance.id, 1, std::nullopt, "review",
                                      "SCRIPT", "boom", "OPEN", at(0), std::nullopt});
        app::Batch batch;
        batch.instances.push_back(w);
        const Status committed = store_->commit(batch);
        EXPECT_TRUE(committed.ok())
            << committed.error().message << " / " << committed.error().internal;
        return w.instance.id;
    }

    bool exists(const std::string& id) {
        auto row = store_->instance(id, false);
        EXPECT_TRUE(row.ok());
        return row.ok() && row.value().has_value();
    }

    std::int64_t count(const std::string& sql) {
        return count_rows(settings_.url, sqlite_path_, sql);
    }

    /// Commits of history stored: history rows and, on PostgreSQL, the first commit that a new
    /// instance's own row holds (migration 11).
    std::int64_t history_commits() {
        return count("SELECT count(*) FROM history") +
               (GetParam() == Backend::kPostgres
                    ? count("SELECT count(*) FROM instances WHERE history_entries > 0")
                    : 0);
    }

    /// Entries of history stored, counted the same way.
    std::int64_t history_entries() {
        return count("SELECT coalesce(sum(entries), 0) FROM history") +
               (GetParam() == Backend::kPostgres
                    ? count("SELECT coalesce(sum(history_entries), 0) FROM instances")
                    : 0);
    }

    app::RetentionResult sweep(TimePoint cutoff, std::size_t max,
                               const app::ProcessKeyFilter& filter = app::ProcessKeyFilter::all()) {
        auto result = store_->delete_ended_instances(cutoff, max, filter);
        EXPECT_TRUE(result.ok()) << result.error().message << " / " << result.error().internal;
        return result.ok() ? result.value() : app::RetentionResult{};
    }

    app::DbSettings settings_;
    fs::path dir_;
    std::string sqlite_path_;
    test::PostgresServer* postgres_ = nullptr;
    metrics::Registry registry_;
    std::unique_ptr<Store> store_;
    app::DefinitionRecord definition_;           ///< process key Order
    std::vector<app::DefinitionRecord> others_;  ///< Invoice, Audit
};

TEST_P(RetentionStoreTest, DeletesOnlyInstancesEndedBeforeTheCutoffWithEverythingTheyOwn) {
    const auto completed = add("COMPLETED", at(1000));
    const auto cancelled = add("CANCELLED", at(2000));
    const auto recent = add("COMPLETED", at(5000));
    const auto running = add("RUNNING", std::nullopt);
    const auto error = add("ERROR", std::nullopt);

    const auto result = sweep(at(3000), 100);
    EXPECT_EQ(result.instances, 2);
    EXPECT_EQ(result.history, 4);
    EXPECT_FALSE(exists(completed));
    EXPECT_FALSE(exists(cancelled));
    EXPECT_TRUE(exists(recent));
    EXPECT_TRUE(exists(running));
    EXPECT_TRUE(exists(error));
    // Three instances left, each with its own two history entries (one row), task and incident.
    EXPECT_EQ(history_commits(), 3);
    EXPECT_EQ(history_entries(), 6);
    EXPECT_EQ(count("SELECT count(*) FROM user_tasks"), 3);
    EXPECT_EQ(count("SELECT count(*) FROM incidents"), 3);
    // Nothing else is old enough.
    EXPECT_EQ(sweep(at(3000), 100).instances, 0);
}

TEST_P(RetentionStoreTest, BatchesAreBoundedAndOldestFirst) {
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        ids.push_back(add("COMPLETED", at(100 * (5 - i))));  // ids[4] ended first
    }
    EXPECT_EQ(sweep(at(10'000), 2).instances, 2);
    EXPECT_FALSE(exists(ids[4]));
    EXPECT_FALSE(exists(ids[3]));
    EXPECT_TRUE(exists(ids[2]));
    EXPECT_EQ(sweep(at(10'000), 2).instances, 2);
    EXPECT_EQ(sweep(at(10'000), 2).instances, 1);
    EXPECT_EQ(sweep(at(10'000), 2).instances, 0);
    EXPECT_EQ(count("SELECT count(*) FROM instances"), 0);
    EXPECT_EQ(history_commits(), 0);
}

TEST_P(RetentionStoreTest, AParentGoesOnlyAfterItsChildren) {
    const auto parent = add("COMPLETED", at(100));
    const auto child = add("COMPLETED", at(90), parent);
    const auto first = sweep(at(1000), 10);
    EXPECT_EQ(first.instances, 1);
    EXPECT_FALSE(exists(child));
    EXPECT_TRUE(exists(parent));
    EXPECT_EQ(sweep(at(1000), 10).instances, 1);
    EXPECT_FALSE(exists(parent));
    EXPECT_EQ(history_commits(), 0) << "no orphaned history of the child";
}

TEST_P(RetentionStoreTest, ConcurrentSweepsDeleteEveryInstanceOnce) {
    constexpr int kInstances = 60;
    for (int i = 0; i < kInstances; ++i) {
        add("COMPLETED", at(i));
    }
    auto worker = [this] {
        std::int64_t deleted = 0;
        while (true) {
            auto batch =
                store_->delete_ended_instances(at(100'000), 7, app::ProcessKeyFilter::all());
            if (!batch.ok()) {
                ADD_FAILURE() << batch.error().message << " / " << batch.error().internal;
                return deleted;
            }
            deleted += batch.value().instances;
            if (batch.value().instances == 0) {
                return deleted;
            }
        }
    };
    auto a = std::async(std::launch::async, worker);
    auto b = std::async(std::launch::async, worker);
    EXPECT_EQ(a.get() + b.get(), kInstances);
    EXPECT_EQ(count("SELECT count(*) FROM instances"), 0);
}

TEST_P(RetentionStoreTest, AnOnlyFilterDeletesInstancesOfTheListedProcessesAlone) {
    const auto order = add("COMPLETED", at(100));
    const auto invoice = add_of(others_[0], "COMPLETED", at(100));
    const auto audit = add_of(others_[1], "CANCELLED", at(100));
    const auto invoice_recent = add_of(others_[0], "COMPLETED", at(5000));

    const auto result = sweep(at(1000), 100, app::ProcessKeyFilter::only({"Invoice", "Nope"}));
    EXPECT_EQ(result.instances, 1);
    EXPECT_EQ(result.history, 2);
    EXPECT_FALSE(exists(invoice));
    EXPECT_TRUE(exists(order));
    EXPECT_TRUE(exists(audit));
    EXPECT_TRUE(exists(invoice_recent)) << "the cutoff still applies inside the filter";
    // An empty "only" list selects nothing.
    EXPECT_EQ(sweep(at(1000), 100, app::ProcessKeyFilter::only({})).instances, 0);
    EXPECT_TRUE(exists(order));
    EXPECT_TRUE(exists(audit));
}

TEST_P(RetentionStoreTest, AnExceptFilterSparesTheListedProcesses) {
    const auto order = add("COMPLETED", at(100));
    const auto invoice = add_of(others_[0], "COMPLETED", at(100));
    const auto audit = add_of(others_[1], "CANCELLED", at(100));

    const auto result = sweep(at(1000), 100, app::ProcessKeyFilter::except({"Order", "Audit"}));
    EXPECT_EQ(result.instances, 1);
    EXPECT_FALSE(exists(invoice));
    EXPECT_TRUE(exists(order));
    EXPECT_TRUE(exists(audit));
    // An empty "except" list is every process; batches stay bounded under a filter.
    EXPECT_EQ(sweep(at(1000), 1, app::ProcessKeyFilter::except({})).instances, 1);
    EXPECT_EQ(sweep(at(1000), 1, app::ProcessKeyFilter::except({})).instances, 1);
    EXPECT_EQ(sweep(at(1000), 1, app::ProcessKeyFilter::except({})).instances, 0);
    EXPECT_EQ(count("SELECT count(*) FROM instances"), 0);
}

TEST_P(RetentionStoreTest, AKeyWithQuotesOrCommasIsMatchedExactly) {
    // The keys travel as an array literal on PostgreSQL and as bound parameters on SQLite.
    const auto odd_key =
        store_->deploy({{"Odd,\"key\"\\x", "odd", "<definitions id=\"odd\"/>", "odd"}}, at(0));
    ASSERT_TRUE(odd_key.ok());
    const auto odd = add_of(odd_key.value()[0].record, "COMPLETED", at(100));
    const auto order = add("COMPLETED", at(100));
    EXPECT_EQ(sweep(at(1000), 100, app::ProcessKeyFilter::only({"Odd"})).instances, 0);
    EXPECT_EQ(sweep(at(1000), 100, app::ProcessKeyFilter::except({"Odd,\"key\"\\x"})).instances, 1);
    EXPECT_TRUE(exists(odd));
    EXPECT_FALSE(exists(order));
    EXPECT_EQ(sweep(at(1000), 100, app::ProcessKeyFilter::only({"Odd,\"key\"\\x"})).instances, 1);
    EXPECT_FALSE(exists(odd));
}

INSTANTIATE_TEST_SUITE_P(Backends, RetentionStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), backend_name);

}  // namespace
}  // namespace pythmata::store
