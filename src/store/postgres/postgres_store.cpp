#include "postgres/postgres_store.hpp"

#include <pqxx/pqxx>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "migrations.hpp"
#include "pool_metrics.hpp"
#include "postgres/connection_pool.hpp"
#include "postgres/conninfo.hpp"
#include "postgres/statements.hpp"
#include "pythmata/common/uuid.hpp"
#include "runtime_rows.hpp"
#include "store_errors.hpp"

namespace pythmata::store {
namespace {

using pg::kInstanceColumns;
using pg::kJobColumns;
using pg::kTaskColumns;
using pg::kTaskFrom;

/// pg_advisory_xact_lock key serialising migrations across replicas ("pythmata" in ASCII).
constexpr std::int64_t kMigrationLock = 0x707974686d617461;
/// First half of the two-int advisory lock serialising deploys of one key (second: hashtext).
constexpr int kDeployLockClass = 0x50594431;
/// ping() waits at most this long for a connection: /health/ready must answer within ~1 s.
constexpr std::chrono::milliseconds kPingTimeout{1'000};

constexpr std::string_view kRecordColumns = "id, key, name, version, hash, created_at";

std::int64_t now_ms() {
    return to_epoch_ms(std::chrono::time_point_cast<Millis>(std::chrono::system_clock::now()));
}

app::DefinitionRecord read_record(const pqxx::row& row, bool with_xml) {
    app::DefinitionRecord record;
    record.id = row[0].as<std::string>();
    record.key = row[1].as<std::string>();
    record.name = row[2].as<std::string>();
    record.version = row[3].as<int>();
    record.hash = row[4].as<std::string>();
    record.created_at = from_epoch_ms(row[5].as<std::int64_t>());
    if (with_xml) {
        record.bpmn_xml = row[6].as<std::string>();
    }
    return record;
}

/// The vendor text of a failure, with SQLSTATE and statement when there are any: for logs only.
std::string describe(const std::exception& failure) {
    std::string text = failure.what();
    if (const auto* e = dynamic_cast<const pqxx::sql_error*>(&failure)) {
        if (!e->sqlstate().empty()) {
            text += " [SQLSTATE " + e->sqlstate() + "]";
        }
        if (!e->query().empty()) {
            text += " in [" + e->query().substr(0, 300) + "]";
        }
    }
    return text;
}

/// SQLSTATEs meaning the session is gone: connection exceptions (08) and operator intervention
/// such as admin_shutdown / crash_shutdown (57P0x).
bool is_session_lost(const std::string& state) {
    return state.starts_with("08") || state.starts_with("57P");
}

/// A short randomised pause before retrying a transaction that collided with another.
void backoff(int attempt) {
    thread_local std::minstd_rand random{std::random_device{}()};
    const int ceiling = std::min(5 * attempt * attempt, 100);
    std::uniform_int_distribution<int> pause(1, ceiling);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause(random)));
}

void migrate(pqxx::connection& connection) {
    pqxx::work tx(connection);
    // Replicas starting together take turns; the second one finds everything applied.
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLock);
    tx.exec(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)");
    std::set<int> applied;
    for (const auto& row : tx.exec("SELECT version FROM schema_migrations")) {
        applied.insert(row[0].as<int>());
    }
    for (const Migration& migration : postgres_migrations()) {
        if (applied.contains(migration.version)) {
            continue;
        }
        tx.exec(std::string(migration.sql));
        tx.exec_params(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            migration.version, std::string(migration.name), now_ms());
    }
    tx.commit();
}

// ---- Runtime rows -----------------------------------------------------------------------

/// An array parameter in PostgreSQL's binary array format (what array_send writes and array_recv
/// reads), e.g. one column of a multi-row statement, bound as ONE parameter and expanded with
/// unnest(), or the ids of `= ANY($1::uuid[])`. No value is ever spliced into SQL. It holds a
/// header (dimensions, a has-NULL flag, the element type, the length and lower bound), then each
/// element as its length (-1 for NULL) and its binary value. The server then neither tokenises an
/// array literal nor parses uuids and integers from text, and the server side of ours escapes
/// nothing; json and jsonb elements are still parsed by the server (their binary form is the
/// text). The element type comes from the statement's `$n::type[]` (pg::array_parameters_of).
class BinaryArray {
  public:
    explicit BinaryArray(pg::ElementType type) : type_(type) { data_.resize(kHeaderSize); }

    /// A value given as text: a uuid column's canonical text, or text, json, jsonb or bytes as
    /// they are. (Integer and boolean columns take integer() and boolean().)
    void text(std::string_view value) {
        switch (type_) {
            case pg::ElementType::kUuid:
                uuid(value);
                return;
            case pg::ElementType::kInt8:
            case pg::ElementType::kInt4:
            case pg::ElementType::kBool:
                mismatch("text");
            case pg::ElementType::kJsonb:
                begin_element(value.size() + 1);
                data_ += '\x01';  // jsonb's binary format version
                data_ += value;
                return;
            case pg::ElementType::kText:
            case pg::ElementType::kJson:
            case pg::ElementType::kBytea:
                begin_element(value.size());
                data_ += value;
                return;
        }
    }
    void null() {
        ++count_;
        has_null_ = true;
        put32(0xffffffffU);  // length -1
    }
    void optional(const std::optional<std::string>& value) {
        if (value) {
            text(*value);
        } else {
            null();
        }
    }
    /// An id column: an empty id is NULL.
    void id(const std::string& value) {
        if (value.empty()) {
            null();
        } else {
            text(value);
        }
    }
    void integer(std::int64_t value) {
        switch (type_) {
            case pg::ElementType::kInt8:
                begin_element(8);
                put32(static_cast<std::uint32_t>(static_cast<std::uint64_t>(value) >> 32));
                put32(static_cast<std::uint32_t>(value));
                return;
            case pg::ElementType::kInt4:
                if (value < std::numeric_limits<std::int32_t>::min() ||
                    value > std::numeric_limits<std::int32_t>::max()) {
                    invalid("integer", std::to_string(value));
                }
                begin_element(4);
                put32(static_cast<std::uint32_t>(value));
                return;
            default:
                mismatch("integer");
        }
    }
    void time(TimePoint at) { integer(to_epoch_ms(at)); }
    void optional_time(const std::optional<TimePoint>& at) {
        if (at) {
            time(*at);
        } else {
            null();
        }
    }
    void boolean(bool value) {
        if (type_ != pg::ElementType::kBool) {
            mismatch("boolean");
        }
        begin_element(1);
        data_ += static_cast<char>(value ? 1 : 0);
    }

    [[nodiscard]] std::size_t size() const { return count_; }
    [[nodiscard]] pg::ElementType type() const { return type_; }
    /// The parameter: the header filled in for the elements so far.
    [[nodiscard]] pqxx::binarystring param() {
        write32(0, 1);  // dimensions
        write32(4, has_null_ ? 1 : 0);
        write32(8, static_cast<std::uint32_t>(type_));
        write32(12, static_cast<std::uint32_t>(count_));
        write32(16, 1);  // lower bound
        return pqxx::binarystring(data_.data(), data_.size());
    }

  private:
    static constexpr std::size_t kHeaderSize = 20;

    void begin_element(std::size_t length) {
        if (length > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
            throw pqxx::data_exception("array element too large", "", "54000");
        }
        ++count_;
        put32(static_cast<std::uint32_t>(length));
    }
    void put32(std::uint32_t word) {
        data_.append(4, '\0');
        write32(data_.size() - 4, word);
    }
    /// `word` big-endian (network order, as the binary format wants) at `at` in data_.
    void write32(std::size_t at, std::uint32_t word) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            data_[at++] = static_cast<char>((word >> shift) & 0xffU);
        }
    }
    /// A column fed a value of another kind: a bug in the store, not bad input.
    [[noreturn]] void mismatch(const char* kind) const {
        throw std::logic_error(std::string("a ") + kind + " value for an array of type oid " +
                               std::to_string(static_cast<std::uint32_t>(type_)));
    }
    /// 16 bytes from the canonical text form (8-4-4-4-12 hex digits).
    void uuid(std::string_view value) {
        const auto bytes = uuid_bytes(value);
        if (!bytes) {
            invalid("uuid", value);
        }
        begin_element(bytes->size());
        data_.append(reinterpret_cast<const char*>(bytes->data()), bytes->size());
    }
    /// What the server would answer for the same text: 22P02 invalid_text_representation.
    [[noreturn]] static void invalid(const char* type, std::string_view value) {
        throw pqxx::data_exception(std::string("invalid input syntax for type ") + type + ": \"" +
                                       std::string(value.substr(0, 64)) + "\"",
                                   "", "22P02");
    }

    pg::ElementType type_;
    std::string data_;
    std::size_t count_ = 0;
    bool has_null_ = false;
};

/// The columns of one multi-row statement, bound as $1..$n in the binary array format, with the
/// element types of `statement`'s parameters. Another statement with the same parameter types
/// can run the same columns (the three closings of waits).
class Columns {
  public:
    explicit Columns(const pg::Statement& statement) {
        for (const pg::ElementType type : pg::array_parameters_of(statement)) {
            columns_.emplace_back(type);
        }
    }
    BinaryArray& operator[](std::size_t index) { return columns_[index]; }
    [[nodiscard]] std::size_t rows() const { return columns_.empty() ? 0 : columns_[0].size(); }
    [[nodiscard]] std::vector<pqxx::binarystring> params(const pg::Statement& statement) {
        const std::vector<pg::ElementType>& types = pg::array_parameters_of(statement);
        if (types.size() != columns_.size()) {
            throw std::logic_error(std::string("columns do not match statement ") + statement.name);
        }
        std::vector<pqxx::binarystring> params;
        params.reserve(columns_.size());
        for (std::size_t i = 0; i < columns_.size(); ++i) {
            if (columns_[i].type() != types[i] || columns_[i].size() != rows()) {
                throw std::logic_error(std::string("columns do not match statement ") +
                                       statement.name);
            }
            params.push_back(columns_[i].param());
        }
        return params;
    }

  private:
    std::vector<BinaryArray> columns_;
};

/// Runs `statement` (pg::stmt) with the columns as parameters, unless there are no rows.
pqxx::result exec_columns(pqxx::transaction_base& tx, const pg::Statement& statement,
                          Columns& columns) {
    if (columns.rows() == 0) {
        return {};
    }
    const std::vector<pqxx::binarystring> params = columns.params(statement);
    return pg::exec_statement(tx, statement, pqxx::prepare::make_dynamic_params(params));
}

std::optional<std::string> optional_text(const pqxx::field& field) {
    return field.is_null() ? std::nullopt : std::optional<std::string>(field.as<std::string>());
}

std::optional<TimePoint> optional_time(const pqxx::field& field) {
    return field.is_null() ? std::nullopt
                           : std::optional<TimePoint>(from_epoch_ms(field.as<std::int64_t>()));
}

TimePoint time_of(const pqxx::field& field) {
    return from_epoch_ms(field.as<std::int64_t>());
}

app::InstanceRow read_instance(const pqxx::row& r, bool with_state) {
    app::InstanceRow row;
    row.id = r[0].as<std::string>();
    row.definition_id = r[1].as<std::string>();
    row.process_key = r[2].as<std::string>();
    row.process_version = r[3].as<int>();
    row.business_key = optional_text(r[4]);
    row.status = r[5].as<std::string>();
    row.variables = json_of(r[6].c_str());
    row.version = r[7].as<std::int64_t>();
    row.parent_instance_id = optional_text(r[8]);
    if (!r[9].is_null()) {
        row.parent_wait_id = static_cast<std::uint64_t>(r[9].as<std::int64_t>());
    }
    row.active_elements = strings_of_json(r[10].c_str());
    row.open_incidents = r[11].as<std::int64_t>();
    row.created_at = time_of(r[12]);
    row.updated_at = time_of(r[13]);
    row.ended_at = optional_time(r[14]);
    if (with_state && !r[15].is_null()) {
        row.state = pqxx::binarystring(r[15]).str();
    }
    return row;
}

app::TaskRow read_task(const pqxx::row& r) {
    app::TaskRow row;
    row.id = r[0].as<std::string>();
    row.instance_id = r[1].as<std::string>();
    row.wait_id = static_cast<std::uint64_t>(r[2].as<std::int64_t>());
    row.process_key = r[3].as<std::string>();
    row.element_id = r[4].as<std::string>();
    row.name = r[5].as<std::string>();
    row.assignee = optional_text(r[6]);
    row.candidate_groups = strings_of_json(r[7].c_str());
    row.state = r[8].as<std::string>();
    row.created_at = time_of(r[9]);
    row.due_at = optional_time(r[10]);
    row.completed_at = optional_time(r[11]);
    return row;
}

app::JobRow read_job(const pqxx::row& r) {
    app::JobRow row;
    row.id = r[0].as<std::string>();
    row.kind = r[1].as<std::string>();
    row.type = r[2].as<std::string>();
    row.instance_id = r[3].is_null() ? std::string() : r[3].as<std::string>();
    row.definition_id = optional_text(r[4]);
    row.wait_id = static_cast<std::uint64_t>(r[5].as<std::int64_t>());
    row.element_id = r[6].as<std::string>();
    row.due_at = time_of(r[7]);
    row.repeat = r[8].as<std::int64_t>();
    row.lock_owner = optional_text(r[9]);
    row.lock_expires_at = optional_time(r[10]);
    row.retries = r[11].as<int>();
    row.error_message = optional_text(r[12]);
    row.payload = json_of(r[13].c_str());
    row.created_at = time_of(r[14]);
    return row;
}

void sort_by_due(std::vector<app::JobRow>& jobs) {
    std::sort(jobs.begin(), jobs.end(), [](const app::JobRow& a, const app::JobRow& b) {
        return std::tie(a.due_at, a.created_at, a.id) < std::tie(b.due_at, b.created_at, b.id);
    });
}

constexpr const char* kIncidentColumns =
    "id, instance_id, engine_incident_id, job_id, element_id, kind, message, state, created_at,"
    " resolved_at";

app::IncidentRow read_incident(const pqxx::row& r) {
    app::IncidentRow row;
    row.id = r[0].as<std::string>();
    row.instance_id = r[1].as<std::string>();
    row.engine_incident_id = static_cast<std::uint64_t>(r[2].as<std::int64_t>());
    row.job_id = optional_text(r[3]);
    row.element_id = r[4].as<std::string>();
    row.kind = r[5].as<std::string>();
    row.message = r[6].as<std::string>();
    row.state = r[7].as<std::string>();
    row.created_at = time_of(r[8]);
    row.resolved_at = optional_time(r[9]);
    return row;
}

app::SubscriptionRow read_subscription(const pqxx::row& r) {
    app::SubscriptionRow row;
    row.id = r[0].as<std::string>();
    row.instance_id = r[1].is_null() ? std::string() : r[1].as<std::string>();
    row.definition_id = optional_text(r[2]);
    row.wait_id = static_cast<std::uint64_t>(r[3].as<std::int64_t>());
    row.element_id = r[4].as<std::string>();
    return row;
}

app::IdempotencyRecord read_idempotency(const pqxx::row& r) {
    app::IdempotencyRecord record;
    record.key = r[0].as<std::string>();
    record.request_hash = r[1].as<std::string>();
    record.status = r[2].is_null() ? 0 : r[2].as<int>();
    record.body = r[3].is_null() ? std::string() : r[3].as<std::string>();
    record.created_at = time_of(r[4]);
    return record;
}

/// The values of a Conditions as text parameters (PostgreSQL infers each one's type).
std::vector<std::string> text_params(const std::vector<SqlValue>& values, std::size_t count) {
    std::vector<std::string> params;
    for (std::size_t i = 0; i < count; ++i) {
        if (const auto* text = std::get_if<std::string>(&values[i])) {
            params.push_back(*text);
        } else {
            params.push_back(std::to_string(std::get<std::int64_t>(values[i])));
        }
    }
    return params;
}

/// Wait rows grouped by table, as the columns of one INSERT per table.
class WaitInserts {
  public:
    void add(const app::WaitRow& wait, const std::string& instance_id,
             const std::optional<std::string>& definition_id) {
        const auto wait_id = static_cast<std::int64_t>(wait.wait_id);
        switch (wait.kind) {
            case app::WaitRowKind::kUserTask:
                tasks_[0].text(wait.id);
                tasks_[1].text(instance_id);
                tasks_[2].integer(wait_id);
                tasks_[3].text(wait.element_id);
                tasks_[4].text(wait.name);
                tasks_[5].optional(wait.assignee);
                tasks_[6].text(json_strings(wait.candidate_groups));
                tasks_[7].time(wait.created_at);
                tasks_[8].optional_time(wait.due_at);
                return;
            case app::WaitRowKind::kJob:
            case app::WaitRowKind::kTimer: {
                const bool timer = wait.kind == app::WaitRowKind::kTimer;
                jobs_[0].text(wait.id);
                jobs_[1].text(timer ? "timer" : "job");
                jobs_[2].text(timer ? (instance_id.empty() ? "timer-start" : "timer") : wait.name);
                jobs_[3].id(instance_id);
                jobs_[4].optional(definition_id);
                jobs_[5].integer(wait_id);
                jobs_[6].text(wait.element_id);
                jobs_[7].time(wait_due(wait));
                jobs_[8].integer(wait.repeat);
                jobs_[9].integer(wait.retries);
                jobs_[10].text(wait.payload.dump());
                jobs_[11].time(wait.created_at);
                return;
            }
            case app::WaitRowKind::kMessage:
                messages_[0].text(wait.id);
                messages_[1].text(wait.name);
                messages_[2].optional(wait.correlation_key);
                messages_[3].id(instance_id);
                messages_[4].optional(definition_id);
                messages_[5].integer(wait_id);
                messages_[6].text(wait.element_id);
                messages_[7].time(wait.created_at);
                return;
            case app::WaitRowKind::kSignal:
                signals_[0].text(wait.id);
                signals_[1].text(wait.name);
                signals_[2].id(instance_id);
                signals_[3].optional(definition_id);
                signals_[4].integer(wait_id);
                signals_[5].text(wait.element_id);
                signals_[6].time(wait.created_at);
                return;
        }
    }

    void write(pqxx::transaction_base& tx) {
        exec_columns(tx, pg::stmt::kInsertTasks, tasks_);
        exec_columns(tx, pg::stmt::kInsertJobs, jobs_);
        exec_columns(tx, pg::stmt::kInsertMessageSubscriptions, messages_);
        exec_columns(tx, pg::stmt::kInsertSignalSubscriptions, signals_);
    }

  private:
    Columns tasks_{pg::stmt::kInsertTasks};
    Columns jobs_{pg::stmt::kInsertJobs};
    Columns messages_{pg::stmt::kInsertMessageSubscriptions};
    Columns signals_{pg::stmt::kInsertSignalSubscriptions};
};

/// Writes one round (each instance at most once) with one statement per table and operation.
Status write_round(pqxx::transaction_base& tx, const std::vector<const app::InstanceWrite*>& round,
                   std::set<std::string>& incident_instances) {
    Columns inserts(pg::stmt::kInsertInstances);
    Columns updates(pg::stmt::kUpdateInstances);
    std::vector<std::string> updated_ids;
    WaitInserts waits;
    Columns closed_tasks(pg::stmt::kCloseTasks);
    Columns closed_jobs(pg::stmt::kCloseJobs);
    Columns closed_messages(pg::stmt::kCloseMessageSubscriptions);
    Columns closed_signals(pg::stmt::kCloseSignalSubscriptions);
    Columns history(pg::stmt::kInsertHistory);
    Columns incidents(pg::stmt::kInsertIncidents);
    Columns resolved(pg::stmt::kResolveIncidents);

    for (const app::InstanceWrite* write : round) {
        const app::InstanceRow& row = write->instance;
        if (write->insert) {
            inserts[0].text(row.id);
            inserts[1].text(row.definition_id);
            inserts[2].text(row.process_key);
            inserts[3].integer(row.process_version);
            inserts[4].optional(row.business_key);
            inserts[5].text(row.status);
            inserts[6].text(row.variables.dump());
            inserts[7].text(row.state);
            inserts[8].integer(row.version);
            inserts[9].optional(row.parent_instance_id);
            if (row.parent_wait_id) {
                inserts[10].integer(static_cast<std::int64_t>(*row.parent_wait_id));
            } else {
                inserts[10].null();
            }
            inserts[11].text(json_strings(row.active_elements));
            inserts[12].time(row.created_at);
            inserts[13].time(row.updated_at);
            inserts[14].optional_time(row.ended_at);
        } else {
            updates[0].text(row.id);
            updates[1].integer(write->expected_version);
            updates[2].optional(row.business_key);
            updates[3].text(row.status);
            updates[4].text(row.variables.dump());
            updates[5].text(row.state);
            updates[6].text(json_strings(row.active_elements));
            updates[7].time(row.updated_at);
            updates[8].optional_time(row.ended_at);
            updated_ids.push_back(row.id);
        }
        for (const app::WaitRow& wait : write->waits_opened) {
            waits.add(wait, wait.instance_id.empty() ? row.id : wait.instance_id,
                      wait.definition_id);
        }
        for (const std::uint64_t wait_id : write->waits_closed) {
            const bool completed =
                std::find(write->tasks_completed.begin(), write->tasks_completed.end(), wait_id) !=
                write->tasks_completed.end();
            if (completed || write->closed_in.user_tasks) {
                closed_tasks[0].text(row.id);
                closed_tasks[1].integer(static_cast<std::int64_t>(wait_id));
                closed_tasks[2].boolean(completed);
                closed_tasks[3].time(row.updated_at);
            }
            // A completed wait is a user task's (the engine completes only user-task waits with
            // CompleteTask): no job or subscription row to delete. The other tables are looked
            // at only when a wait of their kind closed: a timer's firing changes no user task
            // and no subscription, a task's completion no job.
            if (completed) {
                continue;
            }
            for (auto [holds, columns] : {std::pair{write->closed_in.jobs, &closed_jobs},
                                          std::pair{write->closed_in.messages, &closed_messages},
                                          std::pair{write->closed_in.signals, &closed_signals}}) {
                if (holds) {
                    (*columns)[0].text(row.id);
                    (*columns)[1].integer(static_cast<std::int64_t>(wait_id));
                }
            }
        }
        bool first_history_in_row = false;
        for (const HistoryChunk& chunk : history_chunks(*write)) {
            // A new instance's first commit of history goes in its row (migration 11): a
            // history row of it cannot exist yet, so the chunk is its first either way.
            if (write->insert && chunk.instance_id == row.id && !first_history_in_row) {
                inserts[15].integer(chunk.entries);
                inserts[16].text(chunk.events);
                first_history_in_row = true;
                continue;
            }
            history[0].text(chunk.instance_id);
            history[1].integer(chunk.entries);
            history[2].text(chunk.events);
        }
        if (write->insert && !first_history_in_row) {
            inserts[15].integer(0);
            inserts[16].null();
        }
        for (const app::IncidentRow& incident : write->incidents_opened) {
            incidents[0].text(incident.id);
            incidents[1].text(incident.instance_id.empty() ? row.id : incident.instance_id);
            incidents[2].integer(static_cast<std::int64_t>(incident.engine_incident_id));
            incidents[3].optional(incident.job_id);
            incidents[4].text(incident.element_id);
            incidents[5].text(incident.kind);
            incidents[6].text(incident.message);
            incidents[7].text(incident.state);
            incidents[8].time(incident.created_at);
            incidents[9].optional_time(incident.resolved_at);
        }
        for (const std::uint64_t incident_id : write->incidents_resolved) {
            resolved[0].text(row.id);
            resolved[1].integer(static_cast<std::int64_t>(incident_id));
            resolved[2].time(row.updated_at);
        }
        if (!write->incidents_opened.empty() || !write->incidents_resolved.empty()) {
            incident_instances.insert(row.id);
        }
    }

    try {
        exec_columns(tx, pg::stmt::kInsertInstances, inserts);
    } catch (const pqxx::not_null_violation& e) {
        // The statement joins the definitions in: a NULL definition_id is one that is gone.
        return missing_reference(describe(e));
    }
    if (updates.rows() > 0 || closed_tasks.rows() > 0 || closed_jobs.rows() > 0 ||
        closed_messages.rows() > 0 || closed_signals.rows() > 0) {
        pg::join_by_index(tx);  // for the prepared joins with unnest below
    }
    if (updates.rows() > 0) {
        const pqxx::result changed = exec_columns(tx, pg::stmt::kUpdateInstances, updates);
        if (changed.size() != updated_ids.size()) {
            std::set<std::string> done;
            for (const auto& r : changed) {
                done.insert(r[0].as<std::string>());
            }
            for (const std::string& id : updated_ids) {
                if (!done.contains(id)) {
                    return stale_instance(id);
                }
            }
        }
    }
    exec_columns(tx, pg::stmt::kCloseTasks, closed_tasks);
    exec_columns(tx, pg::stmt::kCloseJobs, closed_jobs);
    exec_columns(tx, pg::stmt::kCloseMessageSubscriptions, closed_messages);
    exec_columns(tx, pg::stmt::kCloseSignalSubscriptions, closed_signals);
    // Opened after the closed ones: a re-armed cycle timer closes and reopens one wait id.
    waits.write(tx);
    // One history row per instance per commit (its entries as one json array), but for the
    // first commit of a new instance, which its row holds.
    exec_columns(tx, pg::stmt::kInsertHistory, history);
    exec_columns(tx, pg::stmt::kInsertIncidents, incidents);
    exec_columns(tx, pg::stmt::kResolveIncidents, resolved);
    return {};
}

class PostgresStore final : public Store {
  public:
    PostgresStore(std::string conninfo, const app::DbSettings& settings,
                  metrics::Registry& registry)
        : settings_(settings),
          metrics_(registry, "postgres", static_cast<double>(settings.pool_size)),
          pool_(
              std::move(conninfo), settings.pool_size, settings.max_overflow,
              [timeout = settings.statement_timeout,
               plan_cache_mode = settings.plan_cache_mode](pqxx::connection& connection) {
                  connection.set_variable("statement_timeout", std::to_string(timeout.count()));
                  connection.set_variable("plan_cache_mode", plan_cache_mode);
                  pg::prepare_statements(connection);
              },
              metrics_, settings.overflow_idle) {}

    /// Connects once and migrates; unreachable is fine (DB_UNAVAILABLE is returned and the
    /// store retries on later calls); any other failure is returned.
    Status start() {
        auto result = run<bool>(settings_.pool_timeout, [](pqxx::connection&) { return true; });
        if (!result && result.error().code != "DB_UNAVAILABLE") {
            return std::move(result).error();
        }
        return {};
    }

    std::string_view backend() const override { return "postgresql"; }

    Result<std::vector<app::DeployedDefinition>> deploy(
        const std::vector<app::NewDefinition>& definitions, TimePoint now) override {
        return run<std::vector<app::DeployedDefinition>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::work tx(connection);
                // Deploys of one key take turns (in key order, so that two multi-process
                // documents cannot deadlock); the unique (key, version) stays the safety net.
                std::set<std::string> keys;
                for (const auto& definition : definitions) {
                    keys.insert(definition.key);
                }
                for (const auto& key : keys) {
                    tx.exec_params("SELECT pg_advisory_xact_lock($1, hashtext($2))",
                                   kDeployLockClass, key);
                }
                std::vector<app::DeployedDefinition> deployed;
                for (const app::NewDefinition& definition : definitions) {
                    const pqxx::result latest = tx.exec_params(
                        "SELECT id, key, name, version, hash, created_at, bpmn_xml"
                        " FROM definitions WHERE key = $1 ORDER BY version DESC LIMIT 1",
                        definition.key);
                    int next_version = 1;
                    if (!latest.empty()) {
                        app::DefinitionRecord current = read_record(latest[0], true);
                        if (current.hash == definition.hash) {
                            deployed.push_back({std::move(current), false});
                            continue;
                        }
                        next_version = current.version + 1;
                    }
                    app::DefinitionRecord record{new_uuid(),   definition.key,      definition.name,
                                                 next_version, definition.bpmn_xml, definition.hash,
                                                 now};
                    tx.exec_params(
                        "INSERT INTO definitions (id, key, name, version, bpmn_xml, hash,"
                        " created_at) VALUES ($1::uuid, $2, $3, $4, $5, $6, $7)",
                        record.id, record.key, record.name, record.version, record.bpmn_xml,
                        record.hash, to_epoch_ms(record.created_at));
                    deployed.push_back({std::move(record), true});
                }
                tx.commit();
                return deployed;
            });
    }

    Result<std::optional<app::DefinitionRecord>> latest(const std::string& key) override {
        return one_definition("WHERE key = $1 ORDER BY version DESC LIMIT 1", key);
    }

    Result<std::optional<app::DefinitionRecord>> version(const std::string& key,
                                                         int version) override {
        return one_definition("WHERE key = $1 AND version = $2", key, version);
    }

    Result<std::optional<app::DefinitionRecord>> by_id(const std::string& id) override {
        if (!is_uuid(id)) {
            return std::optional<app::DefinitionRecord>();
        }
        return one_definition("WHERE id = $1::uuid", id);
    }

    Result<app::PageResult<app::DefinitionRecord>> list_latest(
        const app::DefinitionFilter& filter, const app::PageRequest& page) override {
        std::vector<std::string> params;
        std::string where =
            " WHERE NOT EXISTS (SELECT 1 FROM definitions n"
            " WHERE n.key = d.key AND n.version > d.version)";
        if (filter.key) {
            params.push_back(*filter.key);
            where += " AND d.key = $" + std::to_string(params.size());
        }
        if (filter.name) {
            params.push_back(*filter.name);
            where +=
                " AND strpos(lower(d.name), lower($" + std::to_string(params.size()) + ")) > 0";
        }
        const Window w = window_of(page);
        const std::string rows_sql =
            "SELECT d.id, d.key, d.name, d.version, d.hash, d.created_at FROM definitions d" +
            where + " ORDER BY d.created_at DESC, d.key LIMIT " + std::to_string(w.limit) +
            " OFFSET " + std::to_string(w.offset);
        return run<app::PageResult<app::DefinitionRecord>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                // One snapshot for the count and the page.
                pqxx::read_transaction tx(connection);
                app::PageResult<app::DefinitionRecord> result;
                result.total = tx.exec_params("SELECT count(*) FROM definitions d" + where,
                                              pqxx::prepare::make_dynamic_params(params))[0][0]
                                   .as<std::int64_t>();
                for (const auto& row :
                     tx.exec_params(rows_sql, pqxx::prepare::make_dynamic_params(params))) {
                    result.items.push_back(read_record(row, false));
                }
                tx.commit();
                return result;
            });
    }

    Result<app::PageResult<app::DefinitionRecord>> versions(const std::string& key,
                                                            const app::PageRequest& page) override {
        const Window w = window_of(page);
        return run<app::PageResult<app::DefinitionRecord>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::read_transaction tx(connection);
                app::PageResult<app::DefinitionRecord> result;
                result.total =
                    tx.exec_params("SELECT count(*) FROM definitions WHERE key = $1", key)[0][0]
                        .as<std::int64_t>();
                for (const auto& row :
                     tx.exec_params(std::string("SELECT ") + std::string(kRecordColumns) +
                                        " FROM definitions WHERE key = $1 ORDER BY version DESC"
                                        " LIMIT $2 OFFSET $3",
                                    key, w.limit, w.offset)) {
                    result.items.push_back(read_record(row, false));
                }
                tx.commit();
                return result;
            });
    }

    Result<std::int64_t> count_unfinished_instances(const std::string& key) override {
        return run<std::int64_t>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::nontransaction tx(connection);
            const std::int64_t count = count_unfinished(tx, key);
            return count;
        });
    }

    Result<std::int64_t> delete_key(const std::string& key, bool cascade) override {
        // Transactions of db_delete_batch_size instances, each bounded by the statement timeout
        // (one transaction for 380,679 instances hit the 30 s statement_timeout in the per-row
        // cascades and rolled back, so the key could never be deleted); the last one, which
        // finds fewer, deletes the versions.
        const auto batch = static_cast<std::int64_t>(std::max(1u, settings_.delete_batch_size));
        for (;;) {
            auto step = run<std::optional<std::int64_t>>(
                settings_.pool_timeout,
                [&](pqxx::connection& connection) -> Result<std::optional<std::int64_t>> {
                    pqxx::work tx(connection);
                    // The key's number of instances decides the plans below; a generic plan
                    // would assume the average key's share of the table.
                    pg::plan_with_values(tx);
                    // Same lock as deploy: no new version appears while the key goes away.
                    tx.exec_params("SELECT pg_advisory_xact_lock($1, hashtext($2))",
                                   kDeployLockClass, key);
                    const auto refuse_unfinished = [&]() -> Status {
                        if (cascade) {
                            return {};
                        }
                        const std::int64_t running = count_unfinished(tx, key);
                        if (running > 0) {
                            return Error::conflict(
                                "PROCESS_HAS_INSTANCES",
                                "process '" + key + "' has " + std::to_string(running) +
                                    " unfinished instances; delete with cascade");
                        }
                        return {};
                    };
                    // History has no foreign key (batch-written): it goes with the instances
                    // and their called sub-instances; tasks, waits and incidents cascade.
                    const auto delete_instances = [&](std::int64_t limit) {
                        return tx
                            .exec_params1(
                                "WITH RECURSIVE top AS (SELECT id FROM instances"
                                "  WHERE process_key = $1 LIMIT $2),"
                                " doomed(id) AS (SELECT id FROM top UNION SELECT i.id"
                                "  FROM instances i JOIN doomed"
                                "  ON i.parent_instance_id = doomed.id),"
                                " h AS (DELETE FROM history WHERE instance_id IN"
                                "  (SELECT id FROM doomed)),"
                                " d AS (DELETE FROM instances WHERE id IN (SELECT id FROM doomed))"
                                " SELECT count(*) FROM top",
                                key, limit)[0]
                            .as<std::int64_t>();
                    };
                    if (Status allowed = refuse_unfinished(); !allowed) {
                        return std::move(allowed).error();
                    }
                    std::optional<std::int64_t> versions;
                    if (delete_instances(batch) < batch) {
                        // The last pass. Instances have no foreign key to their definition
                        // (migration 10): a start locks its definitions FOR KEY SHARE until it
                        // commits. Locking them FOR UPDATE waits for the starts in flight and
                        // holds off new ones (they find the definition gone); the statements
                        // after it see every instance those starts committed. In id order, as a
                        // start's INSERT locks them: a batch starting two versions of the key
                        // cannot deadlock with it.
                        tx.exec_params(
                            "SELECT 1 FROM definitions WHERE key = $1 ORDER BY id FOR UPDATE", key);
                        if (Status allowed = refuse_unfinished(); !allowed) {
                            return std::move(allowed).error();
                        }
                        delete_instances(std::numeric_limits<std::int64_t>::max());
                        versions = static_cast<std::int64_t>(
                            tx.exec_params("DELETE FROM definitions WHERE key = $1", key)
                                .affected_rows());
                    }
                    tx.commit();
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
        auto result = run<bool>(std::min(settings_.pool_timeout, kPingTimeout),
                                [](pqxx::connection& connection) {
                                    pqxx::nontransaction tx(connection);
                                    tx.exec("SELECT 1");
                                    return true;
                                });
        if (!result) {
            return std::move(result).error();
        }
        return {};
    }

    Result<std::vector<AppliedMigration>> applied_migrations() override {
        return run<std::vector<AppliedMigration>>(
            settings_.pool_timeout, [](pqxx::connection& connection) {
                pqxx::nontransaction tx(connection);
                std::vector<AppliedMigration> applied;
                for (const auto& row : tx.exec("SELECT version, name, applied_at"
                                               " FROM schema_migrations ORDER BY version")) {
                    applied.push_back({row[0].as<int>(), row[1].as<std::string>(),
                                       from_epoch_ms(row[2].as<std::int64_t>())});
                }
                return applied;
            });
    }

    Result<std::vector<std::pair<std::string, std::string>>> connection_settings() override {
        using Settings = std::vector<std::pair<std::string, std::string>>;
        return run<Settings>(settings_.pool_timeout, [](pqxx::connection& connection) {
            pqxx::nontransaction tx(connection);
            Settings settings;
            for (const char* name :
                 {"statement_timeout", "default_transaction_isolation", "plan_cache_mode"}) {
                settings.emplace_back(
                    name, tx.exec_params("SELECT current_setting($1)", std::string(name))[0][0]
                              .as<std::string>());
            }
            return settings;
        });
    }

    // ---- RuntimeStore ----------------------------------------------------------------------

    Status commit(const app::Batch& batch) override {
        // A batch of straight-through starts is ONE statement, atomic by itself: it runs
        // without BEGIN and COMMIT, two round trips of three (see only_new_instances()).
        const bool one_statement = only_new_instances(batch);
        auto done =
            run<bool>(settings_.pool_timeout, [&](pqxx::connection& connection) -> Result<bool> {
                std::unique_ptr<pqxx::transaction_base> block;
                if (one_statement) {
                    block = std::make_unique<pqxx::nontransaction>(connection);
                } else {
                    block = std::make_unique<pqxx::work>(connection);
                }
                pqxx::transaction_base& tx = *block;
                try {
                    std::set<std::string> incident_instances;
                    for (const auto& round : split_rounds(batch.instances)) {
                        if (Status written = write_round(tx, round, incident_instances); !written) {
                            return std::move(written).error();  // tx aborts: nothing is written
                        }
                    }
                    if (!incident_instances.empty()) {
                        Columns ids(pg::stmt::kCountOpenIncidents);
                        for (const std::string& id : incident_instances) {
                            ids[0].text(id);
                        }
                        exec_columns(tx, pg::stmt::kCountOpenIncidents, ids);
                    }
                    Columns keys(pg::stmt::kUpsertIdempotency);
                    for (const app::IdempotencyRecord* record : last_per_key(batch.idempotency)) {
                        keys[0].text(record->key);
                        keys[1].text(record->request_hash);
                        keys[2].integer(record->status);
                        keys[3].text(record->body);
                        keys[4].time(record->created_at);
                    }
                    exec_columns(tx, pg::stmt::kUpsertIdempotency, keys);
                    if (!batch.start_events.empty()) {
                        Columns definitions(pg::stmt::kMarkStartEvents);
                        WaitInserts starts;
                        for (const auto& [definition_id, rows] : batch.start_events) {
                            definitions[0].text(definition_id);
                            for (const app::WaitRow& row : rows) {
                                starts.add(row, std::string(), definition_id);
                            }
                        }
                        for (const pg::Statement& statement :
                             {pg::stmt::kClearStartJobs, pg::stmt::kClearStartMessageSubscriptions,
                              pg::stmt::kClearStartSignalSubscriptions}) {
                            exec_columns(tx, statement, definitions);
                        }
                        starts.write(tx);
                        exec_columns(tx, pg::stmt::kMarkStartEvents, definitions);
                    }
                    Columns outbox(pg::stmt::kInsertOutbox);
                    for (const app::OutboxRow& row : batch.outbox) {
                        outbox[0].text(row.id);
                        outbox[1].text(row.kind);
                        outbox[2].text(row.payload.dump(-1, ' ', false,
                                                        nlohmann::json::error_handler_t::replace));
                        outbox[3].time(row.created_at);
                    }
                    exec_columns(tx, pg::stmt::kInsertOutbox, outbox);
                    Columns done(pg::stmt::kDeleteOutbox);
                    for (const std::string& id : batch.outbox_done) {
                        done[0].text(id);
                    }
                    exec_columns(tx, pg::stmt::kDeleteOutbox, done);
                } catch (const pqxx::unique_violation& e) {
                    // A duplicate id does not go away by retrying the batch.
                    return duplicate_id(describe(e));
                } catch (const pqxx::foreign_key_violation& e) {
                    return missing_reference(describe(e));
                } catch (const pqxx::broken_connection& e) {
                    if (!one_statement) {
                        throw;  // nothing committed: run() retries on a new connection
                    }
                    // Outside a transaction block the statement commits by itself: a
                    // connection lost while it ran leaves its outcome unknown, like a lost
                    // COMMIT, and it must not run again.
                    throw pqxx::in_doubt_error(std::string("statement outcome unknown: ") +
                                               e.what());
                }
                tx.commit();
                return true;
            });
        if (!done) {
            return std::move(done).error();
        }
        return {};
    }

    /// A batch of new instances whose rows hold all they write (no waits, incidents, later
    /// history, idempotency keys, start events or outbox rows): straight-through starts, which
    /// commit() writes with the one INSERT of write_round().
    static bool only_new_instances(const app::Batch& batch) {
        if (batch.instances.empty() || !batch.idempotency.empty() || !batch.start_events.empty() ||
            !batch.outbox.empty() || !batch.outbox_done.empty()) {
            return false;
        }
        std::set<std::string_view> ids;
        for (const app::InstanceWrite& write : batch.instances) {
            if (!write.insert || !write.waits_opened.empty() || !write.waits_closed.empty() ||
                !write.incidents_opened.empty() || !write.incidents_resolved.empty() ||
                !ids.insert(write.instance.id).second) {
                return false;
            }
            for (const app::HistoryRow& entry : write.history) {
                if (!entry.instance_id.empty() && entry.instance_id != write.instance.id) {
                    return false;  // a history row of another instance: a second statement
                }
            }
        }
        return true;
    }

    Result<std::optional<app::InstanceRow>> instance(const std::string& id,
                                                     bool with_state) override {
        if (!is_uuid(id)) {
            return std::optional<app::InstanceRow>();
        }
        return read_statement<app::InstanceRow>(
            with_state ? pg::stmt::kInstanceWithState : pg::stmt::kInstance, id,
            [with_state](const pqxx::row& r) { return read_instance(r, with_state); });
    }

    Result<std::vector<app::InstanceRow>> instances(const std::vector<std::string>& ids,
                                                    bool with_state) override {
        BinaryArray wanted(pg::ElementType::kUuid);
        for (const auto& id : ids) {
            if (is_uuid(id)) {
                wanted.text(id);
            }
        }
        if (wanted.size() == 0) {
            return std::vector<app::InstanceRow>{};
        }
        return run<std::vector<app::InstanceRow>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::nontransaction tx(connection);
                const pqxx::result rows = pg::exec_statement(
                    tx, with_state ? pg::stmt::kInstancesByIdsWithState : pg::stmt::kInstancesByIds,
                    wanted.param());
                std::vector<app::InstanceRow> out;
                for (const auto& r : rows) {
                    out.push_back(read_instance(r, with_state));
                }
                return out;
            });
    }

    Result<app::PageResult<app::InstanceRow>> list_instances(
        const app::InstanceFilter& filter, const app::PageRequest& page) override {
        Conditions where(Conditions::Style::kPostgres);
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
            where.add("i.created_at > ", to_epoch_ms(*filter.created_after), "::bigint");
        }
        if (filter.created_before) {
            where.add("i.created_at < ", to_epoch_ms(*filter.created_before), "::bigint");
        }
        return page_of<app::InstanceRow>(
            "FROM instances i", std::move(where), "i.created_at DESC, i.id DESC", kInstanceColumns,
            page, [](const pqxx::row& r) { return read_instance(r, false); });
    }

    Result<std::vector<std::string>> unfinished_instances(const std::string& process_key) override {
        return run<std::vector<std::string>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::nontransaction tx(connection);
                std::vector<std::string> ids;
                for (const auto& r :
                     tx.exec_params(std::string("SELECT id FROM instances"
                                                " WHERE process_key = $1"
                                                " AND status IN ") +
                                        kUnfinishedStatuses + " ORDER BY created_at, id",
                                    process_key)) {
                    ids.push_back(r[0].as<std::string>());
                }
                return ids;
            });
    }

    Result<std::optional<app::TaskRow>> task(const std::string& id) override {
        if (!is_uuid(id)) {
            return std::optional<app::TaskRow>();
        }
        return read_statement<app::TaskRow>(pg::stmt::kTask, id, read_task);
    }

    Result<app::PageResult<app::TaskRow>> list_tasks(const app::TaskFilter& filter,
                                                     const app::PageRequest& page) override {
        if (filter.instance_id && !is_uuid(*filter.instance_id)) {
            return app::PageResult<app::TaskRow>{};
        }
        if (filter.instance_id && !filter.process_key && !filter.assignee &&
            !filter.candidate_group && !filter.element_id) {
            return task_page_of_instance(*filter.instance_id, filter.state, page);
        }
        Conditions where(Conditions::Style::kPostgres);
        if (!filter.state.empty()) {
            where.add("t.state = ", filter.state);
        }
        if (filter.instance_id) {
            where.add("t.instance_id = ", *filter.instance_id, "::uuid");
        }
        if (filter.process_key) {
            where.add("i.process_key = ", *filter.process_key);
        }
        if (filter.assignee) {
            where.add("t.assignee = ", *filter.assignee);
        }
        if (filter.candidate_group) {
            where.add("t.candidate_groups @> jsonb_build_array(", *filter.candidate_group,
                      "::text)");
        }
        if (filter.element_id) {
            where.add("t.element_id = ", *filter.element_id);
        }
        return page_of<app::TaskRow>(kTaskFrom, std::move(where), "t.created_at DESC, t.id DESC",
                                     kTaskColumns, page, read_task);
    }

    Result<bool> claim_task(const std::string& id, const std::string& assignee) override {
        if (!is_uuid(id)) {
            return false;
        }
        return run<bool>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::work tx(connection);
            const pqxx::result changed = tx.exec_params(
                "UPDATE user_tasks SET assignee = $2 WHERE id = $1::uuid AND state = 'OPEN'", id,
                assignee);
            tx.commit();
            return changed.affected_rows() == 1;
        });
    }

    Result<std::optional<app::SubscriptionRow>> find_message_subscription(
        const std::string& name, const std::optional<std::string>& correlation_key) override {
        return run<std::optional<app::SubscriptionRow>>(
            settings_.pool_timeout,
            [&](pqxx::connection& connection) -> std::optional<app::SubscriptionRow> {
                pqxx::read_transaction tx(connection);
                const std::string columns =
                    "SELECT id, instance_id, definition_id, wait_id, element_id"
                    " FROM message_subscriptions WHERE name = $1 AND instance_id IS NOT NULL";
                pqxx::result rows =
                    correlation_key
                        ? tx.exec_params(columns +
                                             " AND correlation_key = $2"
                                             " ORDER BY created_at, id LIMIT 1",
                                         name, *correlation_key)
                        : tx.exec_params(columns + " ORDER BY created_at, id LIMIT 1", name);
                if (rows.empty()) {
                    rows = tx.exec_params(
                        "SELECT s.id, NULL, s.definition_id, s.wait_id, s.element_id"
                        " FROM message_subscriptions s JOIN definitions d ON d.id = s.definition_id"
                        " WHERE s.name = $1 AND s.instance_id IS NULL AND NOT EXISTS (SELECT 1"
                        " FROM definitions n WHERE n.key = d.key AND n.version > d.version)"
                        " ORDER BY s.created_at, s.id LIMIT 1",
                        name);
                }
                tx.commit();
                if (rows.empty()) {
                    return std::nullopt;
                }
                return read_subscription(rows[0]);
            });
    }

    Result<std::vector<app::SubscriptionRow>> signal_subscriptions(
        const std::string& name) override {
        return run<std::vector<app::SubscriptionRow>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::nontransaction tx(connection);
                std::vector<app::SubscriptionRow> rows;
                for (const auto& r : tx.exec_params(
                         "SELECT s.id, s.instance_id, s.definition_id, s.wait_id, s.element_id"
                         " FROM signal_subscriptions s LEFT JOIN definitions d"
                         " ON d.id = s.definition_id AND s.instance_id IS NULL"
                         " WHERE s.name = $1 AND (s.instance_id IS NOT NULL OR NOT EXISTS"
                         " (SELECT 1 FROM definitions n WHERE n.key = d.key"
                         " AND n.version > d.version)) ORDER BY s.created_at, s.id",
                         name)) {
                    rows.push_back(read_subscription(r));
                }
                return rows;
            });
    }

    Result<std::vector<app::JobRow>> acquire_jobs(const std::string& type, const std::string& owner,
                                                  int max, TimePoint now,
                                                  TimePoint lock_until) override {
        return acquire(pg::stmt::kAcquireJobs, &type, owner, max, now, lock_until);
    }

    Result<std::vector<app::JobRow>> acquire_timers(const std::string& owner, int max,
                                                    TimePoint now, TimePoint lock_until) override {
        return acquire(pg::stmt::kAcquireTimers, nullptr, owner, max, now, lock_until);
    }

    Result<std::optional<app::JobRow>> job(const std::string& id) override {
        if (!is_uuid(id)) {
            return std::optional<app::JobRow>();
        }
        return read_one<app::JobRow>(
            std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = $1::uuid", {id},
            read_job);
    }

    Status fail_job(const std::string& id, int retries, const std::string& error_message,
                    TimePoint retry_at) override {
        if (!is_uuid(id)) {
            return job_not_found(id);
        }
        return status_of(
            run<bool>(settings_.pool_timeout, [&](pqxx::connection& connection) -> Result<bool> {
                pqxx::work tx(connection);
                const pqxx::result changed = tx.exec_params(
                    "UPDATE jobs SET retries = $2, error_message = $3, due_at = $4,"
                    " lock_owner = NULL, lock_expires_at = NULL"
                    " WHERE id = $1::uuid AND kind = 'job'",
                    id, retries, error_message, to_epoch_ms(retry_at));
                if (changed.affected_rows() != 1) {
                    return job_not_found(id);
                }
                tx.commit();
                return true;
            }));
    }

    Status reschedule_timer(const std::string& id, std::optional<TimePoint> next_due,
                            std::int64_t repeat) override {
        if (!is_uuid(id)) {
            return timer_not_found(id);
        }
        return status_of(
            run<bool>(settings_.pool_timeout, [&](pqxx::connection& connection) -> Result<bool> {
                pqxx::work tx(connection);
                const pqxx::result changed =
                    next_due ? tx.exec_params(
                                   "UPDATE jobs SET due_at = $2, repeat_count = $3,"
                                   " lock_owner = NULL, lock_expires_at = NULL"
                                   " WHERE id = $1::uuid AND kind = 'timer'",
                                   id, to_epoch_ms(*next_due), repeat)
                             : tx.exec_params(
                                   "DELETE FROM jobs WHERE id = $1::uuid AND kind = 'timer'", id);
                if (changed.affected_rows() != 1) {
                    return timer_not_found(id);
                }
                tx.commit();
                return true;
            }));
    }

    Result<std::optional<TimePoint>> next_timer_due() override {
        return run<std::optional<TimePoint>>(
            settings_.pool_timeout, [](pqxx::connection& connection) -> std::optional<TimePoint> {
                pqxx::nontransaction tx(connection);
                // A locked timer becomes acquirable again when its lock expires. No index has
                // the lease columns (migration 12): the locked timers are found by due time. A
                // lease is only taken on a due timer and lasts past its due time, so a locked
                // timer due at or after the first unlocked one cannot come back before that
                // one: only those due before it count, the ones the first part walked past.
                const pqxx::row r = tx.exec1(
                    "SELECT least(u.due, (SELECT min(greatest(j.due_at, j.lock_expires_at))"
                    " FROM jobs j WHERE j.kind = 'timer' AND j.lock_expires_at IS NOT NULL"
                    " AND j.due_at < coalesce(u.due, 9223372036854775807)))"
                    " FROM (SELECT min(due_at) AS due FROM jobs"
                    " WHERE kind = 'timer' AND lock_expires_at IS NULL) u");
                return optional_time(r[0]);
            });
    }

    Result<app::PageResult<app::JobRow>> list_timers(const std::optional<std::string>& instance_id,
                                                     const app::PageRequest& page) override {
        if (instance_id && !is_uuid(*instance_id)) {
            return app::PageResult<app::JobRow>{};
        }
        Conditions where(Conditions::Style::kPostgres);
        where.add("kind = ", std::string("timer"));
        if (instance_id) {
            where.add("instance_id = ", *instance_id, "::uuid");
        }
        return page_of<app::JobRow>("FROM jobs", std::move(where), "due_at, created_at, id",
                                    kJobColumns, page, read_job);
    }

    Result<std::optional<app::IncidentRow>> incident(const std::string& id) override {
        if (!is_uuid(id)) {
            return std::optional<app::IncidentRow>();
        }
        return read_one<app::IncidentRow>(
            std::string("SELECT ") + kIncidentColumns + " FROM incidents WHERE id = $1::uuid", {id},
            read_incident);
    }

    Result<app::PageResult<app::IncidentRow>> list_incidents(
        const app::IncidentFilter& filter, const app::PageRequest& page) override {
        if (filter.instance_id && !is_uuid(*filter.instance_id)) {
            return app::PageResult<app::IncidentRow>{};
        }
        Conditions where(Conditions::Style::kPostgres);
        if (filter.instance_id) {
            where.add("instance_id = ", *filter.instance_id, "::uuid");
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
        if (!is_uuid(instance_id)) {
            return app::PageResult<app::HistoryRow>{};
        }
        // Rows hold one commit's entries each (a json array, migration 7; entries as written by
        // history_chunks(), or objects in rows of older versions). The total is the sum of their
        // `entries`; a page unpacks only the rows it overlaps (a row's first entry is the sum of
        // `entries` before it), in row order, then array order. One snapshot.
        // The instance's first commit is in its row (migration 11), ordered before every row
        // (id 0; history ids start at 1).
        static constexpr const char* kTotal =
            "SELECT coalesce((SELECT history_entries FROM instances WHERE id = $1::uuid), 0)"
            " + (SELECT coalesce(sum(entries), 0) FROM history WHERE instance_id = $1::uuid)";
        static constexpr const char* kPage =
            "WITH r AS (SELECT 0::bigint AS id, history_entries AS entries,"
            "  history_events AS events FROM instances"
            "  WHERE id = $1::uuid AND history_entries > 0"
            "  UNION ALL SELECT id, entries, events FROM history WHERE instance_id = $1::uuid),"
            " c AS (SELECT id, entries, events,"
            "  sum(entries) OVER (ORDER BY id) - entries AS first FROM r)"
            " SELECT coalesce(e.entry->>0, e.entry->>'element_id'),"
            "  coalesce(e.entry->>1, e.entry->>'element_type'),"
            "  coalesce(e.entry->>2, e.entry->>'name'), coalesce(e.entry->>3, e.entry->>'event'),"
            "  coalesce(e.entry->>4, e.entry->>'at')::bigint"
            " FROM c CROSS JOIN LATERAL json_array_elements(c.events)"
            "  WITH ORDINALITY AS e(entry, n)"
            " WHERE c.first + c.entries > $2::bigint AND c.first < $2::bigint + $3::bigint"
            "  AND c.first + e.n - 1 >= $2::bigint"
            " ORDER BY c.id, e.n LIMIT $3::bigint";
        const Window w = window_of(page);
        using Page = app::PageResult<app::HistoryRow>;
        return run<Page>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::read_transaction tx(connection);
            Page result;
            result.total = tx.exec_params1(kTotal, instance_id)[0].as<std::int64_t>();
            if (w.offset < result.total) {
                for (const auto& r : tx.exec_params(kPage, instance_id, w.offset, w.limit)) {
                    result.items.push_back({instance_id, r[0].as<std::string>(),
                                            r[1].as<std::string>(),
                                            r[2].is_null() ? std::string() : r[2].as<std::string>(),
                                            history_event_of(r[3].c_str()), time_of(r[4])});
                }
            }
            tx.commit();
            return result;
        });
    }

    Result<app::IdempotencyClaim> claim_idempotency_key(const std::string& key,
                                                        const std::string& request_hash,
                                                        TimePoint now,
                                                        TimePoint not_before) override {
        return run<app::IdempotencyClaim>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::work tx(connection);
                app::IdempotencyClaim claim;
                // A concurrent claim of the same key waits here for the first one's commit, then
                // finds its row: exactly one caller claims.
                const pqxx::result inserted = tx.exec_params(
                    "INSERT INTO idempotency_keys (key, request_hash, status, body, created_at)"
                    " VALUES ($1, $2, NULL, NULL, $3) ON CONFLICT (key) DO UPDATE"
                    " SET request_hash = excluded.request_hash, status = NULL, body = NULL,"
                    " created_at = excluded.created_at WHERE idempotency_keys.created_at < $4"
                    " RETURNING key",
                    key, request_hash, to_epoch_ms(now), to_epoch_ms(not_before));
                claim.claimed = !inserted.empty();
                if (!claim.claimed) {
                    const pqxx::result stored = tx.exec_params(
                        "SELECT key, request_hash, status, body, created_at FROM idempotency_keys"
                        " WHERE key = $1",
                        key);
                    if (!stored.empty()) {
                        claim.stored = read_idempotency(stored[0]);
                    }
                }
                tx.commit();
                return claim;
            });
    }

    Status release_idempotency_key(const std::string& key) override {
        return status_of(run<bool>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::work tx(connection);
            tx.exec_params("DELETE FROM idempotency_keys WHERE key = $1 AND status IS NULL", key);
            tx.commit();
            return true;
        }));
    }

    Result<std::vector<app::OutboxRow>> acquire_outbox(const std::string& owner, int max,
                                                       TimePoint created_before, TimePoint now,
                                                       TimePoint lock_until) override {
        if (max <= 0) {
            return std::vector<app::OutboxRow>{};
        }
        return run<std::vector<app::OutboxRow>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::work tx(connection);
                // SKIP LOCKED: replicas sweeping at once take different rows. The ids as an
                // array, then the rows by primary key: the generic plan of `id IN (SELECT ...)`
                // hash-joins a sequential scan of the whole table (as pg::stmt::kAcquireJobs).
                const pqxx::result rows = tx.exec_params(
                    "UPDATE outbox SET lock_owner = $1, lock_expires_at = $2 WHERE id = ANY(ARRAY"
                    " (SELECT id FROM outbox WHERE created_at <= $3 AND (lock_expires_at IS NULL"
                    " OR lock_expires_at <= $4) ORDER BY created_at, id LIMIT $5"
                    " FOR UPDATE SKIP LOCKED))"
                    " RETURNING id, kind, payload, created_at, lock_owner, lock_expires_at",
                    owner, to_epoch_ms(lock_until), to_epoch_ms(created_before), to_epoch_ms(now),
                    max);
                tx.commit();
                std::vector<app::OutboxRow> out;
                for (const auto& r : rows) {
                    app::OutboxRow row;
                    row.id = r[0].as<std::string>();
                    row.kind = r[1].as<std::string>();
                    row.payload = json_of(r[2].c_str());
                    row.created_at = time_of(r[3]);
                    row.lock_owner = optional_text(r[4]);
                    row.lock_expires_at = optional_time(r[5]);
                    out.push_back(std::move(row));
                }
                std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
                    return std::tie(a.created_at, a.id) < std::tie(b.created_at, b.id);
                });
                return out;
            });
    }

    Status delete_outbox(const std::vector<std::string>& ids) override {
        Columns done(pg::stmt::kDeleteOutbox);
        for (const std::string& id : ids) {
            if (is_uuid(id)) {
                done[0].text(id);
            }
        }
        if (done.rows() == 0) {
            return {};
        }
        return status_of(run<bool>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::work tx(connection);
            exec_columns(tx, pg::stmt::kDeleteOutbox, done);
            tx.commit();
            return true;
        }));
    }

    Result<bool> outbox_row_exists(const std::string& id) override {
        if (!is_uuid(id)) {
            return false;
        }
        return run<bool>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::nontransaction tx(connection);
            const pqxx::result r = tx.exec_params("SELECT 1 FROM outbox WHERE id = $1::uuid", id);
            return !r.empty();
        });
    }

    Result<std::int64_t> outbox_pending() override {
        return run<std::int64_t>(settings_.pool_timeout, [](pqxx::connection& connection) {
            pqxx::nontransaction tx(connection);
            const std::int64_t n = tx.exec1("SELECT count(*) FROM outbox")[0].as<std::int64_t>();
            return n;
        });
    }

    Result<bool> start_events_written(const std::string& definition_id) override {
        if (!is_uuid(definition_id)) {
            return false;
        }
        return run<bool>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::nontransaction tx(connection);
            const pqxx::result r = tx.exec_params(
                "SELECT 1 FROM start_event_marks WHERE definition_id = $1::uuid", definition_id);
            return !r.empty();
        });
    }

    Result<app::InstanceCounts> counts() override {
        return run<app::InstanceCounts>(settings_.pool_timeout, [](pqxx::connection& connection) {
            pqxx::nontransaction tx(connection);
            const pqxx::row r = tx.exec1(kCountsSql);
            app::InstanceCounts counts;
            std::int64_t* fields[] = {
                &counts.running,      &counts.suspended,      &counts.error,
                &counts.completed,    &counts.cancelled,      &counts.open_tasks,
                &counts.pending_jobs, &counts.pending_timers, &counts.open_incidents};
            for (int i = 0; i < 9; ++i) {
                *fields[i] = r[i].as<std::int64_t>();
            }
            return counts;
        });
    }

    Result<app::RetentionResult> delete_ended_instances(
        TimePoint cutoff, std::size_t max_instances, const app::ProcessKeyFilter& filter) override {
        // The filter as $3 (mode: 0 all, 1 only, 2 except) and $4 (text[] of keys).
        BinaryArray keys(pg::ElementType::kText);
        for (const auto& key : filter.keys) {
            keys.text(key);
        }
        const int mode = filter.mode == app::ProcessKeyFilter::Mode::kOnly     ? 1
                         : filter.mode == app::ProcessKeyFilter::Mode::kExcept ? 2
                                                                               : 0;
        return run<app::RetentionResult>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            pqxx::work tx(connection);
            pg::plan_with_values(tx);  // `ended_at < $1`: how many rows that is decides the plan
            // SKIP LOCKED: two replicas running retention at once take different rows.
            const pqxx::row r = tx.exec_params1(
                "WITH doomed AS ("
                "  SELECT i.id FROM instances i"
                "  WHERE i.ended_at IS NOT NULL AND i.ended_at < $1"
                "    AND i.status IN ('COMPLETED', 'CANCELLED')"
                "    AND ($3::int = 0"
                "         OR ($3::int = 1 AND i.process_key = ANY($4::text[]))"
                "         OR ($3::int = 2 AND NOT (i.process_key = ANY($4::text[]))))"
                "    AND NOT EXISTS (SELECT 1 FROM instances c"
                "                    WHERE c.parent_instance_id = i.id)"
                "  ORDER BY i.ended_at LIMIT $2 FOR UPDATE OF i SKIP LOCKED),"
                " h AS (DELETE FROM history WHERE instance_id IN (SELECT id FROM doomed)"
                "       RETURNING entries),"
                " d AS (DELETE FROM instances WHERE id IN (SELECT id FROM doomed)"
                "       RETURNING history_entries)"
                // History counts entries (events), not rows: a row holds one commit's entries,
                // the instance's row its first commit's (migration 11).
                " SELECT (SELECT count(*) FROM d), (SELECT coalesce(sum(entries), 0) FROM h)"
                "  + (SELECT coalesce(sum(history_entries), 0) FROM d)",
                to_epoch_ms(cutoff), static_cast<std::int64_t>(max_instances), mode, keys.param());
            tx.commit();
            app::RetentionResult result;
            result.instances = r[0].as<std::int64_t>();
            result.history = r[1].as<std::int64_t>();
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

    /// The row of a one-row query, or nullopt. One statement is its own snapshot: no explicit
    /// transaction (BEGIN, SET TRANSACTION READ ONLY, COMMIT would be three more round trips).
    template <typename Row, typename Reader>
    Result<std::optional<Row>> read_one(const std::string& sql,
                                        const std::vector<std::string>& params, Reader reader) {
        return run<std::optional<Row>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) -> std::optional<Row> {
                pqxx::nontransaction tx(connection);
                const pqxx::result rows =
                    tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
                if (rows.empty()) {
                    return std::nullopt;
                }
                return reader(rows[0]);
            });
    }

    /// The row of the one-row `statement` (pg::stmt) for `id`, or nullopt.
    template <typename Row, typename Reader>
    Result<std::optional<Row>> read_statement(const pg::Statement& statement, const std::string& id,
                                              Reader reader) {
        return run<std::optional<Row>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) -> std::optional<Row> {
                pqxx::nontransaction tx(connection);
                const pqxx::result rows = pg::exec_statement(tx, statement, id);
                if (rows.empty()) {
                    return std::nullopt;
                }
                return reader(rows[0]);
            });
    }

    /// Locks up to `max` due rows for `owner` with the prepared acquisition `statement`
    /// (pg::stmt::kAcquireJobs with the `type`, or kAcquireTimers); rows another transaction
    /// holds are skipped, not waited for.
    Result<std::vector<app::JobRow>> acquire(const pg::Statement& statement,
                                             const std::string* type, const std::string& owner,
                                             int max, TimePoint now, TimePoint lock_until) {
        if (max <= 0) {
            return std::vector<app::JobRow>{};
        }
        return run<std::vector<app::JobRow>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::work tx(connection);
                const pqxx::result rows =
                    type != nullptr
                        ? pg::exec_statement(tx, statement, owner, to_epoch_ms(lock_until),
                                             to_epoch_ms(now), max, *type)
                        : pg::exec_statement(tx, statement, owner, to_epoch_ms(lock_until),
                                             to_epoch_ms(now), max);
                tx.commit();
                std::vector<app::JobRow> jobs;
                for (const auto& r : rows) {
                    jobs.push_back(read_job(r));
                }
                sort_by_due(jobs);
                return jobs;
            });
    }

    /// One page of `columns` `from` `where`, in `order`, with the total of all pages, read in
    /// one snapshot. The total is counted only when the page does not tell it (a full page, or
    /// an empty one past the first): a separate count(*) reads the index alone, where a window
    /// count over the rows would read and sort every matching row before LIMIT (1.5 s against
    /// 31 ms + 3 ms for `status=RUNNING` among 658,000 instances).
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
                                     " ORDER BY " + order + " LIMIT " + limit + "::bigint OFFSET " +
                                     offset + "::bigint";
        const std::vector<std::string> count_params = text_params(where.values(), filters);
        const std::vector<std::string> rows_params = text_params(where.values(), where.size());
        return run<app::PageResult<Row>>(settings_.pool_timeout, [&](pqxx::connection& connection) {
            // Repeatable read: the page and the count see one snapshot. (libpqxx sends BEGIN
            // and SET TRANSACTION as one query.) plan_with_values: the filters' values decide
            // the plans.
            pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::read_only> tx(
                connection);
            pg::plan_with_values(tx);
            app::PageResult<Row> result;
            const pqxx::result rows =
                tx.exec_params(rows_sql, pqxx::prepare::make_dynamic_params(rows_params));
            for (const auto& r : rows) {
                result.items.push_back(reader(r));
            }
            const auto n = static_cast<std::int64_t>(rows.size());
            if (n > 0 && n < w.limit) {
                result.total = w.offset + n;
            } else if (n > 0 || w.offset > 0) {
                result.total =
                    tx.exec_params(count_sql,
                                   pqxx::prepare::make_dynamic_params(count_params))[0][0]
                        .as<std::int64_t>();
            }
            tx.commit();
            return result;
        });
    }

    /// page_of for the tasks of one instance (in `state` unless empty): the hot GET
    /// /tasks?instance_id=... of a client waiting for its task, as one fixed statement text.
    /// (list_tasks comes here only when no other filter is set.)
    Result<app::PageResult<app::TaskRow>> task_page_of_instance(const std::string& instance_id,
                                                                const std::string& state,
                                                                const app::PageRequest& page) {
        const Window w = window_of(page);
        return run<app::PageResult<app::TaskRow>>(
            settings_.pool_timeout, [&](pqxx::connection& connection) {
                pqxx::nontransaction tx(connection);
                app::PageResult<app::TaskRow> result;
                const pqxx::result rows =
                    state.empty() ? pg::exec_statement(tx, pg::stmt::kTaskPageByInstance,
                                                       instance_id, w.limit, w.offset)
                                  : pg::exec_statement(tx, pg::stmt::kTaskPageByInstanceState,
                                                       instance_id, state, w.limit, w.offset);
                for (const auto& r : rows) {
                    result.items.push_back(read_task(r));
                }
                if (!rows.empty()) {
                    result.total = rows[0][rows.columns() - 1].as<std::int64_t>();
                } else if (w.offset > 0) {
                    const std::string count_sql = std::string("SELECT count(*) FROM user_tasks t") +
                                                  " WHERE t.instance_id = $1::uuid" +
                                                  (state.empty() ? "" : " AND t.state = $2");
                    result.total =
                        (state.empty() ? tx.exec_params(count_sql, instance_id)
                                       : tx.exec_params(count_sql, instance_id, state))[0][0]
                            .as<std::int64_t>();
                }
                return result;
            });
    }

    static std::int64_t count_unfinished(pqxx::transaction_base& tx, const std::string& key) {
        return tx
            .exec_params(std::string("SELECT count(*) FROM instances"
                                     " WHERE process_key = $1 AND status IN ") +
                             kUnfinishedStatuses,
                         key)[0][0]
            .as<std::int64_t>();
    }

    template <typename... Args>
    Result<std::optional<app::DefinitionRecord>> one_definition(const std::string& condition,
                                                                const Args&... args) {
        return run<std::optional<app::DefinitionRecord>>(
            settings_.pool_timeout,
            [&](pqxx::connection& connection) -> std::optional<app::DefinitionRecord> {
                pqxx::nontransaction tx(connection);
                const pqxx::result rows =
                    tx.exec_params(std::string("SELECT ") + std::string(kRecordColumns) +
                                       ", bpmn_xml FROM definitions " + condition,
                                   args...);
                if (rows.empty()) {
                    return std::nullopt;
                }
                return read_record(rows[0], true);
            });
    }

    void ensure_migrated(pqxx::connection& connection) {
        if (migrated_.load(std::memory_order_acquire)) {
            return;
        }
        std::lock_guard lock(migrate_mutex_);
        if (!migrated_.load(std::memory_order_relaxed)) {
            migrate(connection);
            migrated_.store(true, std::memory_order_release);
        }
    }

    /// Leases a connection (waiting at most `wait`), migrates if that has not happened yet, and
    /// runs `body` on it, translating libpqxx exceptions into Errors. A broken connection is
    /// discarded with the idle ones and the call retried once on a fresh connection; unique
    /// violations, serialization failures and deadlocks are retried with a short backoff.
    template <typename T, typename Body>
    Result<T> run(std::chrono::milliseconds wait, Body&& body) {
        bool reconnected = false;
        for (int attempt = 1;; ++attempt) {
            Result<ConnectionPool::Lease> lease = pool_.acquire(wait);
            if (!lease) {
                return std::move(lease).error();
            }
            try {
                ensure_migrated(lease->connection());
                return Result<T>(body(lease->connection()));
            } catch (const pqxx::in_doubt_error& e) {
                lease->discard();
                pool_.discard_idle();
                return db_unavailable(std::string("commit outcome unknown: ") + e.what());
            } catch (const pqxx::broken_connection& e) {
                lease->discard();
                pool_.discard_idle();
                if (!reconnected) {
                    reconnected = true;
                    continue;
                }
                return db_unavailable(e.what());
            } catch (const pqxx::unique_violation& e) {
                if (attempt < kMaxWriteAttempts) {
                    backoff(attempt);
                    continue;
                }
                return write_conflict(describe(e));
            } catch (const pqxx::statement_completion_unknown& e) {
                return db_unavailable(describe(e));
            } catch (const pqxx::transaction_rollback& e) {
                // serialization_failure, deadlock_detected: the whole transaction may rerun.
                if (attempt < kMaxWriteAttempts) {
                    backoff(attempt);
                    continue;
                }
                return write_conflict(describe(e));
            } catch (const pqxx::sql_error& e) {
                const std::string& state = e.sqlstate();
                if (is_session_lost(state)) {
                    lease->discard();
                    pool_.discard_idle();
                    if (!reconnected) {
                        reconnected = true;
                        continue;
                    }
                    return db_unavailable(describe(e));
                }
                if (state == "57014") {
                    return statement_timeout(describe(e));
                }
                if (state.starts_with("53")) {
                    return db_unavailable(describe(e));
                }
                return Error::internal_error(describe(e));
            } catch (const std::exception& e) {
                return Error::internal_error(std::string("postgres: ") + e.what());
            }
        }
    }

    app::DbSettings settings_;
    PoolMetrics metrics_;
    ConnectionPool pool_;
    std::mutex migrate_mutex_;
    std::atomic<bool> migrated_{false};
};

}  // namespace

Result<std::unique_ptr<Store>> open_postgres_store(const std::string& url,
                                                   const app::DbSettings& settings,
                                                   metrics::Registry& registry) {
    Result<std::string> conninfo =
        postgres_conninfo(url, settings.connect_timeout, settings.tcp_timeout);
    if (!conninfo) {
        return std::move(conninfo).error();
    }
    if (settings.pool_size + settings.max_overflow == 0) {
        return Error::invalid_argument("db_pool_size + db_max_overflow must be at least 1",
                                       "INVALID_DB_SETTINGS");
    }
    auto store = std::make_unique<PostgresStore>(conninfo.value(), settings, registry);
    if (Status started = store->start(); !started) {
        return std::move(started).error();
    }
    return std::unique_ptr<Store>(std::move(store));
}

}  // namespace pythmata::store
