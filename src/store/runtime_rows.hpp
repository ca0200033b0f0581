#pragma once

// Backend-neutral pieces of the RuntimeStore adapters: names of enum values as stored, the
// filter builders (bound parameters only), the grouping of a batch into rounds, and errors.

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/app/ports/runtime_store.hpp"
#include "pythmata/common/error.hpp"
#include "store_errors.hpp"

namespace pythmata::store {

/// The `event` column value of a history row.
[[nodiscard]] inline const char* history_event_name(app::HistoryEventKind kind) {
    switch (kind) {
        case app::HistoryEventKind::kStarted:
            return "STARTED";
        case app::HistoryEventKind::kCompleted:
            return "COMPLETED";
        case app::HistoryEventKind::kCancelled:
            return "CANCELLED";
        case app::HistoryEventKind::kTerminated:
            return "TERMINATED";
        case app::HistoryEventKind::kFailed:
            return "FAILED";
    }
    return "STARTED";
}

[[nodiscard]] inline app::HistoryEventKind history_event_of(std::string_view name) {
    if (name == "COMPLETED") {
        return app::HistoryEventKind::kCompleted;
    }
    if (name == "CANCELLED") {
        return app::HistoryEventKind::kCancelled;
    }
    if (name == "TERMINATED") {
        return app::HistoryEventKind::kTerminated;
    }
    if (name == "FAILED") {
        return app::HistoryEventKind::kFailed;
    }
    return app::HistoryEventKind::kStarted;
}

/// Appends `text` to `out` as a JSON string literal (quotes, backslashes and control characters
/// escaped; other bytes, UTF-8 included, as they are).
inline void append_json_string(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    for (const char ch : text) {
        const auto byte = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (byte < 0x20) {
            out += "\\u00";
            out += kHex[byte >> 4];
            out += kHex[byte & 0xF];
        } else {
            out += ch;
        }
    }
    out += '"';
}

/// One stored history row: the entries one commit recorded for one instance.
struct HistoryChunk {
    std::string instance_id;
    std::int64_t entries = 0;
    /// JSON array of the entries in order, each an array [element_id, element_type, name, event,
    /// at (epoch ms)]. Rows of earlier builds hold objects with those keys instead; the readers
    /// take both. Arrays are half the bytes of objects (straight.bpmn's 16 entries: 1,545 -> 737),
    /// and the bytes are what a history row costs: escaping them into the statement, the
    /// server's JSON check, the WAL (docs/benchmarks.md, "Session 6").
    std::string events;
};

/// The history of `write` as stored: one chunk per instance (an entry with an empty
/// instance_id belongs to write.instance), chunks in the order of their first entry, entries in
/// their order.
[[nodiscard]] inline std::vector<HistoryChunk> history_chunks(const app::InstanceWrite& write) {
    std::vector<HistoryChunk> chunks;
    for (const app::HistoryRow& entry : write.history) {
        const std::string& instance_id =
            entry.instance_id.empty() ? write.instance.id : entry.instance_id;
        auto chunk = std::find_if(chunks.begin(), chunks.end(), [&](const HistoryChunk& c) {
            return c.instance_id == instance_id;
        });
        if (chunk == chunks.end()) {
            chunks.push_back({instance_id, 0, "["});
            chunk = std::prev(chunks.end());
        }
        std::string& out = chunk->events;
        if (chunk->entries > 0) {
            out += ',';
        }
        out += '[';
        append_json_string(out, entry.element_id);
        out += ',';
        append_json_string(out, entry.element_type);
        out += ',';
        append_json_string(out, entry.name);
        out += ",\"";
        out += history_event_name(entry.event);
        out += "\",";
        out += std::to_string(to_epoch_ms(entry.at));
        out += ']';
        ++chunk->entries;
    }
    for (HistoryChunk& chunk : chunks) {
        chunk.events += ']';
    }
    return chunks;
}

/// jobs.type of a timer row: instance timers and timer start events are told apart by it.
[[nodiscard]] inline std::string timer_type(const app::WaitRow& wait) {
    return wait.instance_id.empty() ? "timer-start" : "timer";
}

/// When a job or timer row falls due: its due_at, else (jobs: at once) its creation.
[[nodiscard]] inline TimePoint wait_due(const app::WaitRow& wait) {
    return wait.due_at.value_or(wait.created_at);
}

/// A batch's instance writes in rounds in which every instance appears at most once, keeping
/// the order of the writes of one instance: round k holds the k-th write of each instance. A
/// backend that writes one statement per table for a whole round thus never updates one row
/// twice in one statement, and a later write of an instance sees its earlier ones.
[[nodiscard]] inline std::vector<std::vector<const app::InstanceWrite*>> split_rounds(
    const std::vector<app::InstanceWrite>& writes) {
    std::vector<std::vector<const app::InstanceWrite*>> rounds;
    std::unordered_map<std::string_view, std::size_t> seen;
    for (const app::InstanceWrite& write : writes) {
        const std::size_t round = seen[write.instance.id]++;
        if (rounds.size() <= round) {
            rounds.emplace_back();
        }
        rounds[round].push_back(&write);
    }
    return rounds;
}

/// Idempotency records of a batch with one record per key (the last one wins), so that one
/// upsert statement never touches a key twice.
[[nodiscard]] inline std::vector<const app::IdempotencyRecord*> last_per_key(
    const std::vector<app::IdempotencyRecord>& records) {
    std::unordered_map<std::string_view, std::size_t> index;
    std::vector<const app::IdempotencyRecord*> unique;
    for (const app::IdempotencyRecord& record : records) {
        auto [it, inserted] = index.emplace(record.key, unique.size());
        if (inserted) {
            unique.push_back(&record);
        } else {
            unique[it->second] = &record;
        }
    }
    return unique;
}

/// An update whose expected_version no longer matches: the whole batch is rolled back.
[[nodiscard]] inline Error stale_instance(const std::string& instance_id) {
    Error error = write_conflict("instance " + instance_id + " changed since it was read");
    error.context = {{"instance_id", instance_id}};
    return error;
}

/// A row of the batch has the id of an existing row.
[[nodiscard]] inline Error duplicate_id(std::string internal) {
    Error error = Error::conflict("DB_CONFLICT", "a row with this id exists already");
    error.internal = std::move(internal);
    return error;
}

/// A row of the batch refers to one that does not exist (any more): an instance of a definition
/// deleted meanwhile, a wait of an instance that is gone.
[[nodiscard]] inline Error missing_reference(std::string internal) {
    Error error = Error::conflict("DB_CONFLICT", "a row this change refers to no longer exists");
    error.internal = std::move(internal);
    return error;
}

/// An unknown job id.
[[nodiscard]] inline Error job_not_found(const std::string& id) {
    Error error = Error::not_found("JOB_NOT_FOUND", "no job with id " + id);
    error.context = {{"job_id", id}};
    return error;
}

/// An unknown timer id.
[[nodiscard]] inline Error timer_not_found(const std::string& id) {
    Error error = Error::not_found("TIMER_NOT_FOUND", "no timer with id " + id);
    error.context = {{"timer_id", id}};
    return error;
}

/// counts(): one row of nine counters, the same SQL on both backends.
inline constexpr const char* kCountsSql =
    "SELECT (SELECT count(*) FROM instances WHERE status = 'RUNNING'),"
    " (SELECT count(*) FROM instances WHERE status = 'SUSPENDED'),"
    " (SELECT count(*) FROM instances WHERE status = 'ERROR'),"
    " (SELECT count(*) FROM instances WHERE status = 'COMPLETED'),"
    " (SELECT count(*) FROM instances WHERE status = 'CANCELLED'),"
    " (SELECT count(*) FROM user_tasks WHERE state = 'OPEN'),"
    " (SELECT count(*) FROM jobs WHERE kind = 'job'),"
    " (SELECT count(*) FROM jobs WHERE kind = 'timer'),"
    " (SELECT count(*) FROM incidents WHERE state = 'OPEN')";

/// A list of strings as stored (a JSON array).
[[nodiscard]] inline std::string json_strings(const std::vector<std::string>& items) {
    return nlohmann::json(items).dump();
}

/// The strings of a stored JSON array; anything else in it is skipped.
[[nodiscard]] inline std::vector<std::string> strings_of_json(std::string_view text) {
    std::vector<std::string> items;
    const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
    if (parsed.is_array()) {
        for (const auto& item : parsed) {
            if (item.is_string()) {
                items.push_back(item.get<std::string>());
            }
        }
    }
    return items;
}

/// A stored JSON document; malformed text (never written by the store) reads as null.
[[nodiscard]] inline nlohmann::json json_of(std::string_view text) {
    nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
    return parsed.is_discarded() ? nlohmann::json() : parsed;
}

/// A filter's bound value.
using SqlValue = std::variant<std::string, std::int64_t>;

/// The WHERE clause of a list query, built from fixed SQL fragments and placeholders only: every
/// value is a bound parameter. `placeholder` spells parameter n ("?n" for SQLite, "$n" for
/// PostgreSQL).
class Conditions {
  public:
    enum class Style { kSqlite, kPostgres };
    explicit Conditions(Style style) : style_(style) {}

    /// Adds the condition `before <parameter> after`, e.g. ("t.state = ", value).
    void add(std::string_view before, SqlValue value, std::string_view after = {}) {
        sql_ += sql_.empty() ? " WHERE " : " AND ";
        sql_ += before;
        sql_ += next(std::move(value));
        sql_ += after;
    }
    /// Adds a condition without a parameter.
    void add_fixed(std::string_view condition) {
        sql_ += sql_.empty() ? " WHERE " : " AND ";
        sql_ += condition;
    }
    /// A placeholder for a further parameter (LIMIT, OFFSET) after the conditions.
    [[nodiscard]] std::string next(SqlValue value) {
        values_.push_back(std::move(value));
        return (style_ == Style::kSqlite ? "?" : "$") + std::to_string(values_.size());
    }

    [[nodiscard]] const std::string& where() const { return sql_; }
    [[nodiscard]] const std::vector<SqlValue>& values() const { return values_; }
    /// How many parameters there are so far.
    [[nodiscard]] std::size_t size() const { return values_.size(); }

  private:
    Style style_;
    std::string sql_;
    std::vector<SqlValue> values_;
};

}  // namespace pythmata::store
