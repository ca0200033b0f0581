#include "postgres/statements.hpp"

#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pythmata::store::pg {
namespace {

/// Closing the waits of (instance, wait id) pairs in one of the wait tables.
std::string close_waits(const char* table) {
    return std::string("DELETE FROM ") + table +
           " w USING unnest($1::uuid[], $2::bigint[]) AS c(instance_id, wait_id)"
           " WHERE w.instance_id = c.instance_id AND w.wait_id = c.wait_id";
}

/// Removing the start-event rows (no instance) of the definitions in $1 from a wait table: by
/// the table's start-event index (migration 8), which holds those rows alone.
std::string clear_start_events(const char* table) {
    return std::string("DELETE FROM ") + table +
           " WHERE definition_id = ANY($1::uuid[]) AND instance_id IS NULL";
}

/// Locks up to $4 due rows matching `condition` ($3 = now, $5 = type) for owner $1 until $2 in
/// one statement; rows another transaction holds are skipped, not waited for. The ids are
/// collected into an array first (an InitPlan), and the rows updated by primary key: written
/// `id IN (SELECT ...)`, the generic plan (db_plan_cache_mode) is a hash semi join over a
/// sequential scan of all of jobs, 23 ms for 5 due timers among 107,000 waiting ones.
std::string acquire(const char* condition, const char* order) {
    return std::string(
               "UPDATE jobs SET lock_owner = $1, lock_expires_at = $2"
               " WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE ") +
           condition + " ORDER BY " + order + " LIMIT $4 FOR UPDATE SKIP LOCKED)) RETURNING " +
           kJobColumns;
}

/// The task page of one instance: `condition` on top of the instance, in the order of
/// GET /tasks, with the window count of every matching row. The columns are kTaskColumns with the
/// process key read once by primary key instead of joined. Prepared: a state condition is written
/// `(t.state = $2) IS TRUE`, which no index can serve, so that the only index the generic plan
/// can take is user_tasks_instance_state_idx by instance, also on a new, never analysed table
/// (`t.state = $2` there gets user_tasks_state_idx, every OPEN task filtered by instance).
std::string task_page(const char* condition, const char* limit, const char* offset) {
    std::string columns = kTaskColumns;
    const std::string_view joined = "i.process_key";
    columns.replace(columns.find(joined), joined.size(),
                    "(SELECT process_key FROM instances WHERE id = $1::uuid)");
    return "SELECT " + columns + ", count(*) OVER () FROM user_tasks t" +
           " WHERE t.instance_id = $1::uuid" + condition +
           " ORDER BY t.created_at DESC, t.id DESC LIMIT " + limit + "::bigint OFFSET " + offset +
           "::bigint";
}

std::vector<std::pair<Statement, std::string>> definitions() {
    std::vector<std::pair<Statement, std::string>> all;
    all.emplace_back(
        stmt::kInsertInstances,
        "INSERT INTO instances (id, definition_id, process_key, process_version,"
        " business_key, status, variables, state, version, parent_instance_id,"
        " parent_wait_id, active_elements, open_incidents, created_at, updated_at,"
        " ended_at, history_entries, history_events) SELECT u.id, d.id, u.process_key,"
        " u.process_version, u.business_key, u.status, u.variables, u.state, u.version,"
        " u.parent_instance_id, u.parent_wait_id, u.active_elements, 0, u.created_at,"
        " u.updated_at, u.ended_at, u.history_entries, u.history_events"
        " FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[],"
        " $6::text[], $7::jsonb[], $8::bytea[], $9::bigint[], $10::uuid[], $11::bigint[],"
        " $12::jsonb[], $13::bigint[], $14::bigint[], $15::bigint[], $16::int[], $17::json[])"
        " AS u(id, definition_id, process_key, process_version, business_key, status,"
        " variables, state, version, parent_instance_id, parent_wait_id, active_elements,"
        " created_at, updated_at, ended_at, history_entries, history_events)"
        // The definitions are locked once per batch, not checked once per row by a foreign
        // key trigger (migration 10), and joined in: a row whose definition is gone gets a NULL
        // definition_id, which fails the whole statement (not_null_violation), so that it is
        // all or nothing also when it runs alone outside a transaction block. delete_key's
        // last pass waits for these locks; both take them in id order (no deadlock).
        " LEFT JOIN (SELECT id FROM definitions WHERE id = ANY($2::uuid[])"
        " ORDER BY id FOR KEY SHARE) d ON d.id = u.definition_id");
    all.emplace_back(
        stmt::kUpdateInstances,
        "UPDATE instances i SET business_key = u.business_key, status = u.status,"
        " variables = u.variables, state = u.state,"
        " version = u.expected_version + 1, active_elements = u.active_elements,"
        " updated_at = u.updated_at, ended_at = u.ended_at"
        " FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::jsonb[],"
        " $6::bytea[], $7::jsonb[], $8::bigint[], $9::bigint[])"
        " AS u(id, expected_version, business_key, status, variables, state, active_elements,"
        " updated_at, ended_at)"
        " WHERE i.id = u.id AND i.version = u.expected_version RETURNING i.id");
    // The 'OPEN' these two compare with is a column of the unnest, not a literal: with the
    // literal, a generic plan made while few rows were OPEN scans every OPEN entry of the
    // (state, created_at) index once and joins the batch against them (Materialize), and that
    // index's OPEN range also holds the entries of every task closed since the last vacuum (a
    // closed task's update is not HOT). Under user task load that made closing tasks the
    // dearest statement per row, growing with the backlog (docs/benchmarks.md, "Session 11").
    // As a join column it can only be an index condition of the (instance, state, wait) probe.
    all.emplace_back(stmt::kCloseTasks,
                     "UPDATE user_tasks t SET state = CASE WHEN c.completed THEN 'COMPLETED'"
                     " ELSE 'CANCELLED' END, completed_at = c.at FROM unnest($1::uuid[],"
                     " $2::bigint[], $3::boolean[], $4::bigint[],"
                     " array_fill('OPEN'::text, ARRAY[cardinality($1::uuid[])]))"
                     " AS c(instance_id, wait_id, completed, at, open)"
                     " WHERE t.instance_id = c.instance_id AND t.state = c.open"
                     " AND t.wait_id = c.wait_id");
    all.emplace_back(stmt::kCloseJobs, close_waits("jobs"));
    all.emplace_back(stmt::kCloseMessageSubscriptions, close_waits("message_subscriptions"));
    all.emplace_back(stmt::kCloseSignalSubscriptions, close_waits("signal_subscriptions"));
    all.emplace_back(stmt::kInsertTasks,
                     "INSERT INTO user_tasks (id, instance_id, wait_id, element_id, name, assignee,"
                     " candidate_groups, state, created_at, due_at)"
                     " SELECT id, instance_id, wait_id, element_id, name, assignee,"
                     " candidate_groups, 'OPEN', created_at, due_at FROM unnest($1::uuid[],"
                     " $2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::jsonb[],"
                     " $8::bigint[], $9::bigint[]) AS u(id, instance_id, wait_id, element_id, name,"
                     " assignee, candidate_groups, created_at, due_at)");
    all.emplace_back(stmt::kInsertJobs,
                     "INSERT INTO jobs (id, kind, type, instance_id, definition_id, wait_id,"
                     " element_id, due_at, repeat_count, retries, payload, created_at)"
                     " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[],"
                     " $5::uuid[], $6::bigint[], $7::text[], $8::bigint[], $9::bigint[],"
                     " $10::int[], $11::jsonb[], $12::bigint[])");
    all.emplace_back(stmt::kInsertMessageSubscriptions,
                     "INSERT INTO message_subscriptions (id, name, correlation_key, instance_id,"
                     " definition_id, wait_id, element_id, created_at)"
                     " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[],"
                     " $5::uuid[], $6::bigint[], $7::text[], $8::bigint[])");
    all.emplace_back(stmt::kInsertSignalSubscriptions,
                     "INSERT INTO signal_subscriptions (id, name, instance_id, definition_id,"
                     " wait_id, element_id, created_at)"
                     " SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[],"
                     " $5::bigint[], $6::text[], $7::bigint[])");
    // Ids are assigned in the order of the rows: history reads back in the order it happened.
    all.emplace_back(stmt::kInsertHistory,
                     "INSERT INTO history (instance_id, entries, events)"
                     " SELECT instance_id, entries, events"
                     " FROM unnest($1::uuid[], $2::int[], $3::json[]) WITH ORDINALITY"
                     " AS u(instance_id, entries, events, n) ORDER BY n");
    all.emplace_back(stmt::kInsertIncidents,
                     "INSERT INTO incidents (id, instance_id, engine_incident_id, job_id,"
                     " element_id, kind, message, state, created_at, resolved_at)"
                     " SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[],"
                     " $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[],"
                     " $10::bigint[])");
    all.emplace_back(stmt::kResolveIncidents,
                     "UPDATE incidents n SET state = 'RESOLVED', resolved_at = r.at"
                     " FROM unnest($1::uuid[], $2::bigint[], $3::bigint[],"
                     " array_fill('OPEN'::text, ARRAY[cardinality($1::uuid[])]))"
                     " AS r(instance_id, engine_incident_id, at, open)"
                     " WHERE n.instance_id = r.instance_id"
                     " AND n.engine_incident_id = r.engine_incident_id AND n.state = r.open");
    all.emplace_back(stmt::kCountOpenIncidents,
                     "UPDATE instances i SET open_incidents = (SELECT count(*)"
                     " FROM incidents n WHERE n.instance_id = i.id"
                     " AND n.state = 'OPEN') WHERE i.id = ANY($1::uuid[])");
    all.emplace_back(stmt::kUpsertIdempotency,
                     "INSERT INTO idempotency_keys (key, request_hash, status, body,"
                     " created_at) SELECT * FROM unnest($1::text[], $2::text[],"
                     " $3::int[], $4::text[], $5::bigint[]) ON CONFLICT (key) DO UPDATE"
                     " SET request_hash = excluded.request_hash, status = excluded.status,"
                     " body = excluded.body, created_at = excluded.created_at");
    all.emplace_back(stmt::kClearStartJobs, clear_start_events("jobs"));
    all.emplace_back(stmt::kClearStartMessageSubscriptions,
                     clear_start_events("message_subscriptions"));
    all.emplace_back(stmt::kClearStartSignalSubscriptions,
                     clear_start_events("signal_subscriptions"));
    all.emplace_back(stmt::kMarkStartEvents,
                     "INSERT INTO start_event_marks (definition_id)"
                     " SELECT * FROM unnest($1::uuid[]) ON CONFLICT (definition_id) DO NOTHING");
    all.emplace_back(stmt::kInsertOutbox,
                     "INSERT INTO outbox (id, kind, payload, created_at)"
                     " SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::bigint[])");
    all.emplace_back(stmt::kDeleteOutbox, "DELETE FROM outbox WHERE id = ANY($1::uuid[])");

    const std::string instance = std::string("SELECT ") + kInstanceColumns;
    all.emplace_back(stmt::kInstance, instance + " FROM instances i WHERE i.id = $1::uuid");
    all.emplace_back(stmt::kInstanceWithState,
                     instance + ", i.state FROM instances i WHERE i.id = $1::uuid");
    all.emplace_back(stmt::kInstancesByIds,
                     instance + " FROM instances i WHERE i.id = ANY($1::uuid[])");
    all.emplace_back(stmt::kInstancesByIdsWithState,
                     instance + ", i.state FROM instances i WHERE i.id = ANY($1::uuid[])");
    all.emplace_back(stmt::kTask, std::string("SELECT ") + kTaskColumns + " " + kTaskFrom +
                                      " WHERE t.id = $1::uuid");
    all.emplace_back(stmt::kTaskPageByInstance, task_page("", "$2", "$3"));
    all.emplace_back(stmt::kTaskPageByInstanceState,
                     task_page(" AND (t.state = $2) IS TRUE", "$3", "$4"));

    all.emplace_back(stmt::kAcquireJobs,
                     acquire("kind = 'job' AND type = $5 AND retries > 0 AND due_at <= $3"
                             " AND (lock_expires_at IS NULL OR lock_expires_at <= $3)",
                             "due_at, created_at"));
    // Timers are acquired in due order only: a tie-break (created_at) is not in the timer
    // index, so with many timers due at once every acquisition would sort all of them.
    all.emplace_back(stmt::kAcquireTimers,
                     acquire("kind = 'timer' AND due_at <= $3"
                             " AND (lock_expires_at IS NULL OR lock_expires_at <= $3)",
                             "due_at"));
    return all;
}

struct Text {
    Statement statement;
    std::string sql;
    std::optional<std::vector<ElementType>> arrays;
};

/// The texts by statement name, built once (thread-safe static initialisation).
const std::map<std::string_view, Text>& texts() {
    static const auto kTexts = [] {
        std::map<std::string_view, Text> by_name;
        for (auto& definition : definitions()) {
            const std::string_view name = definition.first.name;
            auto arrays = array_parameters(definition.second);
            by_name.emplace(
                name, Text{definition.first, std::move(definition.second), std::move(arrays)});
        }
        return by_name;
    }();
    return kTexts;
}

std::optional<ElementType> element_type(std::string_view name) {
    static constexpr std::pair<std::string_view, ElementType> kNames[] = {
        {"boolean", ElementType::kBool}, {"bytea", ElementType::kBytea},
        {"bigint", ElementType::kInt8},  {"int", ElementType::kInt4},
        {"text", ElementType::kText},    {"json", ElementType::kJson},
        {"uuid", ElementType::kUuid},    {"jsonb", ElementType::kJsonb},
    };
    for (const auto& [spelled, type] : kNames) {
        if (name == spelled) {
            return type;
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::vector<ElementType>> array_parameters(std::string_view sql) {
    std::vector<std::optional<ElementType>> found;
    for (std::size_t at = sql.find('$'); at != std::string_view::npos; at = sql.find('$', at)) {
        ++at;
        std::size_t number = 0;
        const auto [end, error] = std::from_chars(sql.data() + at, sql.data() + sql.size(), number);
        if (error != std::errc() || number == 0) {
            continue;
        }
        at = static_cast<std::size_t>(end - sql.data());
        std::optional<ElementType> type;
        if (sql.substr(at, 2) == "::") {
            std::size_t name_end = at + 2;
            while (name_end < sql.size() &&
                   (std::isalnum(static_cast<unsigned char>(sql[name_end])) != 0 ||
                    sql[name_end] == '_')) {
                ++name_end;
            }
            if (sql.substr(name_end, 2) == "[]") {
                type = element_type(sql.substr(at + 2, name_end - at - 2));
            }
        }
        if (!type) {
            return std::nullopt;  // a parameter that is not an array of a type we send
        }
        if (found.size() < number) {
            found.resize(number);
        }
        if (found[number - 1] && *found[number - 1] != *type) {
            return std::nullopt;
        }
        found[number - 1] = type;
    }
    std::vector<ElementType> types;
    for (const auto& type : found) {
        if (!type) {
            return std::nullopt;  // $n never named
        }
        types.push_back(*type);
    }
    return types;
}

const std::vector<ElementType>& array_parameters_of(const Statement& statement) {
    const Text& text = texts().at(statement.name);
    if (!text.arrays) {
        throw std::logic_error(std::string("statement ") + statement.name +
                               " does not take arrays only");
    }
    return *text.arrays;
}

void prepare_statements(pqxx::connection& connection) {
    for (const auto& [name, definition] : texts()) {
        if (definition.statement.prepared) {
            connection.prepare(definition.statement.name, definition.sql);
        }
    }
}

void join_by_index(pqxx::transaction_base& tx) {
    tx.exec(
        "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off;"
        " SET LOCAL enable_mergejoin = off; SET LOCAL plan_cache_mode = force_generic_plan");
}

void plan_with_values(pqxx::transaction_base& tx) {
    tx.exec("SET LOCAL plan_cache_mode = force_custom_plan");
}

const std::string& sql_of(const Statement& statement) {
    // Every Statement of stmt has a text: a missing one is a bug, and at() says so.
    return texts().at(statement.name).sql;
}

}  // namespace pythmata::store::pg
