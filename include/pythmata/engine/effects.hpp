#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/engine/instance_state.hpp"

namespace pythmata::engine {

/// A wait the app must persist (and later answer with the matching command).
struct WaitOpened {
    WaitId id = 0;
    WaitKind kind = WaitKind::kUserTask;
    bpmn::ElementIndex element = bpmn::kNoElement;
    std::string element_id;
    std::string name;  ///< element name
    // User tasks.
    std::string assignee;
    std::vector<std::string> candidate_groups;
    std::optional<TimePoint> due_at;  ///< user task due date, or the timer's due time
    // Timers: firings left after this one (-1 unbounded, 0 = no repeat).
    std::int64_t repeat = 0;
    // Messages and signals.
    std::string message_name;
    std::string correlation_key;
    std::string signal_name;
    // Jobs.
    std::string job_type;
    std::string service_name;  ///< built-in service ("http", "logger"), else empty
    nlohmann::json headers = nlohmann::json::object();
    nlohmann::json variables = nlohmann::json::object();  ///< job / call input variables
    // Calls.
    std::string called_process;
    bool interrupting = true;  ///< boundary / event-subprocess waits
};

enum class HistoryEvent : std::uint8_t { kStarted, kCompleted, kCancelled, kTerminated, kFailed };

/// One history row, compact: resolve ids/names with CompiledProcess::element_id(), element_name(),
/// element_type().
struct HistoryEntry {
    bpmn::ElementIndex element = bpmn::kNoElement;
    HistoryEvent event = HistoryEvent::kStarted;
    TimePoint at{};
};

/// A thrown signal. It has already been delivered to this instance's own signal waits; the app
/// broadcasts it to every other instance (and to signal start events).
struct SignalThrown {
    std::string name;
    nlohmann::json variables = nlohmann::json::object();
};

struct MessageSent {
    std::string name;
    std::string correlation_key;
    nlohmann::json variables = nlohmann::json::object();
};

/// An uncaught BPMN error that ended the instance (for a call activity's parent: FailCall).
struct UncaughtError {
    std::string code;
    std::string message;
};

/// What one execute() call did. Waits opened and closed within the same call appear in neither.
struct Effects {
    std::vector<WaitOpened> waits_opened;
    std::vector<WaitId> waits_closed;
    std::vector<HistoryEntry> history;
    std::vector<SignalThrown> signals;
    std::vector<MessageSent> messages;
    std::vector<Incident> incidents_opened;
    std::vector<IncidentId> incidents_resolved;
    std::optional<UncaughtError> uncaught_error;
    InstanceStatus status = InstanceStatus::kRunning;
    std::uint64_t tokens_processed = 0;
    bool variables_changed = false;
};

[[nodiscard]] std::string_view to_string(HistoryEvent event);
[[nodiscard]] std::string_view to_string(WaitKind kind);
[[nodiscard]] std::string_view to_string(InstanceStatus status);

}  // namespace pythmata::engine
