#pragma once

#include <pqxx/connection>
#include <pqxx/result>
#include <pqxx/transaction_base>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pythmata::store::pg {

/// Column lists shared by the prepared statements and the statements built per call.
inline constexpr const char* kInstanceColumns =
    "i.id, i.definition_id, i.process_key, i.process_version, i.business_key, i.status,"
    " i.variables, i.version, i.parent_instance_id, i.parent_wait_id, i.active_elements,"
    " i.open_incidents, i.created_at, i.updated_at, i.ended_at";
inline constexpr const char* kTaskColumns =
    "t.id, t.instance_id, t.wait_id, i.process_key, t.element_id, t.name, t.assignee,"
    " t.candidate_groups, t.state, t.created_at, t.due_at, t.completed_at";
inline constexpr const char* kTaskFrom =
    "FROM user_tasks t JOIN instances i ON i.id = t.instance_id";
inline constexpr const char* kJobColumns =
    "id, kind, type, instance_id, definition_id, wait_id, element_id, due_at, repeat_count,"
    " lock_owner, lock_expires_at, retries, error_message, payload, created_at";

/// A hot statement of the store, its SQL text in statements.cpp. `prepared`: parsed and planned
/// once per connection: the pool's connections run with plan_cache_mode = force_generic_plan
/// (db_plan_cache_mode), so the one generic plan is made at the first run and kept until the
/// tables' statistics change, e.g. by autovacuum's next ANALYZE. (Under PostgreSQL's `auto`, a
/// prepared statement gets five custom plans first and, on some connections, custom plans for
/// good.)
/// Prepared are the statements whose generic plan is the right one both on a new, never analysed
/// table (which the planner takes for at least ten pages) and on a large one:
/// INSERT ... SELECT FROM unnest(...) and primary-key reads. Not prepared: a lookup by
/// `= ANY(array)` or a join with unnest(...), whose generic plan on a new database is a hash join
/// over a sequential scan, kept while the table grows to thousands of rows; those are planned for
/// each call (with the default db_plan_cache_mode, generically too: with the table's current
/// statistics, not its first ones; the acquisitions are written so that their generic plan finds
/// the rows by primary key, statements.cpp acquire()). Except the batch's
/// joins with unnest (the UPDATEs and DELETEs by instance and wait), prepared and always run after
/// join_by_index(). The task page is prepared in a form whose only index is the instance's
/// (statements.cpp, task_page): planning it cost ~0.23 ms of PostgreSQL CPU per call, three times
/// its execution. (Even a primary-key read gets a sequential scan if it is planned just after
/// ANALYZE saw a table of a page or two; the next ANALYZE, due after 50 rows + 10 % of changes,
/// replaces that plan.)
struct Statement {
    const char* name;
    bool prepared;
};

/// The hot statements, for exec_statement(). Their texts and parameters are in statements.cpp.
namespace stmt {

// The batch commit: one statement per table and operation, each column one array parameter.
inline constexpr Statement kInsertInstances{"insert_instances", true};
inline constexpr Statement kUpdateInstances{"update_instances", true};
inline constexpr Statement kCloseTasks{"close_tasks", true};
inline constexpr Statement kCloseJobs{"close_jobs", true};
inline constexpr Statement kCloseMessageSubscriptions{"close_message_subscriptions", true};
inline constexpr Statement kCloseSignalSubscriptions{"close_signal_subscriptions", true};
inline constexpr Statement kInsertTasks{"insert_tasks", true};
inline constexpr Statement kInsertJobs{"insert_jobs", true};
inline constexpr Statement kInsertMessageSubscriptions{"insert_message_subscriptions", true};
inline constexpr Statement kInsertSignalSubscriptions{"insert_signal_subscriptions", true};
inline constexpr Statement kInsertHistory{"insert_history", true};
inline constexpr Statement kInsertIncidents{"insert_incidents", true};
inline constexpr Statement kResolveIncidents{"resolve_incidents", false};
inline constexpr Statement kCountOpenIncidents{"count_open_incidents", false};
inline constexpr Statement kUpsertIdempotency{"upsert_idempotency", true};
inline constexpr Statement kClearStartJobs{"clear_start_jobs", false};
inline constexpr Statement kClearStartMessageSubscriptions{"clear_start_message_subscriptions",
                                                           false};
inline constexpr Statement kClearStartSignalSubscriptions{"clear_start_signal_subscriptions",
                                                          false};
inline constexpr Statement kMarkStartEvents{"mark_start_events", true};
inline constexpr Statement kInsertOutbox{"insert_outbox", true};
inline constexpr Statement kDeleteOutbox{"delete_outbox", false};

// Reads by id ($1 the id, or an array of ids for the *_by_ids ones).
inline constexpr Statement kInstance{"instance", true};
inline constexpr Statement kInstanceWithState{"instance_with_state", true};
inline constexpr Statement kInstancesByIds{"instances_by_ids", false};
inline constexpr Statement kInstancesByIdsWithState{"instances_by_ids_with_state", false};
inline constexpr Statement kTask{"task", true};
/// The task page of one instance ($1), with the total of all pages as the last column;
/// $2 limit, $3 offset. The _state variant has the state as $2, then limit and offset.
inline constexpr Statement kTaskPageByInstance{"task_page_by_instance", true};
inline constexpr Statement kTaskPageByInstanceState{"task_page_by_instance_state", true};

// Acquisition: $1 owner, $2 lock until, $3 now, $4 max (and $5 the job type), RETURNING the
// job columns.
inline constexpr Statement kAcquireJobs{"acquire_jobs", false};
inline constexpr Statement kAcquireTimers{"acquire_timers", false};

}  // namespace stmt

/// Makes the rest of `tx` plan joins as nested loops over an index (SET LOCAL enable_seqscan,
/// enable_hashjoin and enable_mergejoin off) and use generic plans (plan_cache_mode): run before
/// the prepared joins of a batch with unnest(...) (kUpdateInstances, kCloseTasks, kClose*), whose
/// generic plan, made the first time a connection runs them, would otherwise be a hash join over a
/// sequential scan on a new table, kept until the table's next ANALYZE; and which PostgreSQL would
/// otherwise keep planning per call (the generic plan's estimate of unnest's rows makes it look
/// dearer than a custom plan). Every plan of those statements is made under these settings, as
/// they run nowhere else. One round trip per batch with updates, against ~0.15 ms of planning per
/// statement per batch.
void join_by_index(pqxx::transaction_base& tx);

/// Makes the rest of `tx` plan each statement with its parameters' values (SET LOCAL
/// plan_cache_mode = force_custom_plan). The pool's connections run on generic plans
/// (db_plan_cache_mode), which also applies to a statement sent with parameters but not prepared;
/// for the filtered lists and the retention sweep the values decide the plan: `status =
/// 'RUNNING'` wants the status index, `status = 'COMPLETED'` may want a scan. One round trip, in
/// a transaction of its own.
void plan_with_values(pqxx::transaction_base& tx);

/// The element type of an array parameter, as PostgreSQL's type OID (pg_type.oid of the element
/// type; built-in OIDs are fixed). The batch's columns are sent in PostgreSQL's binary array
/// format, whose header names the element type: the server checks it against the parameter's.
enum class ElementType : std::uint32_t {
    kBool = 16,
    kBytea = 17,
    kInt8 = 20,
    kInt4 = 23,
    kText = 25,
    kJson = 114,
    kUuid = 2950,
    kJsonb = 3802,
};
/// The element types of `sql`'s parameters $1..$n when every one of them is written as an array
/// of a type above (`$3::bigint[]`), by n - 1; nullopt when one is not (or is missing).
[[nodiscard]] std::optional<std::vector<ElementType>> array_parameters(std::string_view sql);
/// array_parameters() of a statement of `stmt`, parsed once; throws std::logic_error when its
/// parameters are not all arrays (a statement run with Columns must take only arrays).
[[nodiscard]] const std::vector<ElementType>& array_parameters_of(const Statement& statement);
/// Defines the prepared statements of `stmt` on a new connection (the pool's setup hook). libpqxx
/// 6.4 registers a definition with the server on its first use, so this sends nothing: each
/// connection parses a statement once, when it first runs it, and never one it does not run. A
/// connection that breaks is discarded with its statements; the next one defines them again.
void prepare_statements(pqxx::connection& connection);

/// The SQL text of `statement`.
[[nodiscard]] const std::string& sql_of(const Statement& statement);

/// Runs `statement` with `args` in `tx`: by name when it is prepared, else as its text with
/// parameters (parsed and planned by the server for this call).
template <typename... Args>
pqxx::result exec_statement(pqxx::transaction_base& tx, const Statement& statement,
                            Args&&... args) {
    if (statement.prepared) {
        return tx.exec_prepared(statement.name, std::forward<Args>(args)...);
    }
    return tx.exec_params(sql_of(statement), std::forward<Args>(args)...);
}

}  // namespace pythmata::store::pg
