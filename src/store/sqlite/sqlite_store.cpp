#include "sqlite/sqlite_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "migrations.hpp"
#include "pool_metrics.hpp"
#include "pythmata/common/uuid.hpp"
#include "store_errors.hpp"

namespace pythmata::store {
namespace {

using Clock = std::chrono::steady_clock;

/// A failed SQLite call. Internal to this file: translated to an Error at the store's boundary.
class SqliteFailure : public std::runtime_error {
  public:
    SqliteFailure(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
    [[nodiscard]] int code() const { return code_; }

  private:
    int code_;
};

[[noreturn]] void fail(sqlite3* db, int code, std::string_view context) {
    const int extended = db != nullptr ? sqlite3_extended_errcode(db) : code;
    std::string what(context);
    what += ": ";
    what += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code);
    throw SqliteFailure(extended, what);
}

/// A prepared statement; finalized on destruction. Columns and parameters count from 0 and 1,
/// as in SQLite.
class Statement {
  public:
    Statement(sqlite3* db, std::string_view sql) : db_(db) {
        const int rc =
            sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
        if (rc != SQLITE_OK) {
            fail(db, rc, "prepare [" + std::string(sql) + "]");
        }
    }
    ~Statement() { sqlite3_finalize(stmt_); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    Statement& bind(int index, std::string_view text) {
        check(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                                SQLITE_TRANSIENT));
        return *this;
    }
    Statement& bind(int index, std::int64_t value) {
        check(sqlite3_bind_int64(stmt_, index, value));
        return *this;
    }

    /// Advances; true while a row is available.
    bool step() {
        const int rc = sqlite3_step(stmt_);
        if (rc == SQLITE_ROW) {
            return true;
        }
        if (rc == SQLITE_DONE) {
            return false;
        }
        fail(db_, rc, std::string("step [") + sqlite3_sql(stmt_) + "]");
    }

    [[nodiscard]] std::int64_t int64(int column) const {
        return sqlite3_column_int64(stmt_, column);
    }
    [[nodiscard]] std::string text(int column) const {
        const auto* data = sqlite3_column_text(stmt_, column);
        const int size = sqlite3_column_bytes(stmt_, column);
        return data == nullptr ? std::string()
                               : std::string(reinterpret_cast<const char*>(data),
                                             static_cast<std::size_t>(size));
    }

  private:
    void check(int rc) {
        if (rc != SQLITE_OK) {
            fail(db_, rc, "bind");
        }
    }

    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
};

/// One open database connection; closed on destruction. Used by one thread at a time.
class Connection {
  public:
    Connection(const std::string& path, int flags, std::chrono::milliseconds busy_timeout) {
        const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
        if (rc != SQLITE_OK) {
            std::string what = "open " + path;
            if (db_ != nullptr) {
                what += ": ";
                what += sqlite3_errmsg(db_);
                sqlite3_close_v2(db_);
                db_ = nullptr;
            }
            throw SqliteFailure(rc, what);
        }
        sqlite3_extended_result_codes(db_, 1);
        sqlite3_busy_timeout(db_, static_cast<int>(busy_timeout.count()));
        // A commit is durable only with FULL in WAL mode; NORMAL may lose the last commits on
        // power loss, which the API's "acknowledged means durable" rules out.
        exec("PRAGMA synchronous = FULL");
        exec("PRAGMA foreign_keys = ON");
    }
    ~Connection() { sqlite3_close_v2(db_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void exec(std::string_view sql) {
        const std::string text(sql);
        char* message = nullptr;
        const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
        if (rc != SQLITE_OK) {
            std::string what = "exec [" + text.substr(0, 200) + "]: ";
            what += message != nullptr ? message : sqlite3_errstr(rc);
            sqlite3_free(message);
            throw SqliteFailure(sqlite3_extended_errcode(db_), what);
        }
    }

    [[nodiscard]] Statement prepare(std::string_view sql) { return Statement(db_, sql); }

    /// The single value of a one-row query, as text.
    [[nodiscard]] std::string scalar(std::string_view sql) {
        Statement stmt(db_, sql);
        return stmt.step() ? stmt.text(0) : std::string();
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE (not counting cascades).
    [[nodiscard]] std::int64_t changes() const { return sqlite3_changes(db_); }

    /// Rolls back an open transaction, if any; never throws.
    void rollback_quietly() noexcept {
        if (sqlite3_get_autocommit(db_) == 0) {
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        }
    }

  private:
    sqlite3* db_ = nullptr;
};

Error translate(const SqliteFailure& failure) {
    switch (failure.code() & 0xff) {
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
            // busy_timeout is db_statement_timeout: the lock wait used up the statement's time.
            return statement_timeout(failure.what());
        case SQLITE_CANTOPEN:
        case SQLITE_IOERR:
        case SQLITE_FULL:
        case SQLITE_NOMEM:
        case SQLITE_READONLY:
        case SQLITE_PROTOCOL:
            return db_unavailable(failure.what());
        default:
            return Error::internal_error(failure.what());
    }
}

bool is_unique_violation(const SqliteFailure& failure) {
    return failure.code() == SQLITE_CONSTRAINT_UNIQUE ||
           failure.code() == SQLITE_CONSTRAINT_PRIMARYKEY;
}

constexpr std::string_view kRecordColumns = "id, key, name, version, hash, created_at";

app::DefinitionRecord read_record(const Statement& stmt, bool with_xml) {
    app::DefinitionRecord record;
    record.id = stmt.text(0);
    record.key = stmt.text(1);
    record.name = stmt.text(2);
    record.version = static_cast<int>(stmt.int64(3));
    record.hash = stmt.text(4);
    record.created_at = from_epoch_ms(stmt.int64(5));
    if (with_xml) {
        record.bpmn_xml = stmt.text(6);
    }
    return record;
}

std::int64_t now_ms() {
    return to_epoch_ms(std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now()));
}

/// Applies pending migrations on the writer, in one IMMEDIATE transaction (so two processes
/// opening the same file apply them once).
void migrate(Connection& db) {
    db.exec("BEGIN IMMEDIATE");
    try {
        db.exec(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)");
        std::vector<std::int64_t> applied;
        {
            Statement stmt = db.prepare("SELECT version FROM schema_migrations");
            while (stmt.step()) {
                applied.push_back(stmt.int64(0));
            }
        }
        for (const Migration& migration : sqlite_migrations()) {
            if (std::find(applied.begin(), applied.end(), migration.version) != applied.end()) {
                continue;
            }
            db.exec(migration.sql);
            Statement insert = db.prepare(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)");
            insert.bind(1, std::int64_t{migration.version})
                .bind(2, migration.name)
                .bind(3, now_ms());
            insert.step();
        }
        db.exec("COMMIT");
    } catch (...) {
        db.rollback_quietly();
        throw;
    }
}

class SqliteStore final : public Store {
  public:
    SqliteStore(std::string path, const app::DbSettings& settings, metrics::Registry& registry)
        : path_(std::move(path)),
          settings_(settings),
          reader_count_(std::clamp<unsigned>(settings.pool_size, 1, 8)),
          writer_metrics_(registry, "sqlite_writer", 1),
          reader_metrics_(registry, "sqlite_reader", static_cast<double>(reader_count_)) {}

    /// Opens the writer (creating the file), migrates, then opens the readers. Throws
    /// SqliteFailure.
    void open() {
        writer_ = std::make_unique<Connection>(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                               settings_.statement_timeout);
        // WAL is a property of the file: readers proceed while the writer commits.
        const std::string mode = writer_->scalar("PRAGMA journal_mode = WAL");
        if (mode != "wal") {
            throw SqliteFailure(SQLITE_ERROR, "cannot enable WAL, journal_mode is " + mode);
        }
        migrate(*writer_);
        for (unsigned i = 0; i < reader_count_; ++i) {
            auto reader = std::make_unique<Connection>(path_, SQLITE_OPEN_READWRITE,
                                                       settings_.statement_timeout);
            reader->exec("PRAGMA query_only = ON");
            idle_readers_.push_back(std::move(reader));
        }
    }

    std::string_view backend() const override { return "sqlite"; }

    Result<std::vector<app::DeployedDefinition>> deploy(
        const std::vector<app::NewDefinition>& definitions, TimePoint now) override {
        return write<std::vector<app::DeployedDefinition>>([&](Connection& db) {
            std::vector<app::DeployedDefinition> deployed;
            for (const app::NewDefinition& definition : definitions) {
                Statement latest = db.prepare(
                    "SELECT id, key, name, version, hash, created_at, bpmn_xml FROM definitions"
                    " WHERE key = ?1 ORDER BY version DESC LIMIT 1");
                latest.bind(1, definition.key);
                int next_version = 1;
                if (latest.step()) {
                    app::DefinitionRecord current = read_record(latest, true);
                    if (current.hash == definition.hash) {
                        deployed.push_back({std::move(current), false});
                        continue;
                    }
                    next_version = current.version + 1;
                }
                app::DefinitionRecord record{new_uuid(),   definition.key,      definition.name,
                                             next_version, definition.bpmn_xml, definition.hash,
                                             now};
                Statement insert = db.prepare(
                    "INSERT INTO definitions (id, key, name, version, bpmn_xml, hash, created_at)"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
                insert.bind(1, record.id)
                    .bind(2, record.key)
                    .bind(3, record.name)
                    .bind(4, std::int64_t{record.version})
                    .bind(5, record.bpmn_xml)
                    .bind(6, record.hash)
                    .bind(7, to_epoch_ms(record.created_at));
                insert.step();
                deployed.push_back({std::move(record), true});
            }
            return deployed;
        });
    }

    Result<std::optional<app::DefinitionRecord>> latest(const std::string& key) override {
        return one_definition("WHERE key = ?1 ORDER BY version DESC LIMIT 1",
                              [&](Statement& s) { s.bind(1, key); });
    }

    Result<std::optional<app::DefinitionRecord>> version(const std::string& key,
                                                         int version) override {
        return one_definition("WHERE key = ?1 AND version = ?2",
                              [&](Statement& s) { s.bind(1, key).bind(2, std::int64_t{version}); });
    }

    Result<std::optional<app::DefinitionRecord>> by_id(const std::string& id) override {
        return one_definition("WHERE id = ?1", [&](Statement& s) { s.bind(1, id); });
    }

    Result<app::PageResult<app::DefinitionRecord>> list_latest(
        const app::DefinitionFilter& filter, const app::PageRequest& page) override {
        std::string where =
            " WHERE NOT EXISTS (SELECT 1 FROM definitions n"
            " WHERE n.key = d.key AND n.version > d.version)";
        if (filter.key) {
            where += " AND d.key = ?1";
        }
        if (filter.name) {
            where += " AND instr(lower(d.name), lower(?2)) > 0";
        }
        const Window w = window_of(page);
        return read<app::PageResult<app::DefinitionRecord>>([&](Connection& db) {
            const auto bind_filter = [&](Statement& s) {
                if (filter.key) {
                    s.bind(1, *filter.key);
                }
                if (filter.name) {
                    s.bind(2, *filter.name);
                }
            };
            app::PageResult<app::DefinitionRecord> result;
            Statement count = db.prepare("SELECT count(*) FROM definitions d" + where);
            bind_filter(count);
            count.step();
            result.total = count.int64(0);
            Statement rows = db.prepare(
                "SELECT d.id, d.key, d.name, d.version, d.hash, d.created_at FROM definitions d" +
                where + " ORDER BY d.created_at DESC, d.key LIMIT ?3 OFFSET ?4");
            bind_filter(rows);
            rows.bind(3, w.limit).bind(4, w.offset);
            while (rows.step()) {
                result.items.push_back(read_record(rows, false));
            }
            return result;
        });
    }

    Result<app::PageResult<app::DefinitionRecord>> versions(const std::string& key,
                                                            const app::PageRequest& page) override {
        const Window w = window_of(page);
        return read<app::PageResult<app::DefinitionRecord>>([&](Connection& db) {
            app::PageResult<app::DefinitionRecord> result;
            Statement count = db.prepare("SELECT count(*) FROM definitions WHERE key = ?1");
            count.bind(1, key);
            count.step();
            result.total = count.int64(0);
            Statement rows = db.prepare(std::string("SELECT ") + std::string(kRecordColumns) +
                                        " FROM definitions WHERE key = ?1"
                                        " ORDER BY version DESC LIMIT ?2 OFFSET ?3");
            rows.bind(1, key).bind(2, w.limit).bind(3, w.offset);
            while (rows.step()) {
                result.items.push_back(read_record(rows, false));
            }
            return result;
        });
    }

    Result<std::int64_t> count_unfinished_instances(const std::string& key) override {
        return read<std::int64_t>([&](Connection& db) { return count_unfinished(db, key); });
    }

    Result<std::int64_t> delete_key(const std::string& key, bool cascade) override {
        return write<std::int64_t>([&](Connection& db) -> Result<std::int64_t> {
            if (!cascade) {
                const std::int64_t running = count_unfinished(db, key);
                if (running > 0) {
                    return Error::conflict("PROCESS_HAS_INSTANCES",
                                           "process '" + key + "' has " + std::to_string(running) +
                                               " unfinished instances; delete with cascade");
                }
            }
            // History has no foreign key (batch-written); delete it for the instances of the
            // key and their called sub-instances. The rest cascades from instances and
            // definitions.
            Statement history = db.prepare(
                "WITH RECURSIVE doomed(id) AS ("
                " SELECT id FROM instances WHERE process_key = ?1"
                " UNION SELECT i.id FROM instances i JOIN doomed ON i.parent_instance_id = "
                "doomed.id)"
                " DELETE FROM history WHERE instance_id IN (SELECT id FROM doomed)");
            history.bind(1, key);
            history.step();
            Statement instances = db.prepare("DELETE FROM instances WHERE process_key = ?1");
            instances.bind(1, key);
            instances.step();
            Statement definitions = db.prepare("DELETE FROM definitions WHERE key = ?1");
            definitions.bind(1, key);
            definitions.step();
            return db.changes();
        });
    }

    Status ping() override {
        auto result = read<bool>([](Connection& db) {
            Statement stmt = db.prepare("SELECT count(*) FROM schema_migrations");
            return stmt.step();
        });
        if (!result) {
            return std::move(result).error();
        }
        return {};
    }

    Result<std::vector<AppliedMigration>> applied_migrations() override {
        return read<std::vector<AppliedMigration>>([](Connection& db) {
            std::vector<AppliedMigration> applied;
            Statement stmt = db.prepare(
                "SELECT version, name, applied_at FROM schema_migrations ORDER BY version");
            while (stmt.step()) {
                applied.push_back(
                    {static_cast<int>(stmt.int64(0)), stmt.text(1), from_epoch_ms(stmt.int64(2))});
            }
            return applied;
        });
    }

    Result<std::vector<std::pair<std::string, std::string>>> connection_settings() override {
        using Settings = std::vector<std::pair<std::string, std::string>>;
        const auto report = [](Connection& db, const std::string& prefix, Settings& out) {
            for (const char* name :
                 {"journal_mode", "synchronous", "busy_timeout", "foreign_keys"}) {
                out.emplace_back(prefix + name, db.scalar(std::string("PRAGMA ") + name));
            }
        };
        auto writer = write<Settings>([&](Connection& db) {
            Settings out;
            report(db, "writer.", out);
            return out;
        });
        if (!writer) {
            return writer;
        }
        auto reader = read<Settings>([&](Connection& db) {
            Settings out;
            report(db, "reader.", out);
            return out;
        });
        if (!reader) {
            return reader;
        }
        Settings all = std::move(writer).value();
        for (auto& entry : reader.value()) {
            all.push_back(std::move(entry));
        }
        return all;
    }

  private:
    static std::int64_t count_unfinished(Connection& db, const std::string& key) {
        Statement stmt = db.prepare(std::string("SELECT count(*) FROM instances"
                                                " WHERE process_key = ?1 AND status IN ") +
                                    kUnfinishedStatuses);
        stmt.bind(1, key);
        stmt.step();
        return stmt.int64(0);
    }

    template <typename Bind>
    Result<std::optional<app::DefinitionRecord>> one_definition(const std::string& condition,
                                                                Bind bind) {
        return read<std::optional<app::DefinitionRecord>>(
            [&](Connection& db) -> std::optional<app::DefinitionRecord> {
                Statement stmt = db.prepare(std::string("SELECT ") + std::string(kRecordColumns) +
                                            ", bpmn_xml FROM definitions " + condition);
                bind(stmt);
                if (!stmt.step()) {
                    return std::nullopt;
                }
                return read_record(stmt, true);
            });
    }

    /// Runs `body` in an IMMEDIATE transaction on the writer; commits when it returns a value.
    /// Unique violations (a second process writing the same file) are retried.
    template <typename T, typename Body>
    Result<T> write(Body&& body) {
        const auto started = Clock::now();
        std::unique_lock lock(writer_mutex_, std::defer_lock);
        if (!lock.try_lock_for(settings_.pool_timeout)) {
            writer_metrics_.timed_out(Clock::now() - started);
            return pool_timeout(settings_.pool_timeout);
        }
        writer_metrics_.acquired(Clock::now() - started);
        struct Release {
            PoolMetrics& metrics;
            ~Release() { metrics.released(); }
        } release{writer_metrics_};

        for (int attempt = 1;; ++attempt) {
            try {
                writer_->exec("BEGIN IMMEDIATE");
                Result<T> result = body(*writer_);
                if (result) {
                    writer_->exec("COMMIT");
                } else {
                    writer_->rollback_quietly();
                }
                return result;
            } catch (const SqliteFailure& failure) {
                writer_->rollback_quietly();
                if (is_unique_violation(failure) && attempt < kMaxWriteAttempts) {
                    continue;
                }
                if (is_unique_violation(failure)) {
                    return write_conflict(failure.what());
                }
                return translate(failure);
            } catch (const std::exception& e) {
                writer_->rollback_quietly();
                return Error::internal_error(std::string("sqlite write: ") + e.what());
            }
        }
    }

    /// Runs `body` in a read transaction (one snapshot) on a leased reader connection.
    template <typename T, typename Body>
    Result<T> read(Body&& body) {
        const auto started = Clock::now();
        std::unique_ptr<Connection> reader;
        {
            std::unique_lock lock(readers_mutex_);
            if (!readers_free_.wait_for(lock, settings_.pool_timeout,
                                        [&] { return !idle_readers_.empty(); })) {
                reader_metrics_.timed_out(Clock::now() - started);
                return pool_timeout(settings_.pool_timeout);
            }
            reader = std::move(idle_readers_.back());
            idle_readers_.pop_back();
        }
        reader_metrics_.acquired(Clock::now() - started);
        struct Return {
            SqliteStore& store;
            std::unique_ptr<Connection>& reader;
            ~Return() {
                {
                    std::lock_guard lock(store.readers_mutex_);
                    store.idle_readers_.push_back(std::move(reader));
                }
                store.readers_free_.notify_one();
                store.reader_metrics_.released();
            }
        } give_back{*this, reader};

        try {
            reader->exec("BEGIN");
            Result<T> result = body(*reader);
            reader->exec("COMMIT");
            return result;
        } catch (const SqliteFailure& failure) {
            reader->rollback_quietly();
            return translate(failure);
        } catch (const std::exception& e) {
            reader->rollback_quietly();
            return Error::internal_error(std::string("sqlite read: ") + e.what());
        }
    }

    std::string path_;
    app::DbSettings settings_;
    unsigned reader_count_;
    PoolMetrics writer_metrics_;
    PoolMetrics reader_metrics_;

    std::timed_mutex writer_mutex_;
    std::unique_ptr<Connection> writer_;

    std::mutex readers_mutex_;
    std::condition_variable readers_free_;
    std::vector<std::unique_ptr<Connection>> idle_readers_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path,
                                                 const app::DbSettings& settings,
                                                 metrics::Registry& registry) {
    if (path.empty()) {
        return Error::invalid_argument(
            "db_url: sqlite:// needs a file path, e.g. sqlite://./var/pythmata.db",
            "INVALID_DB_URL");
    }
    if (path == ":memory:" || path.starts_with("file:")) {
        return Error::invalid_argument(
            "db_url: in-memory and URI SQLite databases are not supported; give a file path",
            "INVALID_DB_URL");
    }
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec) {
            Error error = db_unavailable(ec.message());
            error.message = "db_url: cannot create the directory " + parent.string() +
                            " for the SQLite database";
            return error;
        }
    }
    auto store = std::make_unique<SqliteStore>(path, settings, registry);
    try {
        store->open();
    } catch (const SqliteFailure& failure) {
        Error error = translate(failure);
        error.message = "db_url: cannot open the SQLite database " + path;
        return error;
    }
    return std::unique_ptr<Store>(std::move(store));
}

}  // namespace pythmata::store
