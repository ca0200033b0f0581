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
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "migrations.hpp"
#include "pool_metrics.hpp"
#include "pythmata/common/uuid.hpp"
#include "runtime_rows.hpp"
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

/// A prepared statement: owned (finalized on destruction) or borrowed from its connection's
/// statement cache (reset and unbound on destruction, kept for the next use). Columns and
/// parameters count from 0 and 1, as in SQLite.
class Statement {
  public:
    Statement(sqlite3* db, std::string_view sql) : db_(db), owned_(true) {
        const int rc =
            sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
        if (rc != SQLITE_OK) {
            fail(db, rc, "prepare [" + std::string(sql) + "]");
        }
    }
    Statement(sqlite3* db, sqlite3_stmt* cached) : db_(db), stmt_(cached), owned_(false) {}
    ~Statement() {
        if (owned_) {
            sqlite3_finalize(stmt_);
        } else {
            sqlite3_reset(stmt_);
            sqlite3_clear_bindings(stmt_);
        }
    }
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
    Statement& bind_null(int index) {
        check(sqlite3_bind_null(stmt_, index));
        return *this;
    }
    Statement& bind_blob(int index, std::string_view bytes) {
        check(sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()),
                                SQLITE_TRANSIENT));
        return *this;
    }
    /// Text, or NULL when absent.
    Statement& bind_optional(int index, const std::optional<std::string>& text) {
        return text ? bind(index, *text) : bind_null(index);
    }
    Statement& bind_optional(int index, const std::optional<TimePoint>& at) {
        return at ? bind(index, to_epoch_ms(*at)) : bind_null(index);
    }
    Statement& bind_id(int index, const std::string& id) {
        return id.empty() ? bind_null(index) : bind(index, id);
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
    [[nodiscard]] std::string blob(int column) const {
        const auto* data = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
        const int size = sqlite3_column_bytes(stmt_, column);
        return data == nullptr ? std::string() : std::string(data, static_cast<std::size_t>(size));
    }
    [[nodiscard]] bool is_null(int column) const {
        return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
    }
    [[nodiscard]] std::optional<std::string> optional_text(int column) const {
        return is_null(column) ? std::nullopt : std::optional<std::string>(text(column));
    }
    [[nodiscard]] std::optional<TimePoint> optional_time(int column) const {
        return is_null(column) ? std::nullopt
                               : std::optional<TimePoint>(from_epoch_ms(int64(column)));
    }
    [[nodiscard]] TimePoint time(int column) const { return from_epoch_ms(int64(column)); }

  private:
    void check(int rc) {
        if (rc != SQLITE_OK) {
            fail(db_, rc, "bind");
        }
    }

    sqlite3* db_;
    sqlite3_stmt* stmt_ = nullptr;
    bool owned_;
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
    ~Connection() {
        for (auto& [sql, stmt] : cache_) {
            sqlite3_finalize(stmt);
        }
        sqlite3_close_v2(db_);
    }
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

    /// A statement from this connection's cache, prepared on first use. At most one live
    /// Statement per SQL text at a time (the connection is used by one thread at a time).
    [[nodiscard]] Statement cached(const std::string& sql) {
        auto it = cache_.find(sql);
        if (it == cache_.end()) {
            sqlite3_stmt* stmt = nullptr;
            const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
            if (rc != SQLITE_OK) {
                fail(db_, rc, "prepare [" + sql + "]");
            }
            it = cache_.emplace(sql, stmt).first;
        }
        return Statement(db_, it->second);
    }

    /// Runs a statement that returns no rows (BEGIN, COMMIT, a PRAGMA) from the cache: parsed
    /// once per connection instead of on every call as exec() does.
    void run(const std::string& sql) {
        Statement stmt = cached(sql);
        while (stmt.step()) {
        }
    }

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
    std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

Error translate(const SqliteFailure& failure) {
    if (failure.code() == SQLITE_CONSTRAINT_FOREIGNKEY) {
        // Foreign keys of a batch are checked at COMMIT: a row it refers to went away.
        return missing_reference(failure.what());
    }
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

// ---- Runtime rows -----------------------------------------------------------------------

constexpr const char* kInstanceColumns =
    "i.id, i.definition_id, i.process_key, i.process_version, i.business_key, i.status,"
    " i.variables, i.version, i.parent_instance_id, i.parent_wait_id, i.active_elements,"
    " i.open_incidents, i.created_at, i.updated_at, i.ended_at";

app::InstanceRow read_instance(const Statement& s, bool with_state) {
    app::InstanceRow row;
    row.id = s.text(0);
    row.definition_id = s.text(1);
    row.process_key = s.text(2);
    row.process_version = static_cast<int>(s.int64(3));
    row.business_key = s.optional_text(4);
    row.status = s.text(5);
    row.variables = json_of(s.text(6));
    row.version = s.int64(7);
    row.parent_instance_id = s.optional_text(8);
    if (!s.is_null(9)) {
        row.parent_wait_id = static_cast<std::uint64_t>(s.int64(9));
    }
    row.active_elements = strings_of_json(s.text(10));
    row.open_incidents = s.int64(11);
    row.created_at = s.time(12);
    row.updated_at = s.time(13);
    row.ended_at = s.optional_time(14);
    if (with_state) {
        row.state = s.blob(15);
    }
    return row;
}

constexpr const char* kTaskColumns =
    "t.id, t.instance_id, t.wait_id, i.process_key, t.element_id, t.name, t.assignee,"
    " t.candidate_groups, t.state, t.created_at, t.due_at, t.completed_at";
constexpr const char* kTaskFrom = "FROM user_tasks t JOIN instances i ON i.id = t.instance_id";

app::TaskRow read_task(const Statement& s) {
    app::TaskRow row;
    row.id = s.text(0);
    row.instance_id = s.text(1);
    row.wait_id = static_cast<std::uint64_t>(s.int64(2));
    row.process_key = s.text(3);
    row.element_id = s.text(4);
    row.name = s.text(5);
    row.assignee = s.optional_text(6);
    row.candidate_groups = strings_of_json(s.text(7));
    row.state = s.text(8);
    row.created_at = s.time(9);
    row.due_at = s.optional_time(10);
    row.completed_at = s.optional_time(11);
    return row;
}

constexpr const char* kJobColumns =
    "id, kind, type, instance_id, definition_id, wait_id, element_id, due_at, repeat_count,"
    " lock_owner, lock_expires_at, retries, error_message, payload, created_at";

app::JobRow read_job(const Statement& s) {
    app::JobRow row;
    row.id = s.text(0);
    row.kind = s.text(1);
    row.type = s.text(2);
    row.instance_id = s.text(3);
    row.definition_id = s.optional_text(4);
    row.wait_id = static_cast<std::uint64_t>(s.int64(5));
    row.element_id = s.text(6);
    row.due_at = s.time(7);
    row.repeat = s.int64(8);
    row.lock_owner = s.optional_text(9);
    row.lock_expires_at = s.optional_time(10);
    row.retries = static_cast<int>(s.int64(11));
    row.error_message = s.optional_text(12);
    row.payload = json_of(s.text(13));
    row.created_at = s.time(14);
    return row;
}

/// Acquired rows in the order they fall due (RETURNING gives no order).
void sort_by_due(std::vector<app::JobRow>& jobs) {
    std::sort(jobs.begin(), jobs.end(), [](const app::JobRow& a, const app::JobRow& b) {
        return std::tie(a.due_at, a.created_at, a.id) < std::tie(b.due_at, b.created_at, b.id);
    });
}

constexpr const char* kIncidentColumns =
    "id, instance_id, engine_incident_id, job_id, element_id, kind, message, state, created_at,"
    " resolved_at";

app::IncidentRow read_incident(const Statement& s) {
    app::IncidentRow row;
    row.id = s.text(0);
    row.instance_id = s.text(1);
    row.engine_incident_id = static_cast<std::uint64_t>(s.int64(2));
    row.job_id = s.optional_text(3);
    row.element_id = s.text(4);
    row.kind = s.text(5);
    row.message = s.text(6);
    row.state = s.text(7);
    row.created_at = s.time(8);
    row.resolved_at = s.optional_time(9);
    return row;
}

app::SubscriptionRow read_subscription(const Statement& s) {
    app::SubscriptionRow row;
    row.id = s.text(0);
    row.instance_id = s.text(1);
    row.definition_id = s.optional_text(2);
    row.wait_id = static_cast<std::uint64_t>(s.int64(3));
    row.element_id = s.text(4);
    return row;
}

app::IdempotencyRecord read_idempotency(const Statement& s) {
    app::IdempotencyRecord record;
    record.key = s.text(0);
    record.request_hash = s.text(1);
    record.status = static_cast<int>(s.int64(2));  // NULL (in flight) reads as 0
    record.body = s.text(3);
    record.created_at = s.time(4);
    return record;
}

void bind_values(Statement& s, const std::vector<SqlValue>& values, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
        const int index = static_cast<int>(i + 1);
        if (const auto* text = std::get_if<std::string>(&values[i])) {
            s.bind(index, *text);
        } else {
            s.bind(index, std::get<std::int64_t>(values[i]));
        }
    }
}

/// Writes one wait row into its table (user_tasks, jobs, or a subscription table).
void insert_wait(Connection& db, const app::WaitRow& wait) {
    switch (wait.kind) {
        case app::WaitRowKind::kUserTask: {
            Statement s = db.cached(
                "INSERT INTO user_tasks (id, instance_id, wait_id, element_id, name, assignee,"
                " candidate_groups, state, created_at, due_at)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'OPEN', ?8, ?9)");
            s.bind(1, wait.id)
                .bind(2, wait.instance_id)
                .bind(3, static_cast<std::int64_t>(wait.wait_id))
                .bind(4, wait.element_id)
                .bind(5, wait.name)
                .bind_optional(6, wait.assignee)
                .bind(7, json_strings(wait.candidate_groups))
                .bind(8, to_epoch_ms(wait.created_at))
                .bind_optional(9, wait.due_at);
            s.step();
            return;
        }
        case app::WaitRowKind::kJob:
        case app::WaitRowKind::kTimer: {
            const bool timer = wait.kind == app::WaitRowKind::kTimer;
            Statement s = db.cached(
                "INSERT INTO jobs (id, kind, type, instance_id, definition_id, wait_id,"
                " element_id, due_at, repeat_count, retries, payload, created_at)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
            s.bind(1, wait.id)
                .bind(2, timer ? "timer" : "job")
                .bind(3, timer ? timer_type(wait) : wait.name)
                .bind_id(4, wait.instance_id)
                .bind_optional(5, wait.definition_id)
                .bind(6, static_cast<std::int64_t>(wait.wait_id))
                .bind(7, wait.element_id)
                .bind(8, to_epoch_ms(wait_due(wait)))
                .bind(9, wait.repeat)
                .bind(10, std::int64_t{wait.retries})
                .bind(11, wait.payload.dump())
                .bind(12, to_epoch_ms(wait.created_at));
            s.step();
            return;
        }
        case app::WaitRowKind::kMessage: {
            Statement s = db.cached(
                "INSERT INTO message_subscriptions (id, name, correlation_key, instance_id,"
                " definition_id, wait_id, element_id, created_at)"
                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
            s.bind(1, wait.id)
                .bind(2, wait.name)
                .bind_optional(3, wait.correlation_key)
                .bind_id(4, wait.instance_id)
                .bind_optional(5, wait.definition_id)
                .bind(6, static_cast<std::int64_t>(wait.wait_id))
                .bind(7, wait.element_id)
                .bind(8, to_epoch_ms(wait.created_at));
            s.step();
            return;
        }
        case app::WaitRowKind::kSignal: {
            Statement s = db.cached(
                "INSERT INTO signal_subscriptions (id, name, instance_id, definition_id, wait_id,"
                " element_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
            s.bind(1, wait.id)
                .bind(2, wait.name)
                .bind_id(3, wait.instance_id)
                .bind_optional(4, wait.definition_id)
                .bind(5, static_cast<std::int64_t>(wait.wait_id))
                .bind(6, wait.element_id)
                .bind(7, to_epoch_ms(wait.created_at));
            s.step();
            return;
        }
    }
}

/// Writes one instance's changes; a stale expected version is an Error (nothing committed).
Status write_instance(Connection& db, const app::InstanceWrite& write) {
    const app::InstanceRow& row = write.instance;
    if (write.insert) {
        Statement s = db.cached(
            "INSERT INTO instances (id, definition_id, process_key, process_version, business_key,"
            " status, variables, state, version, parent_instance_id, parent_wait_id,"
            " active_elements, open_incidents, created_at, updated_at, ended_at)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13, ?14, ?15)");
        s.bind(1, row.id)
            .bind(2, row.definition_id)
            .bind(3, row.process_key)
            .bind(4, std::int64_t{row.process_version})
            .bind_optional(5, row.business_key)
            .bind(6, row.status)
            .bind(7, row.variables.dump())
            .bind_blob(8, row.state)
            .bind(9, row.version)
            .bind_optional(10, row.parent_instance_id);
        if (row.parent_wait_id) {
            s.bind(11, static_cast<std::int64_t>(*row.parent_wait_id));
        } else {
            s.bind_null(11);
        }
        s.bind(12, json_strings(row.active_elements))
            .bind(13, to_epoch_ms(row.created_at))
            .bind(14, to_epoch_ms(row.updated_at))
            .bind_optional(15, row.ended_at);
        s.step();
    } else {
        Statement s = db.cached(
            "UPDATE instances SET business_key = ?2, status = ?3, variables = ?4, state = ?5,"
            " version = ?6 + 1, active_elements = ?7, updated_at = ?8, ended_at = ?9"
            " WHERE id = ?1 AND version = ?6");
        s.bind(1, row.id)
            .bind_optional(2, row.business_key)
            .bind(3, row.status)
            .bind(4, row.variables.dump())
            .bind_blob(5, row.state)
            .bind(6, write.expected_version)
            .bind(7, json_strings(row.active_elements))
            .bind(8, to_epoch_ms(row.updated_at))
            .bind_optional(9, row.ended_at);
        s.step();
        if (db.changes() != 1) {
            return stale_instance(row.id);
        }
    }

    const std::int64_t closed_at = to_epoch_ms(row.updated_at);
    for (const std::uint64_t wait_id : write.waits_closed) {
        const bool completed = std::find(write.tasks_completed.begin(), write.tasks_completed.end(),
                                         wait_id) != write.tasks_completed.end();
        const auto id = static_cast<std::int64_t>(wait_id);
        if (completed || write.closed_in.user_tasks) {
            Statement s = db.cached(
                "UPDATE user_tasks SET state = ?3, completed_at = ?4"
                " WHERE instance_id = ?1 AND wait_id = ?2 AND state = 'OPEN'");
            s.bind(1, row.id)
                .bind(2, id)
                .bind(3, completed ? "COMPLETED" : "CANCELLED")
                .bind(4, closed_at);
            s.step();
        }
        // A completed wait is a user task's: no job or subscription row. The other tables only
        // when a wait of their kind closed (InstanceWrite::closed_in).
        if (completed) {
            continue;
        }
        for (auto [holds, sql] :
             {std::pair{write.closed_in.jobs,
                        "DELETE FROM jobs WHERE instance_id = ?1 AND wait_id = ?2"},
              std::pair{
                  write.closed_in.messages,
                  "DELETE FROM message_subscriptions WHERE instance_id = ?1 AND wait_id = ?2"},
              std::pair{
                  write.closed_in.signals,
                  "DELETE FROM signal_subscriptions WHERE instance_id = ?1 AND wait_id = ?2"}}) {
            if (!holds) {
                continue;
            }
            Statement s = db.cached(sql);
            s.bind(1, row.id).bind(2, id);
            s.step();
        }
    }
    // Opened after the closed ones: a re-armed cycle timer closes and reopens one wait id.
    for (const app::WaitRow& wait : write.waits_opened) {
        insert_wait(db, wait);
    }
    // One history row per instance per commit: the commit's entries as one JSON array.
    for (const HistoryChunk& chunk : history_chunks(write)) {
        Statement s =
            db.cached("INSERT INTO history (instance_id, entries, events) VALUES (?1, ?2, ?3)");
        s.bind(1, chunk.instance_id).bind(2, chunk.entries).bind(3, chunk.events);
        s.step();
    }
    for (const app::IncidentRow& incident : write.incidents_opened) {
        Statement s = db.cached(
            "INSERT INTO incidents (id, instance_id, engine_incident_id, job_id, element_id, kind,"
            " message, state, created_at, resolved_at)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
        s.bind(1, incident.id)
            .bind(2, incident.instance_id.empty() ? row.id : incident.instance_id)
            .bind(3, static_cast<std::int64_t>(incident.engine_incident_id))
            .bind_optional(4, incident.job_id)
            .bind(5, incident.element_id)
            .bind(6, incident.kind)
            .bind(7, incident.message)
            .bind(8, incident.state)
            .bind(9, to_epoch_ms(incident.created_at))
            .bind_optional(10, incident.resolved_at);
        s.step();
    }
    for (const std::uint64_t incident_id : write.incidents_resolved) {
        Statement s = db.cached(
            "UPDATE incidents SET state = 'RESOLVED', resolved_at = ?3"
            " WHERE instance_id = ?1 AND engine_incident_id = ?2 AND state = 'OPEN'");
        s.bind(1, row.id).bind(2, static_cast<std::int64_t>(incident_id)).bind(3, closed_at);
        s.step();
    }
    if (!write.incidents_opened.empty() || !write.incidents_resolved.empty()) {
        Statement s = db.cached(
            "UPDATE instances SET open_incidents = (SELECT count(*) FROM incidents"
            " WHERE instance_id = ?1 AND state = 'OPEN') WHERE id = ?1");
        s.bind(1, row.id);
        s.step();
    }
    return {};
}

/// True when `batch` inserts an instance before the instance that called it (its parent is
/// inserted by a later write of the batch): its foreign keys must be checked at COMMIT.
bool has_forward_parent(const app::Batch& batch) {
    std::unordered_map<std::string_view, std::size_t> inserted_at;
    for (std::size_t i = 0; i < batch.instances.size(); ++i) {
        const app::InstanceWrite& write = batch.instances[i];
        if (write.insert) {
            inserted_at.emplace(write.instance.id, i);
        }
    }
    for (std::size_t i = 0; i < batch.instances.size(); ++i) {
        const app::InstanceWrite& write = batch.instances[i];
        if (!write.insert || !write.instance.parent_instance_id) {
            continue;
        }
        const auto parent = inserted_at.find(*write.instance.parent_instance_id);
        if (parent != inserted_at.end() && parent->second > i) {
            return true;
        }
    }
    return false;
}

// The writer's commit copies the log into the database after `sqlite_wal_autocheckpoint` WAL
// pages (DbSettings). A straight-through start appends about 5 pages to the log (its history,
// the right-hand pages of the time-ordered indexes, a random leaf of each id index); a
// checkpoint writes each distinct page once, so a longer log rewrites the hot pages fewer times
// and costs the writer less per start, while every reader pays for a longer log in its page
// lookups (the WAL index it searches) and its shared-memory mapping: docs/benchmarks.md,
// "SQLite commit path". The commit that runs the checkpoint waits for it.

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
        writer_->exec("PRAGMA wal_autocheckpoint = " +
                      std::to_string(std::max(1u, settings_.sqlite_wal_autocheckpoint)));
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
        // Transactions of db_delete_batch_size instances (the writer is not held for the whole
        // key); the last one, which finds fewer, deletes the versions.
        const auto batch = static_cast<std::int64_t>(std::max(1u, settings_.delete_batch_size));
        for (;;) {
            auto step = write<
                std::optional<std::int64_t>>([&](Connection& db)
                                                 -> Result<std::optional<std::int64_t>> {
                if (!cascade) {
                    const std::int64_t running = count_unfinished(db, key);
                    if (running > 0) {
                        return Error::conflict("PROCESS_HAS_INSTANCES",
                                               "process '" + key + "' has " +
                                                   std::to_string(running) +
                                                   " unfinished instances; delete with cascade");
                    }
                }
                // This step's instances of the key, then with their called sub-instances:
                // history has no foreign key (batch-written) and goes with them; tasks,
                // waits and incidents cascade from instances.
                db.run("CREATE TEMP TABLE IF NOT EXISTS doomed_instances (id TEXT PRIMARY KEY)");
                db.run("DELETE FROM doomed_instances");
                Statement top = db.prepare(
                    "INSERT INTO doomed_instances (id)"
                    " SELECT id FROM instances WHERE process_key = ?1 LIMIT ?2");
                top.bind(1, key);
                top.bind(2, batch);
                top.step();
                const std::int64_t taken = db.changes();
                db.run(
                    "WITH RECURSIVE below(id) AS ("
                    "  SELECT i.id FROM instances i JOIN doomed_instances d"
                    "  ON i.parent_instance_id = d.id"
                    "  UNION SELECT i.id FROM instances i JOIN below ON"
                    "  i.parent_instance_id = below.id)"
                    " INSERT OR IGNORE INTO doomed_instances (id) SELECT id FROM below");
                db.run(
                    "DELETE FROM history WHERE instance_id IN (SELECT id FROM doomed_instances)");
                db.run("DELETE FROM instances WHERE id IN (SELECT id FROM doomed_instances)");
                std::optional<std::int64_t> versions;
                if (taken < batch) {
                    Statement definitions = db.prepare("DELETE FROM definitions WHERE key = ?1");
                    definitions.bind(1, key);
                    definitions.step();
                    versions = db.changes();
                }
                return versions;
            });
            if (!step) {
                return std::move(step).error();
            }
            if (*step) {
                return **step;
            }
        }
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
            out.emplace_back("writer.wal_autocheckpoint", db.scalar("PRAGMA wal_autocheckpoint"));
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

    // ---- RuntimeStore ----------------------------------------------------------------------

    Status commit(const app::Batch& batch) override {
        // Rows of one batch may refer to each other in any order (a called instance before its
        // caller): such a batch has its foreign keys checked at COMMIT. Only such a batch: the
        // pragma expires every prepared statement of the connection (SQLite does so for any
        // flag pragma), so each later statement would be parsed again. A forward reference the
        // look-ahead misses fails at its statement and the batch is written again, deferred.
        bool defer_keys = has_forward_parent(batch);
        for (;;) {
            bool forward_reference = false;
            Status status = commit_once(batch, defer_keys, forward_reference);
            if (!forward_reference) {
                return status;
            }
            defer_keys = true;
        }
    }

    /// One attempt of commit(). A foreign key failing at its statement while keys are checked
    /// at once sets `forward_reference` (and rolls back): commit() tries again, deferred.
    Status commit_once(const app::Batch& batch, bool defer_keys, bool& forward_reference) {
        auto done = write<bool>([&](Connection& db) -> Result<bool> {
            if (defer_keys) {
                db.run("PRAGMA defer_foreign_keys = ON");
            }
            try {
                for (const app::InstanceWrite& instance_write : batch.instances) {
                    if (Status written = write_instance(db, instance_write); !written) {
                        return std::move(written).error();
                    }
                }
                for (const app::IdempotencyRecord* record : last_per_key(batch.idempotency)) {
                    Statement s = db.cached(
                        "INSERT INTO idempotency_keys (key, request_hash, status, body,"
                        " created_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (key) DO UPDATE"
                        " SET request_hash = excluded.request_hash, status = excluded.status,"
                        " body = excluded.body, created_at = excluded.created_at");
                    s.bind(1, record->key)
                        .bind(2, record->request_hash)
                        .bind(3, std::int64_t{record->status})
                        .bind(4, record->body)
                        .bind(5, to_epoch_ms(record->created_at));
                    s.step();
                }
                for (const auto& [definition_id, rows] : batch.start_events) {
                    for (const char* sql :
                         {"DELETE FROM jobs WHERE definition_id = ?1 AND instance_id IS NULL",
                          "DELETE FROM message_subscriptions"
                          " WHERE definition_id = ?1 AND instance_id IS NULL",
                          "DELETE FROM signal_subscriptions"
                          " WHERE definition_id = ?1 AND instance_id IS NULL"}) {
                        Statement s = db.cached(sql);
                        s.bind(1, definition_id);
                        s.step();
                    }
                    for (const app::WaitRow& row : rows) {
                        app::WaitRow start = row;
                        start.instance_id.clear();
                        start.definition_id = definition_id;
                        insert_wait(db, start);
                    }
                    Statement mark = db.cached(
                        "INSERT INTO start_event_marks (definition_id) VALUES (?1)"
                        " ON CONFLICT (definition_id) DO NOTHING");
                    mark.bind(1, definition_id);
                    mark.step();
                }
                for (const app::OutboxRow& row : batch.outbox) {
                    Statement s = db.cached(
                        "INSERT INTO outbox (id, kind, payload, created_at) VALUES (?1, ?2, ?3, "
                        "?4)");
                    s.bind(1, row.id)
                        .bind(2, row.kind)
                        .bind(3, row.payload.dump(-1, ' ', false,
                                                  nlohmann::json::error_handler_t::replace))
                        .bind(4, to_epoch_ms(row.created_at));
                    s.step();
                }
                for (const std::string& id : batch.outbox_done) {
                    Statement s = db.cached("DELETE FROM outbox WHERE id = ?1");
                    s.bind(1, id);
                    s.step();
                }
            } catch (const SqliteFailure& failure) {
                // A duplicate id does not go away by retrying the batch.
                if (is_unique_violation(failure)) {
                    return duplicate_id(failure.what());
                }
                if (!defer_keys && failure.code() == SQLITE_CONSTRAINT_FOREIGNKEY) {
                    forward_reference = true;
                    return Error::internal_error(failure.what());
                }
                throw;
            }
            return true;
        });
        if (!done) {
            return std::move(done).error();
        }
        return {};
    }

    Result<std::optional<app::InstanceRow>> instance(const std::string& id,
                                                     bool with_state) override {
        return read<std::optional<app::InstanceRow>>(
            [&](Connection& db) -> std::optional<app::InstanceRow> {
                Statement s = db.cached(std::string("SELECT ") + kInstanceColumns +
                                        (with_state ? ", i.state" : "") +
                                        " FROM instances i WHERE i.id = ?1");
                s.bind(1, id);
                if (!s.step()) {
                    return std::nullopt;
                }
                return read_instance(s, with_state);
            });
    }

    Result<app::PageResult<app::InstanceRow>> list_instances(
        const app::InstanceFilter& filter, const app::PageRequest& page) override {
        Conditions where(Conditions::Style::kSqlite);
        if (filter.status) {
            where.add("i.status = ", *filter.status);
        }
        if (filter.process_key) {
            where.add("i.process_key = ", *filter.process_key);
        }
        if (filter.business_key) {
            where.add("i.business_key = ", *filter.business_key);
        }
        if (filter.created_after) {
            where.add("i.created_at > ", to_epoch_ms(*filter.created_after));
        }
        if (filter.created_before) {
            where.add("i.created_at < ", to_epoch_ms(*filter.created_before));
        }
        return page_of<app::InstanceRow>(
            "FROM instances i", std::move(where), "i.created_at DESC, i.id DESC", kInstanceColumns,
            page, [](const Statement& s) { return read_instance(s, false); });
    }

    Result<std::vector<std::string>> unfinished_instances(const std::string& process_key) override {
        return read<std::vector<std::string>>([&](Connection& db) {
            std::vector<std::string> ids;
            Statement s = db.cached(std::string("SELECT id FROM instances WHERE process_key = ?1"
                                                " AND status IN ") +
                                    kUnfinishedStatuses + " ORDER BY created_at, id");
            s.bind(1, process_key);
            while (s.step()) {
                ids.push_back(s.text(0));
            }
            return ids;
        });
    }

    Result<std::optional<app::TaskRow>> task(const std::string& id) override {
        return read<std::optional<app::TaskRow>>(
            [&](Connection& db) -> std::optional<app::TaskRow> {
                Statement s = db.cached(std::string("SELECT ") + kTaskColumns + " " + kTaskFrom +
                                        " WHERE t.id = ?1");
                s.bind(1, id);
                if (!s.step()) {
                    return std::nullopt;
                }
                return read_task(s);
            });
    }

    Result<app::PageResult<app::TaskRow>> list_tasks(const app::TaskFilter& filter,
                                                     const app::PageRequest& page) override {
        Conditions where(Conditions::Style::kSqlite);
        if (!filter.state.empty()) {
            where.add("t.state = ", filter.state);
        }
        if (filter.instance_id) {
            where.add("t.instance_id = ", *filter.instance_id);
        }
        if (filter.process_key) {
            where.add("i.process_key = ", *filter.process_key);
        }
        if (filter.assignee) {
            where.add("t.assignee = ", *filter.assignee);
        }
        if (filter.candidate_group) {
            where.add("EXISTS (SELECT 1 FROM json_each(t.candidate_groups) g WHERE g.value = ",
                      *filter.candidate_group, ")");
        }
        if (filter.element_id) {
            where.add("t.element_id = ", *filter.element_id);
        }
        return page_of<app::TaskRow>(kTaskFrom, std::move(where), "t.created_at DESC, t.id DESC",
                                     kTaskColumns, page, read_task);
    }

    Result<bool> claim_task(const std::string& id, const std::string& assignee) override {
        return write<bool>([&](Connection& db) {
            Statement s =
                db.cached("UPDATE user_tasks SET assignee = ?2 WHERE id = ?1 AND state = 'OPEN'");
            s.bind(1, id).bind(2, assignee);
            s.step();
            return db.changes() == 1;
        });
    }

    Result<std::optional<app::SubscriptionRow>> find_message_subscription(
        const std::string& name, const std::optional<std::string>& correlation_key) override {
        return read<std::optional<app::SubscriptionRow>>(
            [&](Connection& db) -> std::optional<app::SubscriptionRow> {
                {
                    Statement s = db.cached(
                        correlation_key
                            ? "SELECT id, instance_id, definition_id, wait_id, element_id"
                              " FROM message_subscriptions WHERE name = ?1 AND correlation_key = ?2"
                              " AND instance_id IS NOT NULL ORDER BY created_at, rowid LIMIT 1"
                            : "SELECT id, instance_id, definition_id, wait_id, element_id"
                              " FROM message_subscriptions WHERE name = ?1"
                              " AND instance_id IS NOT NULL ORDER BY created_at, rowid LIMIT 1");
                    s.bind(1, name);
                    if (correlation_key) {
                        s.bind(2, *correlation_key);
                    }
                    if (s.step()) {
                        return read_subscription(s);
                    }
                }
                Statement s = db.cached(
                    "SELECT s.id, '', s.definition_id, s.wait_id, s.element_id"
                    " FROM message_subscriptions s JOIN definitions d ON d.id = s.definition_id"
                    " WHERE s.name = ?1 AND s.instance_id IS NULL AND NOT EXISTS (SELECT 1"
                    " FROM definitions n WHERE n.key = d.key AND n.version > d.version)"
                    " ORDER BY s.created_at, s.rowid LIMIT 1");
                s.bind(1, name);
                if (s.step()) {
                    return read_subscription(s);
                }
                return std::nullopt;
            });
    }

    Result<std::vector<app::SubscriptionRow>> signal_subscriptions(
        const std::string& name) override {
        return read<std::vector<app::SubscriptionRow>>([&](Connection& db) {
            std::vector<app::SubscriptionRow> rows;
            Statement s = db.cached(
                "SELECT s.id, coalesce(s.instance_id, ''), s.definition_id, s.wait_id,"
                " s.element_id FROM signal_subscriptions s"
                " LEFT JOIN definitions d ON d.id = s.definition_id AND s.instance_id IS NULL"
                " WHERE s.name = ?1 AND (s.instance_id IS NOT NULL OR NOT EXISTS (SELECT 1"
                " FROM definitions n WHERE n.key = d.key AND n.version > d.version))"
                " ORDER BY s.created_at, s.rowid");
            s.bind(1, name);
            while (s.step()) {
                rows.push_back(read_subscription(s));
            }
            return rows;
        });
    }

    Result<std::vector<app::JobRow>> acquire_jobs(const std::string& type, const std::string& owner,
                                                  int max, TimePoint now,
                                                  TimePoint lock_until) override {
        return acquire(
            "kind = 'job' AND type = ?5 AND retries > 0 AND due_at <= ?3"
            " AND (lock_expires_at IS NULL OR lock_expires_at <= ?3)",
            &type, owner, max, now, lock_until);
    }

    Result<std::vector<app::JobRow>> acquire_timers(const std::string& owner, int max,
                                                    TimePoint now, TimePoint lock_until) override {
        return acquire(
            "kind = 'timer' AND due_at <= ?3"
            " AND (lock_expires_at IS NULL OR lock_expires_at <= ?3)",
            nullptr, owner, max, now, lock_until, kTimerOrder);
    }

    Result<std::optional<app::JobRow>> job(const std::string& id) override {
        return read<std::optional<app::JobRow>>([&](Connection& db) -> std::optional<app::JobRow> {
            Statement s =
                db.cached(std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?1");
            s.bind(1, id);
            if (!s.step()) {
                return std::nullopt;
            }
            return read_job(s);
        });
    }

    Status fail_job(const std::string& id, int retries, const std::string& error_message,
                    TimePoint retry_at) override {
        return status_of(write<bool>([&](Connection& db) -> Result<bool> {
            Statement s = db.cached(
                "UPDATE jobs SET retries = ?2, error_message = ?3, due_at = ?4,"
                " lock_owner = NULL, lock_expires_at = NULL WHERE id = ?1 AND kind = 'job'");
            s.bind(1, id)
                .bind(2, std::int64_t{retries})
                .bind(3, error_message)
                .bind(4, to_epoch_ms(retry_at));
            s.step();
            if (db.changes() != 1) {
                return job_not_found(id);
            }
            return true;
        }));
    }

    Status reschedule_timer(const std::string& id, std::optional<TimePoint> next_due,
                            std::int64_t repeat) override {
        return status_of(write<bool>([&](Connection& db) -> Result<bool> {
            if (next_due) {
                Statement s = db.cached(
                    "UPDATE jobs SET due_at = ?2, repeat_count = ?3, lock_owner = NULL,"
                    " lock_expires_at = NULL WHERE id = ?1 AND kind = 'timer'");
                s.bind(1, id).bind(2, to_epoch_ms(*next_due)).bind(3, repeat);
                s.step();
            } else {
                Statement s = db.cached("DELETE FROM jobs WHERE id = ?1 AND kind = 'timer'");
                s.bind(1, id);
                s.step();
            }
            if (db.changes() != 1) {
                return timer_not_found(id);
            }
            return true;
        }));
    }

    Result<std::optional<TimePoint>> next_timer_due() override {
        return read<std::optional<TimePoint>>([](Connection& db) -> std::optional<TimePoint> {
            // A locked timer becomes acquirable again when its lock expires. Found by due
            // time, as on PostgreSQL (migration 12; postgres_store.cpp says why only the
            // locked timers due before the first unlocked one count).
            Statement s = db.cached(
                "WITH u(due) AS (SELECT min(due_at) FROM jobs"
                " WHERE kind = 'timer' AND lock_expires_at IS NULL)"
                " SELECT min(t) FROM (SELECT due AS t FROM u"
                " UNION ALL SELECT min(max(due_at, lock_expires_at)) FROM jobs"
                " WHERE kind = 'timer' AND lock_expires_at IS NOT NULL"
                " AND due_at < coalesce((SELECT due FROM u), 9223372036854775807))");
            if (!s.step() || s.is_null(0)) {
                return std::nullopt;
            }
            return s.time(0);
        });
    }

    Result<app::PageResult<app::JobRow>> list_timers(const std::optional<std::string>& instance_id,
                                                     const app::PageRequest& page) override {
        Conditions where(Conditions::Style::kSqlite);
        where.add("kind = ", std::string("timer"));
        if (instance_id) {
            where.add("instance_id = ", *instance_id);
        }
        return page_of<app::JobRow>("FROM jobs", std::move(where), "due_at, created_at, id",
                                    kJobColumns, page, read_job);
    }

    Result<std::optional<app::IncidentRow>> incident(const std::string& id) override {
        return read<std::optional<app::IncidentRow>>(
            [&](Connection& db) -> std::optional<app::IncidentRow> {
                Statement s = db.cached(std::string("SELECT ") + kIncidentColumns +
                                        " FROM incidents WHERE id = ?1");
                s.bind(1, id);
                if (!s.step()) {
                    return std::nullopt;
                }
                return read_incident(s);
            });
    }

    Result<app::PageResult<app::IncidentRow>> list_incidents(
        const app::IncidentFilter& filter, const app::PageRequest& page) override {
        Conditions where(Conditions::Style::kSqlite);
        if (filter.instance_id) {
            where.add("instance_id = ", *filter.instance_id);
        }
        if (filter.state) {
            where.add("state = ", *filter.state);
        }
        return page_of<app::IncidentRow>("FROM incidents", std::move(where),
                                         "created_at DESC, id DESC", kIncidentColumns, page,
                                         read_incident);
    }

    Result<app::PageResult<app::HistoryRow>> history(const std::string& instance_id,
                                                     const app::PageRequest& page) override {
        // Rows hold one commit's entries each (a JSON array; entries as written by
        // history_chunks(), or objects in rows of older versions). The total is the sum of their
        // `entries`; a page unpacks only the rows it overlaps (a row's first entry is the sum of
        // `entries` before it), in row order, then array order.
        const Window w = window_of(page);
        return read<app::PageResult<app::HistoryRow>>([&](Connection& db) {
            app::PageResult<app::HistoryRow> result;
            {
                Statement total = db.cached(
                    "SELECT coalesce(sum(entries), 0) FROM history WHERE instance_id = ?1");
                total.bind(1, instance_id);
                total.step();
                result.total = total.int64(0);
            }
            if (w.offset >= result.total) {
                return result;
            }
            Statement rows = db.cached(
                "WITH c AS (SELECT id, entries, events,"
                "  sum(entries) OVER (ORDER BY id) - entries AS first"
                "  FROM history WHERE instance_id = ?1)"
                " SELECT coalesce(json_extract(e.value, '$[0]'),"
                "  json_extract(e.value, '$.element_id')),"
                "  coalesce(json_extract(e.value, '$[1]'),"
                "  json_extract(e.value, '$.element_type')),"
                "  coalesce(json_extract(e.value, '$[2]'), json_extract(e.value, '$.name')),"
                "  coalesce(json_extract(e.value, '$[3]'), json_extract(e.value, '$.event')),"
                "  coalesce(json_extract(e.value, '$[4]'), json_extract(e.value, '$.at'))"
                " FROM c, json_each(c.events) e"
                " WHERE c.first + c.entries > ?2 AND c.first < ?2 + ?3 AND c.first + e.key >= ?2"
                " ORDER BY c.id, e.key LIMIT ?3");
            rows.bind(1, instance_id).bind(2, w.offset).bind(3, w.limit);
            while (rows.step()) {
                result.items.push_back(app::HistoryRow{instance_id, rows.text(0), rows.text(1),
                                                       rows.text(2), history_event_of(rows.text(3)),
                                                       rows.time(4)});
            }
            return result;
        });
    }

    Result<app::IdempotencyClaim> claim_idempotency_key(const std::string& key,
                                                        const std::string& request_hash,
                                                        TimePoint now,
                                                        TimePoint not_before) override {
        return write<app::IdempotencyClaim>([&](Connection& db) {
            app::IdempotencyClaim claim;
            {
                // A record from before not_before is expired: the key is free again.
                Statement s = db.cached(
                    "INSERT INTO idempotency_keys (key, request_hash, status, body, created_at)"
                    " VALUES (?1, ?2, NULL, NULL, ?3) ON CONFLICT (key) DO UPDATE"
                    " SET request_hash = excluded.request_hash, status = NULL, body = NULL,"
                    " created_at = excluded.created_at WHERE idempotency_keys.created_at < ?4"
                    " RETURNING key");
                s.bind(1, key)
                    .bind(2, request_hash)
                    .bind(3, to_epoch_ms(now))
                    .bind(4, to_epoch_ms(not_before));
                // Stepped once only: stepping a finished statement would run it again.
                claim.claimed = s.step();
            }
            if (!claim.claimed) {
                Statement s = db.cached(
                    "SELECT key, request_hash, status, body, created_at FROM idempotency_keys"
                    " WHERE key = ?1");
                s.bind(1, key);
                if (s.step()) {
                    claim.stored = read_idempotency(s);
                }
            }
            return claim;
        });
    }

    Status release_idempotency_key(const std::string& key) override {
        return status_of(write<bool>([&](Connection& db) {
            Statement s =
                db.cached("DELETE FROM idempotency_keys WHERE key = ?1 AND status IS NULL");
            s.bind(1, key);
            s.step();
            return true;
        }));
    }

    Result<std::vector<app::OutboxRow>> acquire_outbox(const std::string& owner, int max,
                                                       TimePoint created_before, TimePoint now,
                                                       TimePoint lock_until) override {
        if (max <= 0) {
            return std::vector<app::OutboxRow>{};
        }
        // The single writer serialises acquisitions: no row is handed to two owners.
        return write<std::vector<app::OutboxRow>>([&](Connection& db) {
            std::vector<app::OutboxRow> rows;
            Statement s = db.cached(
                "UPDATE outbox SET lock_owner = ?1, lock_expires_at = ?2 WHERE id IN (SELECT id"
                " FROM outbox WHERE created_at <= ?3 AND (lock_expires_at IS NULL"
                " OR lock_expires_at <= ?4) ORDER BY created_at, id LIMIT ?5)"
                " RETURNING id, kind, payload, created_at, lock_owner, lock_expires_at");
            s.bind(1, owner)
                .bind(2, to_epoch_ms(lock_until))
                .bind(3, to_epoch_ms(created_before))
                .bind(4, to_epoch_ms(now))
                .bind(5, std::int64_t{max});
            while (s.step()) {
                app::OutboxRow row;
                row.id = s.text(0);
                row.kind = s.text(1);
                row.payload = nlohmann::json::parse(s.text(2), nullptr, false);
                row.created_at = s.time(3);
                row.lock_owner = s.optional_text(4);
                row.lock_expires_at = s.optional_time(5);
                rows.push_back(std::move(row));
            }
            std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
                return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
            });
            return rows;
        });
    }

    Status delete_outbox(const std::vector<std::string>& ids) override {
        if (ids.empty()) {
            return {};
        }
        return status_of(write<bool>([&](Connection& db) {
            for (const std::string& id : ids) {
                Statement s = db.cached("DELETE FROM outbox WHERE id = ?1");
                s.bind(1, id);
                s.step();
            }
            return true;
        }));
    }

    Result<bool> outbox_row_exists(const std::string& id) override {
        return read<bool>([&](Connection& db) {
            Statement s = db.cached("SELECT 1 FROM outbox WHERE id = ?1");
            s.bind(1, id);
            return s.step();
        });
    }

    Result<std::int64_t> outbox_pending() override {
        return read<std::int64_t>([](Connection& db) {
            Statement s = db.cached("SELECT count(*) FROM outbox");
            s.step();
            return s.int64(0);
        });
    }

    Result<bool> start_events_written(const std::string& definition_id) override {
        return read<bool>([&](Connection& db) {
            Statement s = db.cached("SELECT 1 FROM start_event_marks WHERE definition_id = ?1");
            s.bind(1, definition_id);
            return s.step();
        });
    }

    Result<app::InstanceCounts> counts() override {
        return read<app::InstanceCounts>([](Connection& db) {
            Statement s = db.cached(kCountsSql);
            s.step();
            app::InstanceCounts counts;
            std::int64_t* fields[] = {
                &counts.running,      &counts.suspended,      &counts.error,
                &counts.completed,    &counts.cancelled,      &counts.open_tasks,
                &counts.pending_jobs, &counts.pending_timers, &counts.open_incidents};
            for (int i = 0; i < 9; ++i) {
                *fields[i] = s.int64(i);
            }
            return counts;
        });
    }

    Result<app::RetentionResult> delete_ended_instances(
        TimePoint cutoff, std::size_t max_instances, const app::ProcessKeyFilter& filter) override {
        if (filter.mode == app::ProcessKeyFilter::Mode::kOnly && filter.keys.empty()) {
            return app::RetentionResult{};
        }
        // The process keys as parameters ?3, ?4, ... of an IN list.
        std::string key_condition;
        if (filter.mode != app::ProcessKeyFilter::Mode::kAll && !filter.keys.empty()) {
            key_condition = filter.mode == app::ProcessKeyFilter::Mode::kOnly
                                ? "   AND i.process_key IN ("
                                : "   AND i.process_key NOT IN (";
            for (std::size_t k = 0; k < filter.keys.size(); ++k) {
                key_condition += (k == 0 ? "?" : ", ?") + std::to_string(k + 3);
            }
            key_condition += ")";
        }
        return write<app::RetentionResult>([&](Connection& db) -> Result<app::RetentionResult> {
            // One short write transaction per batch: the single writer is held only this long.
            db.exec("DROP TABLE IF EXISTS temp.retention_doomed");
            Statement pick = db.prepare(
                "CREATE TEMP TABLE retention_doomed AS"
                " SELECT i.id FROM instances i"
                " WHERE i.ended_at IS NOT NULL AND i.ended_at < ?1"
                "   AND i.status IN ('COMPLETED', 'CANCELLED')" +
                key_condition +
                "   AND NOT EXISTS (SELECT 1 FROM instances c WHERE c.parent_instance_id = i.id)"
                " ORDER BY i.ended_at LIMIT ?2");
            pick.bind(1, to_epoch_ms(cutoff)).bind(2, static_cast<std::int64_t>(max_instances));
            if (!key_condition.empty()) {
                for (std::size_t k = 0; k < filter.keys.size(); ++k) {
                    pick.bind(static_cast<int>(k + 3), filter.keys[k]);
                }
            }
            pick.step();
            app::RetentionResult result;
            // history counts entries (events), not rows: a row holds one commit's entries.
            Statement history = db.prepare(
                "DELETE FROM history WHERE instance_id IN (SELECT id FROM temp.retention_doomed)"
                " RETURNING entries");
            while (history.step()) {
                result.history += history.int64(0);
            }
            Statement instances = db.prepare(
                "DELETE FROM instances WHERE id IN (SELECT id FROM temp.retention_doomed)");
            instances.step();
            result.instances = db.changes();
            db.exec("DROP TABLE temp.retention_doomed");
            return result;
        });
    }

  private:
    static Status status_of(Result<bool> result) {
        if (!result) {
            return std::move(result).error();
        }
        return {};
    }

    /// Locks the due rows matching `condition` (parameters ?3 = now, ?5 = type) for `owner`.
    /// The writer is the only one: the IMMEDIATE transaction is SQLite's FOR UPDATE SKIP LOCKED.
    /// Timers are acquired in due order only: a tie-break (created_at) is not in the timer index,
    /// so with many timers due at once every acquisition would sort all of them.
    static constexpr const char* kTimerOrder = "due_at";

    Result<std::vector<app::JobRow>> acquire(const char* condition, const std::string* type,
                                             const std::string& owner, int max, TimePoint now,
                                             TimePoint lock_until,
                                             const char* order = "due_at, created_at") {
        if (max <= 0) {
            return std::vector<app::JobRow>{};
        }
        return write<std::vector<app::JobRow>>([&](Connection& db) {
            std::vector<app::JobRow> rows;
            Statement s =
                db.cached(std::string("UPDATE jobs SET lock_owner = ?1,"
                                      " lock_expires_at = ?2 WHERE id IN (SELECT id"
                                      " FROM jobs WHERE ") +
                          condition + " ORDER BY " + order + " LIMIT ?4) RETURNING " + kJobColumns);
            s.bind(1, owner)
                .bind(2, to_epoch_ms(lock_until))
                .bind(3, to_epoch_ms(now))
                .bind(4, std::int64_t{max});
            if (type != nullptr) {
                s.bind(5, *type);
            }
            while (s.step()) {
                rows.push_back(read_job(s));
            }
            sort_by_due(rows);
            return rows;
        });
    }

    /// One page of `columns` `from` `where`, in `order`, with the total of all pages; both read
    /// in one snapshot.
    template <typename Row, typename Reader>
    Result<app::PageResult<Row>> page_of(const std::string& from, Conditions where,
                                         const std::string& order, const std::string& columns,
                                         const app::PageRequest& page, Reader reader) {
        const Window w = window_of(page);
        const std::size_t filters = where.size();
        const std::string limit = where.next(w.limit);
        const std::string offset = where.next(w.offset);
        const std::string count_sql = "SELECT count(*) " + from + where.where();
        const std::string rows_sql = "SELECT " + columns + " " + from + where.where() +
                                     " ORDER BY " + order + " LIMIT " + limit + " OFFSET " + offset;
        return read<app::PageResult<Row>>([&](Connection& db) {
            app::PageResult<Row> result;
            {
                Statement count = db.cached(count_sql);
                bind_values(count, where.values(), filters);
                count.step();
                result.total = count.int64(0);
            }
            Statement rows = db.cached(rows_sql);
            bind_values(rows, where.values(), where.size());
            while (rows.step()) {
                result.items.push_back(reader(rows));
            }
            return result;
        });
    }

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
                writer_->run("BEGIN IMMEDIATE");
                Result<T> result = body(*writer_);
                if (result) {
                    writer_->run("COMMIT");
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
            reader->run("BEGIN");
            Result<T> result = body(*reader);
            reader->run("COMMIT");
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
