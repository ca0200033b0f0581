#pragma once

#include <optional>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "pythmata/engine/instance_state.hpp"

namespace pythmata::engine {

/// Starts a fresh instance (the state must be default-constructed). `start_event_id` picks a
/// message/signal/timer start event; empty = the none start event.
struct Start {
    nlohmann::json variables = nlohmann::json::object();
    std::string start_event_id;
    std::uint32_t call_depth = 0;  ///< depth of a child instance started by a call activity
};
/// Completes the user task of wait `wait_id` with `variables` merged into the instance.
struct CompleteTask {
    WaitId wait_id = 0;
    nlohmann::json variables = nlohmann::json::object();
};
/// Delivers a correlated message to wait `wait_id`.
struct CorrelateMessage {
    WaitId wait_id = 0;
    nlohmann::json variables = nlohmann::json::object();
};
/// Delivers a broadcast signal to wait `wait_id`.
struct Signal {
    WaitId wait_id = 0;
    nlohmann::json variables = nlohmann::json::object();
};
/// Fires timer `wait_id` (the app calls this once the due time is reached).
struct FireTimer {
    WaitId wait_id = 0;
};
/// An external job (or built-in service) finished.
struct CompleteJob {
    WaitId wait_id = 0;
    nlohmann::json variables = nlohmann::json::object();
};
/// A worker threw a BPMN error at the job's task.
struct ThrowJobError {
    WaitId wait_id = 0;
    std::string error_code;
    std::string message;
    nlohmann::json variables = nlohmann::json::object();
};
/// A job ran out of retries: an incident opens at the task; resolving it re-opens the job.
struct FailJob {
    WaitId wait_id = 0;
    std::string message;
};
/// The child instance of a call activity completed with its final variables.
struct CompleteCall {
    WaitId wait_id = 0;
    nlohmann::json variables = nlohmann::json::object();
};
/// The child instance of a call activity ended with an uncaught BPMN error (`error_code`), or
/// could not start (empty code: an incident opens at the call activity).
struct FailCall {
    WaitId wait_id = 0;
    std::string error_code;
    std::string message;
};
/// Cancels the instance: every token, wait and scope is removed; status CANCELLED.
struct Cancel {};
/// Resolves incident `incident_id`: the failed step runs again.
struct ResolveIncident {
    IncidentId incident_id = 0;
};
/// Merges process variables, then re-evaluates conditional events.
struct SetVariables {
    nlohmann::json variables = nlohmann::json::object();
};

using Command = std::variant<Start, CompleteTask, CorrelateMessage, Signal, FireTimer, CompleteJob,
                             ThrowJobError, FailJob, CompleteCall, FailCall, Cancel,
                             ResolveIncident, SetVariables>;

}  // namespace pythmata::engine
