// One suite for both storage backends (a temp SQLite file and a real PostgreSQL 15 started by
// tests/support/postgres), plus the backend-specific checks: SQLite durability pragmas,
// PostgreSQL outage and recovery, URL validation.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>
#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "postgres_server.hpp"
#include "pythmata/common/uuid.hpp"
#include "pythmata/metrics/registry.hpp"
#include "pythmata/store/store.hpp"

namespace pythmata::store {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

enum class Backend { kSqlite, kPostgres };

// Readable parameter values in test listings (and ctest names).
void PrintTo(Backend backend, std::ostream* out) {
    *out << (backend == Backend::kSqlite ? "sqlite" : "postgresql");
}

std::string backend_name(const ::testing::TestParamInfo<Backend>& info) {
    return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

/// One PostgreSQL server per test process, started on first use and stopped at exit.
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

app::NewDefinition definition(const std::string& key, const std::string& hash,
                              const std::string& name = "") {
    return {key, name.empty() ? key + " process" : name,
            "<definitions><process id=\"" + key + "\" hash=\"" + hash + "\"/></definitions>", hash};
}

/// Direct SQL on the test's own connection, to arrange rows the store has no API for yet and
/// to check what it wrote. Plain SQL valid on both backends.
class Sql {
  public:
    virtual ~Sql() = default;
    virtual void exec(const std::string& sql) = 0;
    virtual std::int64_t count(const std::string& sql) = 0;
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
    void exec(const std::string& sql) override {
        char* message = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &message) != SQLITE_OK) {
            std::string what = message != nullptr ? message : "?";
            sqlite3_free(message);
            throw std::runtime_error(what + " in " + sql);
        }
    }
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

  private:
    sqlite3* db_ = nullptr;
};

class PostgresSql final : public Sql {
  public:
    explicit PostgresSql(const std::string& url) : connection_(url) {}
    void exec(const std::string& sql) override {
        pqxx::nontransaction tx(connection_);
        tx.exec(sql);
    }
    std::int64_t count(const std::string& sql) override {
        pqxx::nontransaction tx(connection_);
        return tx.exec1(sql)[0].as<std::int64_t>();
    }

  private:
    pqxx::connection connection_;
};

/// The value of one sample line of the registry's text output, or -1 when absent.
double sample(metrics::Registry& registry, const std::string& series) {
    const std::string text = registry.render();
    const auto pos = text.find(series + " ");
    if (pos == std::string::npos) {
        return -1;
    }
    return std::stod(text.substr(pos + series.size() + 1));
}

/// Holds the lock a deploy needs on the test's own connection until release().
class WriteBlocker {
  public:
    WriteBlocker(Backend backend, const std::string& sqlite_path, const std::string& url) {
        if (backend == Backend::kSqlite) {
            sqlite_ = std::make_unique<SqliteSql>(sqlite_path);
            sqlite_->exec("BEGIN IMMEDIATE");
        } else {
            pg_ = std::make_unique<pqxx::connection>(url);
            lock_ = std::make_unique<pqxx::work>(*pg_);
            lock_->exec("LOCK TABLE definitions IN ACCESS EXCLUSIVE MODE");
        }
    }
    ~WriteBlocker() { release(); }
    void release() {
        if (sqlite_) {
            sqlite_->exec("ROLLBACK");
            sqlite_.reset();
        }
        if (lock_) {
            lock_->abort();
            lock_.reset();
        }
    }

  private:
    std::unique_ptr<SqliteSql> sqlite_;
    std::unique_ptr<pqxx::connection> pg_;
    std::unique_ptr<pqxx::work> lock_;
};

class StoreTest : public ::testing::TestWithParam<Backend> {
  protected:
    void SetUp() override {
        settings_.pool_size = 4;
        settings_.max_overflow = 2;
        settings_.pool_timeout = 2s;
        settings_.statement_timeout = 10s;
        settings_.connect_timeout = 2s;
        if (GetParam() == Backend::kSqlite) {
            std::string pattern = (fs::temp_directory_path() / "pythmata-store-XXXXXX").string();
            ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
            dir_ = pattern;
            // Nested, missing directories: open_store must create them.
            sqlite_path_ = (dir_ / "var" / "db" / "store.db").string();
            settings_.url = "sqlite://" + sqlite_path_;
        } else {
            std::string why;
            postgres_ = shared_postgres(why);
            if (postgres_ == nullptr) {
                GTEST_SKIP() << "PostgreSQL backend skipped: " << why;
            }
            // An outage test that failed half-way may have left it stopped.
            ASSERT_TRUE(postgres_->running() || postgres_->start()) << postgres_->log_tail();
            // A schema per test: as isolated as a database, and far cheaper to make.
            const std::string schema = unique_name("store");
            ASSERT_TRUE(postgres_->execute("CREATE SCHEMA " + schema)) << postgres_->log_tail();
            settings_.url = postgres_->schema_url(schema);
        }
        registry_ = std::make_unique<metrics::Registry>();
        store_ = open(settings_, *registry_);
        ASSERT_NE(store_, nullptr);
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

    app::DeployedDefinition deploy_one(const app::NewDefinition& d, TimePoint now) {
        auto deployed = store_->deploy({d}, now);
        EXPECT_TRUE(deployed.ok()) << (deployed.ok() ? "" : deployed.error().internal);
        if (!deployed.ok() || deployed.value().size() != 1) {
            ADD_FAILURE() << "deploy of " << d.key << " failed";
            return {};
        }
        return deployed.value()[0];
    }

    /// Inserts an instance of version `version` of `key` with `status`, and one row in each of
    /// its dependent tables.
    void add_instance(Sql& sql, const std::string& id, const std::string& key, int version,
                      const std::string& status) {
        auto record = store_->version(key, version);
        ASSERT_TRUE(record.ok() && record.value().has_value());
        const std::string definition_id = record.value()->id;
        sql.exec(
            "INSERT INTO instances (id, definition_id, process_key, process_version, status,"
            " created_at, updated_at) VALUES ('" +
            id + "', '" + definition_id + "', '" + key + "', " + std::to_string(version) + ", '" +
            status + "', 1, 1)");
        const std::string suffix = id.substr(8);
        sql.exec(
            "INSERT INTO user_tasks (id, instance_id, element_id, state, created_at) VALUES"
            " ('10000000" +
            suffix + "', '" + id + "', 'task', 'OPEN', 1)");
        sql.exec(
            "INSERT INTO jobs (id, kind, type, instance_id, element_id, due_at, created_at)"
            " VALUES ('20000000" +
            suffix + "', 'timer', 'duration', '" + id + "', 'wait', 5, 1)");
        sql.exec(
            "INSERT INTO message_subscriptions (id, name, correlation_key, instance_id,"
            " element_id, created_at) VALUES ('30000000" +
            suffix + "', 'paid', 'o-1', '" + id + "', 'catch', 1)");
        sql.exec(
            "INSERT INTO incidents (id, instance_id, element_id, kind, state, created_at)"
            " VALUES ('40000000" +
            suffix + "', '" + id + "', 'task', 'JOB_FAILED', 'OPEN', 1)");
        sql.exec("INSERT INTO history (instance_id, entries, events) VALUES ('" + id +
                 "', 1, '[{\"element_id\":\"start\",\"element_type\":\"startEvent\","
                 "\"name\":\"\",\"event\":\"COMPLETED\",\"at\":1}]')");
    }

    app::DbSettings settings_;
    fs::path dir_;
    std::string sqlite_path_;
    test::PostgresServer* postgres_ = nullptr;
    std::unique_ptr<metrics::Registry> registry_;
    std::unique_ptr<Store> store_;
};

TEST_P(StoreTest, FirstDeployOfAKeyCreatesVersionOne) {
    const auto deployed = deploy_one(definition("Order", "h1"), at(0));
    EXPECT_TRUE(deployed.created);
    EXPECT_EQ(deployed.record.version, 1);
    EXPECT_EQ(deployed.record.key, "Order");
    EXPECT_EQ(deployed.record.name, "Order process");
    EXPECT_EQ(deployed.record.hash, "h1");
    EXPECT_EQ(deployed.record.created_at, at(0));
    EXPECT_TRUE(is_uuid(deployed.record.id)) << deployed.record.id;
    EXPECT_FALSE(deployed.record.bpmn_xml.empty());
}

TEST_P(StoreTest, ChangedDocumentMakesTheNextVersion) {
    deploy_one(definition("Order", "h1"), at(0));
    const auto second = deploy_one(definition("Order", "h2"), at(1));
    EXPECT_TRUE(second.created);
    EXPECT_EQ(second.record.version, 2);
}

TEST_P(StoreTest, IdenticalRedeployReturnsTheLatestWithoutCreating) {
    const auto first = deploy_one(definition("Order", "h1"), at(0));
    const auto again = deploy_one(definition("Order", "h1"), at(5));
    EXPECT_FALSE(again.created);
    EXPECT_EQ(again.record.id, first.record.id);
    EXPECT_EQ(again.record.version, 1);
    EXPECT_EQ(again.record.created_at, at(0));
    EXPECT_EQ(again.record.bpmn_xml, first.record.bpmn_xml);

    // Only the latest version counts: going back to an older document is a new version.
    deploy_one(definition("Order", "h2"), at(6));
    const auto back = deploy_one(definition("Order", "h1"), at(7));
    EXPECT_TRUE(back.created);
    EXPECT_EQ(back.record.version, 3);
}

TEST_P(StoreTest, DeployOfSeveralProcessesReturnsEachInOrder) {
    auto deployed =
        store_->deploy({definition("A", "x"), definition("B", "x"), definition("C", "x")}, at(0));
    ASSERT_TRUE(deployed.ok()) << deployed.error().internal;
    ASSERT_EQ(deployed.value().size(), 3u);
    EXPECT_EQ(deployed.value()[0].record.key, "A");
    EXPECT_EQ(deployed.value()[2].record.key, "C");
    for (const auto& d : deployed.value()) {
        EXPECT_TRUE(d.created);
        EXPECT_EQ(d.record.version, 1);
    }
    auto again = store_->deploy({definition("A", "x"), definition("B", "y")}, at(1));
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(again.value()[0].created);
    EXPECT_TRUE(again.value()[1].created);
    EXPECT_EQ(again.value()[1].record.version, 2);
    auto empty = store_->deploy({}, at(2));
    ASSERT_TRUE(empty.ok());
    EXPECT_TRUE(empty.value().empty());
}

TEST_P(StoreTest, LatestVersionAndByIdReturnTheDocument) {
    const auto v1 = deploy_one(definition("Order", "h1"), at(0));
    const auto v2 = deploy_one(definition("Order", "h2"), at(1));

    auto latest = store_->latest("Order");
    ASSERT_TRUE(latest.ok());
    ASSERT_TRUE(latest.value().has_value());
    EXPECT_EQ(latest.value()->id, v2.record.id);
    EXPECT_EQ(latest.value()->bpmn_xml, v2.record.bpmn_xml);
    EXPECT_EQ(latest.value()->created_at, at(1));

    auto first = store_->version("Order", 1);
    ASSERT_TRUE(first.ok() && first.value().has_value());
    EXPECT_EQ(first.value()->id, v1.record.id);
    EXPECT_EQ(first.value()->hash, "h1");

    auto by_id = store_->by_id(v1.record.id);
    ASSERT_TRUE(by_id.ok() && by_id.value().has_value());
    EXPECT_EQ(by_id.value()->version, 1);
    EXPECT_EQ(by_id.value()->bpmn_xml, v1.record.bpmn_xml);
}

TEST_P(StoreTest, UnknownKeysVersionsAndIdsAreEmptyNotErrors) {
    deploy_one(definition("Order", "h1"), at(0));
    auto latest = store_->latest("Nope");
    ASSERT_TRUE(latest.ok());
    EXPECT_FALSE(latest.value().has_value());
    auto version = store_->version("Order", 2);
    ASSERT_TRUE(version.ok());
    EXPECT_FALSE(version.value().has_value());
    auto by_id = store_->by_id(new_uuid());
    ASSERT_TRUE(by_id.ok());
    EXPECT_FALSE(by_id.value().has_value());
    auto malformed = store_->by_id("not-a-uuid");
    ASSERT_TRUE(malformed.ok());
    EXPECT_FALSE(malformed.value().has_value());
}

TEST_P(StoreTest, ListLatestShowsEachKeyOnceNewestFirstWithoutXml) {
    deploy_one(definition("A", "1", "Alpha Order"), at(0));
    deploy_one(definition("B", "1", "Beta"), at(1));
    deploy_one(definition("C", "1", "Gamma ORDER"), at(2));
    deploy_one(definition("A", "2", "Alpha Order"), at(3));

    auto all = store_->list_latest({}, {1, 20});
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all.value().total, 3);
    ASSERT_EQ(all.value().items.size(), 3u);
    EXPECT_EQ(all.value().items[0].key, "A");
    EXPECT_EQ(all.value().items[0].version, 2);
    EXPECT_EQ(all.value().items[1].key, "C");
    EXPECT_EQ(all.value().items[2].key, "B");
    for (const auto& item : all.value().items) {
        EXPECT_TRUE(item.bpmn_xml.empty());
        EXPECT_FALSE(item.id.empty());
    }
}

TEST_P(StoreTest, ListLatestFiltersByExactKeyAndCaseInsensitiveName) {
    deploy_one(definition("A", "1", "Alpha Order"), at(0));
    deploy_one(definition("B", "1", "Beta"), at(1));
    deploy_one(definition("C", "1", "Gamma ORDER"), at(2));
    deploy_one(definition("AB", "1", "Alpha 100%_x"), at(3));

    app::DefinitionFilter by_name;
    by_name.name = "order";
    auto named = store_->list_latest(by_name, {1, 20});
    ASSERT_TRUE(named.ok());
    EXPECT_EQ(named.value().total, 2);
    ASSERT_EQ(named.value().items.size(), 2u);
    EXPECT_EQ(named.value().items[0].key, "C");
    EXPECT_EQ(named.value().items[1].key, "A");

    app::DefinitionFilter by_key;
    by_key.key = "A";
    auto keyed = store_->list_latest(by_key, {1, 20});
    ASSERT_TRUE(keyed.ok());
    EXPECT_EQ(keyed.value().total, 1);
    ASSERT_EQ(keyed.value().items.size(), 1u);
    EXPECT_EQ(keyed.value().items[0].key, "A");

    // LIKE wildcards in the filter are plain characters.
    app::DefinitionFilter literal;
    literal.name = "%_";
    auto wild = store_->list_latest(literal, {1, 20});
    ASSERT_TRUE(wild.ok());
    ASSERT_EQ(wild.value().total, 1);
    EXPECT_EQ(wild.value().items[0].key, "AB");

    app::DefinitionFilter both;
    both.key = "B";
    both.name = "order";
    auto none = store_->list_latest(both, {1, 20});
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none.value().total, 0);
    EXPECT_TRUE(none.value().items.empty());
}

TEST_P(StoreTest, ListLatestPagesWithTheTotalOfAllPages) {
    for (int i = 0; i < 5; ++i) {
        deploy_one(definition("K" + std::to_string(i), "h"), at(i));
    }
    auto page2 = store_->list_latest({}, {2, 2});
    ASSERT_TRUE(page2.ok());
    EXPECT_EQ(page2.value().total, 5);
    ASSERT_EQ(page2.value().items.size(), 2u);
    EXPECT_EQ(page2.value().items[0].key, "K2");
    EXPECT_EQ(page2.value().items[1].key, "K1");
    auto page3 = store_->list_latest({}, {3, 2});
    ASSERT_TRUE(page3.ok());
    ASSERT_EQ(page3.value().items.size(), 1u);
    EXPECT_EQ(page3.value().items[0].key, "K0");
    auto beyond = store_->list_latest({}, {9, 2});
    ASSERT_TRUE(beyond.ok());
    EXPECT_EQ(beyond.value().total, 5);
    EXPECT_TRUE(beyond.value().items.empty());
}

TEST_P(StoreTest, VersionsListsEveryVersionNewestFirst) {
    for (int i = 0; i < 4; ++i) {
        deploy_one(definition("Order", "h" + std::to_string(i)), at(i));
    }
    deploy_one(definition("Other", "h"), at(10));
    auto all = store_->versions("Order", {1, 20});
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all.value().total, 4);
    ASSERT_EQ(all.value().items.size(), 4u);
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(all.value().items[i].version, 4 - i);
        EXPECT_TRUE(all.value().items[i].bpmn_xml.empty());
    }
    auto second_page = store_->versions("Order", {2, 3});
    ASSERT_TRUE(second_page.ok());
    EXPECT_EQ(second_page.value().total, 4);
    ASSERT_EQ(second_page.value().items.size(), 1u);
    EXPECT_EQ(second_page.value().items[0].version, 1);
    auto unknown = store_->versions("Nope", {1, 20});
    ASSERT_TRUE(unknown.ok());
    EXPECT_EQ(unknown.value().total, 0);
}

TEST_P(StoreTest, CountsUnfinishedInstancesOfEveryVersion) {
    deploy_one(definition("Order", "h1"), at(0));
    deploy_one(definition("Order", "h2"), at(1));
    deploy_one(definition("Other", "h1"), at(2));
    auto db = sql();
    add_instance(*db, "00000001-0000-4000-8000-000000000001", "Order", 1, "RUNNING");
    add_instance(*db, "00000002-0000-4000-8000-000000000002", "Order", 2, "SUSPENDED");
    add_instance(*db, "00000003-0000-4000-8000-000000000003", "Order", 2, "ERROR");
    add_instance(*db, "00000004-0000-4000-8000-000000000004", "Order", 2, "COMPLETED");
    add_instance(*db, "00000005-0000-4000-8000-000000000005", "Order", 1, "CANCELLED");
    add_instance(*db, "00000006-0000-4000-8000-000000000006", "Other", 1, "RUNNING");

    auto count = store_->count_unfinished_instances("Order");
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(count.value(), 3);
    auto none = store_->count_unfinished_instances("Nope");
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none.value(), 0);
}

TEST_P(StoreTest, DeleteKeyRefusesWhileInstancesRunUnlessCascade) {
    deploy_one(definition("Order", "h1"), at(0));
    deploy_one(definition("Order", "h2"), at(1));
    deploy_one(definition("Other", "h1"), at(2));
    auto db = sql();
    add_instance(*db, "00000001-0000-4000-8000-000000000001", "Order", 1, "RUNNING");
    add_instance(*db, "00000002-0000-4000-8000-000000000002", "Order", 2, "COMPLETED");
    add_instance(*db, "00000006-0000-4000-8000-000000000006", "Other", 1, "RUNNING");
    // A called sub-instance of an Order instance, of another process.
    db->exec(
        "INSERT INTO instances (id, definition_id, process_key, process_version, status,"
        " parent_instance_id, created_at, updated_at) SELECT"
        " '00000007-0000-4000-8000-000000000007', id, key, version, 'RUNNING',"
        " '00000001-0000-4000-8000-000000000001', 1, 1 FROM definitions WHERE key = 'Other'");
    db->exec(
        "INSERT INTO history (instance_id, entries, events) VALUES"
        " ('00000007-0000-4000-8000-000000000007', 1, '[{\"element_id\":\"s\","
        "\"element_type\":\"startEvent\",\"name\":\"\",\"event\":\"STARTED\",\"at\":1}]')");

    auto refused = store_->delete_key("Order", false);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().kind, ErrorKind::kConflict);
    EXPECT_EQ(refused.error().code, "PROCESS_HAS_INSTANCES");
    EXPECT_EQ(db->count("SELECT count(*) FROM definitions WHERE key = 'Order'"), 2);

    auto deleted = store_->delete_key("Order", true);
    ASSERT_TRUE(deleted.ok()) << deleted.error().internal;
    EXPECT_EQ(deleted.value(), 2);
    EXPECT_EQ(db->count("SELECT count(*) FROM definitions WHERE key = 'Order'"), 0);
    EXPECT_EQ(db->count("SELECT count(*) FROM instances"), 1);  // the Other instance
    EXPECT_EQ(db->count("SELECT count(*) FROM user_tasks"), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM jobs"), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM message_subscriptions"), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM incidents"), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM history"), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM history WHERE instance_id ="
                        " '00000006-0000-4000-8000-000000000006'"),
              1);
    auto gone = store_->latest("Order");
    ASSERT_TRUE(gone.ok());
    EXPECT_FALSE(gone.value().has_value());
}

TEST_P(StoreTest, DeleteKeyWithOnlyFinishedInstancesNeedsNoCascade) {
    deploy_one(definition("Order", "h1"), at(0));
    auto db = sql();
    add_instance(*db, "00000004-0000-4000-8000-000000000004", "Order", 1, "COMPLETED");
    auto deleted = store_->delete_key("Order", false);
    ASSERT_TRUE(deleted.ok()) << deleted.error().internal;
    EXPECT_EQ(deleted.value(), 1);
    EXPECT_EQ(db->count("SELECT count(*) FROM instances"), 0);
    EXPECT_EQ(db->count("SELECT count(*) FROM history"), 0);
    auto unknown = store_->delete_key("Order", false);
    ASSERT_TRUE(unknown.ok());
    EXPECT_EQ(unknown.value(), 0);
}

TEST_P(StoreTest, MigrationsAreRecordedOnceAndReopeningIsANoOp) {
    auto applied = store_->applied_migrations();
    ASSERT_TRUE(applied.ok()) << applied.error().internal;
    ASSERT_GE(applied.value().size(), 1u);
    EXPECT_EQ(applied.value()[0].version, 1);
    EXPECT_EQ(applied.value()[0].name, "init");
    for (std::size_t i = 1; i < applied.value().size(); ++i) {
        EXPECT_GT(applied.value()[i].version, applied.value()[i - 1].version);
    }
    deploy_one(definition("Order", "h1"), at(0));

    metrics::Registry other_registry;
    auto reopened = open(settings_, other_registry);
    ASSERT_NE(reopened, nullptr);
    auto again = reopened->applied_migrations();
    ASSERT_TRUE(again.ok());
    ASSERT_EQ(again.value().size(), applied.value().size());
    for (std::size_t i = 0; i < again.value().size(); ++i) {
        EXPECT_EQ(again.value()[i].version, applied.value()[i].version);
        EXPECT_EQ(again.value()[i].applied_at, applied.value()[i].applied_at);
    }
    auto db = sql();
    EXPECT_EQ(db->count("SELECT count(*) FROM schema_migrations"),
              static_cast<std::int64_t>(applied.value().size()));
    // The data survived the second open.
    auto latest = reopened->latest("Order");
    ASSERT_TRUE(latest.ok() && latest.value().has_value());
}

TEST_P(StoreTest, ConcurrentDeploysOfOneKeyGetDistinctConsecutiveVersions) {
    constexpr int kThreads = 6;
    constexpr int kEach = 4;
    // A second store object on the same database plays a second replica.
    metrics::Registry replica_registry;
    auto replica = open(settings_, replica_registry);
    ASSERT_NE(replica, nullptr);

    std::vector<std::future<std::vector<app::DeployedDefinition>>> results;
    for (int t = 0; t < kThreads; ++t) {
        Store* target = t % 2 == 0 ? store_.get() : replica.get();
        results.push_back(std::async(std::launch::async, [target, t] {
            std::vector<app::DeployedDefinition> mine;
            for (int i = 0; i < kEach; ++i) {
                auto deployed = target->deploy(
                    {definition("Hot", "t" + std::to_string(t) + "-" + std::to_string(i))}, at(i));
                if (!deployed.ok()) {
                    ADD_FAILURE() << deployed.error().code << " " << deployed.error().internal;
                    continue;
                }
                mine.push_back(deployed.value()[0]);
            }
            return mine;
        }));
    }
    std::set<int> versions;
    for (auto& result : results) {
        ASSERT_EQ(result.wait_for(60s), std::future_status::ready);
        for (const auto& deployed : result.get()) {
            EXPECT_TRUE(deployed.created);
            versions.insert(deployed.record.version);
        }
    }
    ASSERT_EQ(versions.size(), static_cast<std::size_t>(kThreads * kEach));
    EXPECT_EQ(*versions.begin(), 1);
    EXPECT_EQ(*versions.rbegin(), kThreads * kEach);
    auto all = store_->versions("Hot", {1, 1000});
    ASSERT_TRUE(all.ok());
    EXPECT_EQ(all.value().total, kThreads * kEach);
}

TEST_P(StoreTest, ExhaustedPoolFailsWithPoolTimeoutWithinTheTimeout) {
    app::DbSettings tight = settings_;
    tight.pool_size = 1;
    tight.max_overflow = 0;
    tight.pool_timeout = 300ms;
    metrics::Registry registry;
    auto store = open(tight, registry);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->deploy({definition("Order", "h0")}, at(0)).ok());

    // The test's own connection holds the lock a deploy needs, so that the store's only
    // (writer) connection stays leased by a blocked deploy.
    WriteBlocker blocker(GetParam(), sqlite_path_, settings_.url);
    auto blocked = std::async(std::launch::async, [&store] {
        return store->deploy({definition("Order", "h1")}, at(1)).ok();
    });
    const std::string pool = GetParam() == Backend::kSqlite ? "sqlite_writer" : "postgres";
    const std::string in_use = "pythmata_db_pool_in_use{pool=\"" + pool + "\"}";
    const auto deadline = Clock::now() + 5s;
    while (sample(registry, in_use) < 1 && Clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(sample(registry, in_use), 1) << registry.render();

    const auto started = Clock::now();
    auto refused = store->deploy({definition("Order", "h2")}, at(2));
    const auto waited = Clock::now() - started;
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, "DB_POOL_TIMEOUT");
    EXPECT_EQ(refused.error().kind, ErrorKind::kUnavailable);
    EXPECT_GE(refused.error().retry_after_seconds, 1);
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 2s);
    EXPECT_EQ(sample(registry, "pythmata_db_pool_timeouts_total{pool=\"" + pool + "\"}"), 1);

    blocker.release();
    ASSERT_EQ(blocked.wait_for(10s), std::future_status::ready);
    EXPECT_TRUE(blocked.get());
    EXPECT_EQ(sample(registry, in_use), 0);
    auto latest = store->latest("Order");
    ASSERT_TRUE(latest.ok() && latest.value().has_value());
    EXPECT_EQ(latest.value()->version, 2);
}

TEST_P(StoreTest, StatementOverItsTimeoutFailsWithDbTimeout) {
    app::DbSettings quick = settings_;
    quick.statement_timeout = 300ms;
    metrics::Registry registry;
    auto store = open(quick, registry);
    ASSERT_NE(store, nullptr);
    WriteBlocker blocker(GetParam(), sqlite_path_, settings_.url);

    const auto started = Clock::now();
    auto timed_out = store->deploy({definition("Order", "h1")}, at(0));
    const auto waited = Clock::now() - started;
    ASSERT_FALSE(timed_out.ok());
    EXPECT_EQ(timed_out.error().code, "DB_TIMEOUT") << timed_out.error().internal;
    EXPECT_EQ(timed_out.error().kind, ErrorKind::kUnavailable);
    EXPECT_GE(waited, 250ms);
    EXPECT_LT(waited, 3s);

    blocker.release();
    // The connection is fine afterwards.
    auto deployed = store->deploy({definition("Order", "h1")}, at(0));
    ASSERT_TRUE(deployed.ok()) << deployed.error().internal;
}

TEST_P(StoreTest, PingSucceedsAndPoolMetricsAreDeclared) {
    EXPECT_TRUE(store_->ping().ok());
    const std::string text = registry_->render();
    EXPECT_NE(text.find("pythmata_db_pool_size"), std::string::npos) << text;
    EXPECT_NE(text.find("pythmata_db_pool_wait_seconds_bucket"), std::string::npos);
    EXPECT_NE(text.find("pythmata_db_pool_timeouts_total"), std::string::npos);
    if (GetParam() == Backend::kPostgres) {
        EXPECT_EQ(sample(*registry_, "pythmata_db_pool_size{pool=\"postgres\"}"), 4);
        EXPECT_EQ(store_->backend(), "postgresql");
    } else {
        EXPECT_EQ(store_->backend(), "sqlite");
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), backend_name);

// ---- SQLite specifics -------------------------------------------------------------------

class SqliteStoreTest : public StoreTest {};

TEST_P(SqliteStoreTest, EveryConnectionIsDurableWalWithBusyTimeoutAndForeignKeys) {
    EXPECT_TRUE(fs::exists(sqlite_path_));
    auto settings = store_->connection_settings();
    ASSERT_TRUE(settings.ok()) << settings.error().internal;
    std::map<std::string, std::string> values(settings.value().begin(), settings.value().end());
    for (const std::string role : {"writer.", "reader."}) {
        EXPECT_EQ(values[role + "journal_mode"], "wal") << role;
        EXPECT_EQ(values[role + "synchronous"], "2") << role << " (2 = FULL)";
        EXPECT_EQ(values[role + "busy_timeout"], "10000") << role;
        EXPECT_EQ(values[role + "foreign_keys"], "1") << role;
    }
    // The writer checkpoints after 10,000 WAL pages instead of SQLite's default 1,000.
    EXPECT_EQ(values["writer.wal_autocheckpoint"], "10000");
}

TEST_P(SqliteStoreTest, TheCheckpointIntervalIsASetting) {
    store_.reset();
    settings_.sqlite_wal_autocheckpoint = 2000;
    metrics::Registry registry;
    store_ = open(settings_, registry);
    ASSERT_NE(store_, nullptr);
    auto settings = store_->connection_settings();
    ASSERT_TRUE(settings.ok()) << settings.error().internal;
    std::map<std::string, std::string> values(settings.value().begin(), settings.value().end());
    EXPECT_EQ(values["writer.wal_autocheckpoint"], "2000");
}

TEST_P(SqliteStoreTest, CommittedDeploysSurviveReopening) {
    deploy_one(definition("Order", "h1"), at(0));
    store_.reset();
    metrics::Registry registry;
    auto reopened = open(settings_, registry);
    ASSERT_NE(reopened, nullptr);
    auto latest = reopened->latest("Order");
    ASSERT_TRUE(latest.ok() && latest.value().has_value());
    EXPECT_EQ(latest.value()->hash, "h1");
}

INSTANTIATE_TEST_SUITE_P(Sqlite, SqliteStoreTest, ::testing::Values(Backend::kSqlite),
                         backend_name);

// ---- PostgreSQL specifics ---------------------------------------------------------------

class PostgresStoreTest : public StoreTest {};

TEST_P(PostgresStoreTest, EveryConnectionHasTheStatementTimeoutAndThePlanCacheMode) {
    auto settings = store_->connection_settings();
    ASSERT_TRUE(settings.ok()) << settings.error().internal;
    std::map<std::string, std::string> values(settings.value().begin(), settings.value().end());
    EXPECT_EQ(values["statement_timeout"], "10s");
    EXPECT_EQ(values["plan_cache_mode"], "force_generic_plan");

    store_.reset();
    settings_.plan_cache_mode = "auto";
    metrics::Registry registry;
    store_ = open(settings_, registry);
    ASSERT_NE(store_, nullptr);
    auto other = store_->connection_settings();
    ASSERT_TRUE(other.ok()) << other.error().internal;
    std::map<std::string, std::string> again(other.value().begin(), other.value().end());
    EXPECT_EQ(again["plan_cache_mode"], "auto");
    store_.reset();  // before `registry`
}

TEST_P(PostgresStoreTest, OverflowConnectionsServePeaksAndAreClosedAfterUse) {
    app::DbSettings peak = settings_;
    peak.pool_size = 1;
    peak.max_overflow = 2;
    peak.pool_timeout = 300ms;
    peak.overflow_idle = 0ms;  // overflow connections close as soon as they are returned
    peak.url += "&application_name=overflow_probe";
    metrics::Registry registry;
    auto store = open(peak, registry);
    ASSERT_NE(store, nullptr);

    WriteBlocker blocker(Backend::kPostgres, "", settings_.url);
    std::vector<std::future<bool>> blocked;
    for (int i = 0; i < 3; ++i) {
        blocked.push_back(std::async(std::launch::async, [&store, i] {
            return store->deploy({definition("Order", "h" + std::to_string(i))}, at(i)).ok();
        }));
    }
    const std::string in_use = "pythmata_db_pool_in_use{pool=\"postgres\"}";
    const auto deadline = Clock::now() + 5s;
    while (sample(registry, in_use) < 3 && Clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(sample(registry, in_use), 3) << registry.render();
    auto refused = store->latest("Order");
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.error().code, "DB_POOL_TIMEOUT");

    blocker.release();
    for (auto& result : blocked) {
        ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
        EXPECT_TRUE(result.get());
    }
    // Only the kept connection stays open; the two overflow ones were closed.
    auto probe = sql();
    const std::string sessions =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'overflow_probe'";
    const auto closed_by = Clock::now() + 5s;
    while (probe->count(sessions) != 1 && Clock::now() < closed_by) {
        std::this_thread::sleep_for(20ms);
    }
    EXPECT_EQ(probe->count(sessions), 1);
    auto versions = store->versions("Order", {1, 20});
    ASSERT_TRUE(versions.ok());
    EXPECT_EQ(versions.value().total, 3);
}

TEST_P(PostgresStoreTest, OverflowConnectionsStayOpenForTheGracePeriodAfterAPeak) {
    app::DbSettings peak = settings_;
    peak.pool_size = 1;
    peak.max_overflow = 2;
    peak.pool_timeout = 2s;
    peak.overflow_idle = 30s;
    peak.url += "&application_name=overflow_kept";
    metrics::Registry registry;
    auto store = open(peak, registry);
    ASSERT_NE(store, nullptr);

    WriteBlocker blocker(Backend::kPostgres, "", settings_.url);
    std::vector<std::future<bool>> blocked;
    for (int i = 0; i < 3; ++i) {
        blocked.push_back(std::async(std::launch::async, [&store, i] {
            return store->deploy({definition("Kept", "h" + std::to_string(i))}, at(i)).ok();
        }));
    }
    const std::string in_use = "pythmata_db_pool_in_use{pool=\"postgres\"}";
    const auto deadline = Clock::now() + 5s;
    while (sample(registry, in_use) < 3 && Clock::now() < deadline) {
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(sample(registry, in_use), 3) << registry.render();
    blocker.release();
    for (auto& result : blocked) {
        ASSERT_EQ(result.wait_for(10s), std::future_status::ready);
        EXPECT_TRUE(result.get());
    }
    // Within db_overflow_idle_ms all three stay open, so the next burst pays no connect.
    std::this_thread::sleep_for(300ms);
    auto probe = sql();
    EXPECT_EQ(probe->count(
                  "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'overflow_kept'"),
              3);
}

TEST_P(PostgresStoreTest, OutageFailsFastWithDbUnavailableAndRecoversWithoutReopening) {
    deploy_one(definition("Order", "h1"), at(0));
    ASSERT_TRUE(postgres_->stop(test::PostgresServer::Shutdown::kFast));

    const auto started = Clock::now();
    auto down = store_->latest("Order");
    EXPECT_LT(Clock::now() - started, 3s);
    ASSERT_FALSE(down.ok());
    EXPECT_EQ(down.error().code, "DB_UNAVAILABLE");
    EXPECT_EQ(down.error().kind, ErrorKind::kUnavailable);
    EXPECT_EQ(down.error().message.find("SQL"), std::string::npos);
    auto deploy = store_->deploy({definition("Order", "h2")}, at(1));
    ASSERT_FALSE(deploy.ok());
    EXPECT_EQ(deploy.error().code, "DB_UNAVAILABLE");
    const auto ping_started = Clock::now();
    EXPECT_FALSE(store_->ping().ok());
    EXPECT_LT(Clock::now() - ping_started, 3s);

    ASSERT_TRUE(postgres_->start()) << postgres_->log_tail();
    EXPECT_TRUE(store_->ping().ok());
    auto latest = store_->latest("Order");
    ASSERT_TRUE(latest.ok()) << latest.error().internal;
    ASSERT_TRUE(latest.value().has_value());
    EXPECT_EQ(latest.value()->version, 1);
    auto redeploy = store_->deploy({definition("Order", "h2")}, at(2));
    ASSERT_TRUE(redeploy.ok()) << redeploy.error().internal;
    EXPECT_EQ(redeploy.value()[0].record.version, 2);
}

TEST_P(PostgresStoreTest, StartsWhileDownAndMigratesOnFirstConnection) {
    const std::string database = unique_name("late");
    ASSERT_TRUE(postgres_->create_database(database));
    app::DbSettings late = settings_;
    late.url = postgres_->url(database);  // a whole database, as in production
    ASSERT_TRUE(postgres_->stop(test::PostgresServer::Shutdown::kFast));

    metrics::Registry registry;
    const auto started = Clock::now();
    auto opened = open_store(late, registry);
    EXPECT_LT(Clock::now() - started, 5s);
    ASSERT_TRUE(opened.ok()) << opened.error().internal;
    auto store = std::move(opened).value();
    auto down = store->applied_migrations();
    ASSERT_FALSE(down.ok());
    EXPECT_EQ(down.error().code, "DB_UNAVAILABLE");
    EXPECT_FALSE(store->ping().ok());

    ASSERT_TRUE(postgres_->start()) << postgres_->log_tail();
    auto applied = store->applied_migrations();
    ASSERT_TRUE(applied.ok()) << applied.error().internal;
    ASSERT_FALSE(applied.value().empty());
    EXPECT_EQ(applied.value()[0].name, "init");
    auto deployed = store->deploy({definition("Order", "h1")}, at(0));
    ASSERT_TRUE(deployed.ok()) << deployed.error().internal;
}

INSTANTIATE_TEST_SUITE_P(Postgres, PostgresStoreTest, ::testing::Values(Backend::kPostgres),
                         backend_name);

// ---- URLs -------------------------------------------------------------------------------

TEST(OpenStore, RejectsUnsupportedOrMalformedUrlsWithAClearError) {
    metrics::Registry registry;
    for (const std::string url :
         {"mysql://localhost/db", "sqlite://", "sqlite://:memory:", "postgresql://h:port/db",
          "postgresql://u@h:99999/db", "postgres://u@h/db?sslmode=sometimes",
          "postgresql://u@h/db?no_such_option=1", ""}) {
        app::DbSettings settings;
        settings.url = url;
        auto opened = open_store(settings, registry);
        ASSERT_FALSE(opened.ok()) << url;
        EXPECT_EQ(opened.error().code, "INVALID_DB_URL") << url;
        EXPECT_EQ(opened.error().kind, ErrorKind::kInvalidArgument) << url;
        EXPECT_NE(opened.error().message.find("db_url"), std::string::npos)
            << url << ": " << opened.error().message;
    }
}

TEST(OpenStore, UnusableSqlitePathIsAClearErrorNamingThePath) {
    metrics::Registry registry;
    for (const std::string path : {"/dev/null/sub/store.db", "/proc/store.db"}) {
        app::DbSettings settings;
        settings.url = "sqlite://" + path;
        auto opened = open_store(settings, registry);
        ASSERT_FALSE(opened.ok()) << path;
        EXPECT_EQ(opened.error().kind, ErrorKind::kUnavailable) << path;
        EXPECT_NE(opened.error().message.find(path.substr(0, path.rfind('/'))), std::string::npos)
            << opened.error().message;
        EXPECT_FALSE(opened.error().internal.empty());
    }
}

TEST(OpenStore, UnreachablePostgresIsNotAStartupError) {
    metrics::Registry registry;
    app::DbSettings settings;
    // A port nothing listens on: connection refused at once.
    settings.url = "postgresql://postgres@127.0.0.1:1/none";
    settings.connect_timeout = 1s;
    auto opened = open_store(settings, registry);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    auto latest = opened.value()->latest("Order");
    ASSERT_FALSE(latest.ok());
    EXPECT_EQ(latest.error().code, "DB_UNAVAILABLE");
    EXPECT_GE(latest.error().retry_after_seconds, 1);
    EXPECT_FALSE(opened.value()->ping().ok());
}

/// The TCP sockets of this process connected to 127.0.0.1:`port`, by scanning /proc/self/fd.
std::vector<int> sockets_to(std::uint16_t port) {
    std::vector<int> found;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
        int fd = -1;
        try {
            fd = std::stoi(entry.path().filename().string());
        } catch (const std::exception&) {
            continue;
        }
        sockaddr_in peer{};
        socklen_t length = sizeof(peer);
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) == 0 &&
            peer.sin_family == AF_INET && ntohs(peer.sin_port) == port) {
            found.push_back(fd);
        }
    }
    return found;
}

int tcp_option(int fd, int level, int name) {
    int value = -1;
    socklen_t length = sizeof(value);
    return ::getsockopt(fd, level, name, &value, &length) == 0 ? value : -1;
}

// A database host that vanishes without a reset (power loss, a partition) leaves a call waiting
// for an answer that never comes: with the OS defaults, 2 hours of keepalive silence or ~15
// minutes of retransmissions. The pool's connections carry db_tcp_timeout_ms instead (checked
// on the store's own sockets: loopback cannot drop packets without privileges).
TEST(OpenStore, PoolConnectionsGiveUpOnASilentPeerAfterTheTcpTimeout) {
    std::string why;
    test::PostgresServer* postgres = shared_postgres(why);
    if (postgres == nullptr) {
        GTEST_FAIL() << why;
    }
    for (const auto tcp_timeout : {9000ms, 0ms}) {
        metrics::Registry registry;
        app::DbSettings settings;
        settings.url = postgres->url();
        settings.tcp_timeout = tcp_timeout;
        auto opened = open_store(settings, registry);
        ASSERT_TRUE(opened.ok()) << opened.error().message;
        ASSERT_TRUE(opened.value()->ping().ok());
        const std::vector<int> sockets = sockets_to(postgres->port());
        ASSERT_FALSE(sockets.empty());
        for (const int fd : sockets) {
            EXPECT_EQ(tcp_option(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
            if (tcp_timeout > 0ms) {
                EXPECT_EQ(tcp_option(fd, IPPROTO_TCP, TCP_KEEPIDLE), 3);
                EXPECT_EQ(tcp_option(fd, IPPROTO_TCP, TCP_KEEPINTVL), 3);
                EXPECT_EQ(tcp_option(fd, IPPROTO_TCP, TCP_KEEPCNT), 2);
                EXPECT_EQ(tcp_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 9000);
            } else {
                EXPECT_EQ(tcp_option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
            }
        }
    }
}

/// A TCP port that completes handshakes (the kernel's backlog) but never answers: a hung
/// database server.
class SilentListener {
  public:
    SilentListener() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof(address);
        if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
            ::listen(fd_, 64) == 0 &&
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
            port_ = ntohs(address.sin_port);
        }
    }
    ~SilentListener() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    [[nodiscard]] std::uint16_t port() const { return port_; }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

TEST(OpenStore, HungPostgresCostsOneConnectTimeoutThenFailsFast) {
    SilentListener hung;
    ASSERT_NE(hung.port(), 0);
    metrics::Registry registry;
    app::DbSettings settings;
    settings.url = "postgresql://postgres@127.0.0.1:" + std::to_string(hung.port()) + "/none";
    settings.connect_timeout = 2s;  // libpq's minimum

    const auto started = Clock::now();
    auto opened = open_store(settings, registry);
    const auto open_took = Clock::now() - started;
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    EXPECT_GE(open_took, 1s);
    EXPECT_LT(open_took, 5s);

    // Right after the slow failure, calls do not wait for another connect_timeout each.
    const auto call_started = Clock::now();
    auto latest = opened.value()->latest("Order");
    EXPECT_LT(Clock::now() - call_started, 500ms);
    ASSERT_FALSE(latest.ok());
    EXPECT_EQ(latest.error().code, "DB_UNAVAILABLE");
    EXPECT_FALSE(opened.value()->ping().ok());
}

}  // namespace
}  // namespace pythmata::store
