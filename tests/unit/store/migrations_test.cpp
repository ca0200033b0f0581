#include "migrations.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <regex>
#include <set>
#include <string>

namespace pythmata::store {
namespace {

std::set<std::string> declared(std::span<const Migration> migrations, const std::string& what) {
    std::set<std::string> names;
    const std::regex pattern("CREATE " + what + " (\\w+)");
    for (const Migration& migration : migrations) {
        const std::string sql(migration.sql);
        for (std::sregex_iterator it(sql.begin(), sql.end(), pattern), end; it != end; ++it) {
            names.insert((*it)[1].str());
        }
    }
    return names;
}

TEST(Migrations, AreNumberedFromOneWithoutGaps) {
    for (const auto migrations : {postgres_migrations(), sqlite_migrations()}) {
        ASSERT_FALSE(migrations.empty());
        for (std::size_t i = 0; i < migrations.size(); ++i) {
            EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1);
            EXPECT_FALSE(migrations[i].name.empty());
            EXPECT_FALSE(migrations[i].sql.empty());
        }
    }
}

TEST(Migrations, BothBackendsHaveTheSameStepsTablesAndIndexes) {
    const auto postgres = postgres_migrations();
    const auto sqlite = sqlite_migrations();
    ASSERT_EQ(postgres.size(), sqlite.size());
    for (std::size_t i = 0; i < postgres.size(); ++i) {
        EXPECT_EQ(postgres[i].name, sqlite[i].name);
    }
    EXPECT_EQ(declared(postgres, "TABLE"), declared(sqlite, "TABLE"));
    EXPECT_EQ(declared(postgres, "INDEX"), declared(sqlite, "INDEX"));
}

TEST(Migrations, DeclareEveryTableTheRuntimeNeeds) {
    const std::set<std::string> tables = declared(postgres_migrations(), "TABLE");
    for (const char* table :
         {"definitions", "instances", "user_tasks", "jobs", "message_subscriptions",
          "signal_subscriptions", "incidents", "history", "idempotency_keys"}) {
        EXPECT_TRUE(tables.contains(table)) << table;
    }
}

TEST(Migrations, SqliteStepsApplyToAnEmptyDatabase) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    for (const Migration& migration : sqlite_migrations()) {
        char* message = nullptr;
        const int rc =
            sqlite3_exec(db, std::string(migration.sql).c_str(), nullptr, nullptr, &message);
        EXPECT_EQ(rc, SQLITE_OK) << migration.version << ": " << (message ? message : "");
        sqlite3_free(message);
    }
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(db,
                                 "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                 " AND name = 'instances_status_idx'",
                                 -1, &stmt, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(stmt, 0), 1);
    sqlite3_finalize(stmt);
    sqlite3_close(db);
}

}  // namespace
}  // namespace pythmata::store
