#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pythmata/bpmn/model.hpp"
#include "pythmata/common/result.hpp"
#include "pythmata/common/time.hpp"

namespace pythmata::engine {

/// Identifiers inside one instance. 0 means "none"; the process scope has id 1.
using TokenId = std::uint32_t;
using ScopeId = std::uint32_t;
using WaitId = std::uint64_t;
using IncidentId = std::uint64_t;
inline constexpr ScopeId kRootScope = 1;

/// Instance status as the API reports it (API.md). A terminate end event ends the instance
/// COMPLETED (with a TERMINATED history entry). ERROR means an uncaught BPMN error ended it;
/// a RUNNING instance with open incidents is reported ERROR too (see api_status()).
enum class InstanceStatus : std::uint8_t { kRunning, kCompleted, kCancelled, kError };

/// What a token is doing at its element.
enum class TokenPhase : std::uint8_t {
    kArrive,        ///< about to execute its element
    kWaiting,       ///< waits for an event (a wait, a child scope, a multi-instance body)
    kComplete,      ///< its element is done; leaves through the outgoing flows
    kJoin,          ///< parked at a joining gateway
    kIncident,      ///< stopped by an incident
    kCompensating,  ///< a compensation throw waiting for its handlers
};

enum class TokenFlag : std::uint8_t {
    kMiInstance = 1,    ///< one instance of a multi-instance activity (not its body)
    kCompensation = 2,  ///< runs a compensation handler; ends at the handler
    kLoopStarted = 4,   ///< standard loop: the test-before check already ran
};

struct Token {
    TokenId id = 0;
    bpmn::ElementIndex element = bpmn::kNoElement;
    ScopeId scope = kRootScope;
    TokenPhase phase = TokenPhase::kArrive;
    std::uint8_t flags = 0;
    bpmn::FlowIndex arrived_via = bpmn::kNoFlow;
    ScopeId child_scope = 0;        ///< subprocess / multi-instance body scope it waits on
    std::int64_t loop_counter = 0;  ///< standard loop iterations done
    TokenId waiter = 0;             ///< compensation handler: the throw token to resume
    std::uint32_t pending = 0;      ///< compensation throw: handlers still running

    [[nodiscard]] bool has(TokenFlag f) const {
        return (flags & static_cast<std::uint8_t>(f)) != 0;
    }
};

enum class ScopeKind : std::uint8_t {
    kProcess,
    kSubProcess,       ///< embedded subprocess or transaction instance
    kMultiInstance,    ///< the body of a multi-instance activity
    kMiInstance,       ///< one instance of a multi-instance activity (local loop variables)
    kEventSubProcess,  ///< a running event subprocess
};

struct Scope {
    ScopeId id = 0;
    ScopeKind kind = ScopeKind::kProcess;
    bpmn::ElementIndex element = bpmn::kNoElement;  ///< container or MI activity
    ScopeId parent = 0;
    TokenId token = 0;      ///< the activity token that owns it (0: process, event sub)
    nlohmann::json locals;  ///< local variables (null when none)
    // Multi-instance body counters.
    std::int64_t mi_total = 0;
    std::int64_t mi_completed = 0;
    std::int64_t mi_active = 0;
    std::int64_t mi_next = 0;  ///< next instance index to start (sequential)
    nlohmann::json mi_items;   ///< the input collection (null for cardinality)
    nlohmann::json mi_output;  ///< the output collection being built (null when none)
};

enum class WaitKind : std::uint8_t {
    kUserTask,
    kMessage,
    kSignal,
    kTimer,
    kJob,
    kCall,
    kConditional
};

/// Why a wait exists: the token's own activity/catch event, a boundary event on it, a branch of
/// an event-based gateway, or an event subprocess start in a scope.
enum class WaitRole : std::uint8_t { kActivity, kBoundary, kEventGateway, kEventSubProcess };

struct Wait {
    WaitId id = 0;
    WaitKind kind = WaitKind::kUserTask;
    WaitRole role = WaitRole::kActivity;
    bpmn::ElementIndex element = bpmn::kNoElement;  ///< the element whose event this is
    TokenId token = 0;
    ScopeId scope = 0;
    TimePoint due_at{};           ///< timers
    std::int64_t fired = 0;       ///< timer cycles: firings so far
    std::string name;             ///< message / signal name
    std::string correlation_key;  ///< messages: evaluated key
};

struct Incident {
    IncidentId id = 0;
    bpmn::ElementIndex element = bpmn::kNoElement;
    TokenId token = 0;
    std::string kind;  ///< EXPRESSION, SCRIPT, JOB_FAILED, NO_OUTGOING_FLOW, LIMIT, CALL, ...
    std::string message;
    bool reopen_job = false;  ///< resolving re-opens the job wait instead of re-running the element
};

/// A compensation handler that became eligible when its activity completed.
struct CompensationRecord {
    bpmn::ElementIndex activity = bpmn::kNoElement;
    bpmn::ElementIndex handler = bpmn::kNoElement;
    ScopeId scope = 0;
};

/// Everything the engine needs to continue an instance. Plain data: copyable, and serialisable
/// to a compact binary form (MessagePack of a JSON tree) and back.
struct InstanceState {
    InstanceStatus status = InstanceStatus::kRunning;
    nlohmann::json variables = nlohmann::json::object();  ///< process-level variables
    std::vector<Token> tokens;
    std::vector<Scope> scopes;
    std::vector<Wait> waits;
    std::vector<Incident> incidents;
    std::vector<CompensationRecord> compensations;
    std::uint32_t next_token = 1;
    std::uint32_t next_scope = 2;
    WaitId next_wait = 1;
    IncidentId next_incident = 1;
    std::uint64_t steps = 0;       ///< elements executed over the instance's life
    std::uint32_t call_depth = 0;  ///< 0 for a top-level instance; callers' depth + 1
    bool terminated = false;       ///< ended by a terminate end event

    /// Compact binary form.
    [[nodiscard]] std::string serialize() const;
    /// Inverse of serialize(); an error message when the bytes are not a valid state.
    [[nodiscard]] static Result<InstanceState, std::string> deserialize(std::string_view bytes);

    /// True once the instance has ended (completed, cancelled or failed).
    [[nodiscard]] bool ended() const { return status != InstanceStatus::kRunning; }
    /// "RUNNING", "COMPLETED", "CANCELLED" or "ERROR" (running with open incidents included).
    [[nodiscard]] std::string_view api_status() const;
    /// Ids of the elements where tokens wait now (for active_elements).
    [[nodiscard]] std::vector<bpmn::ElementIndex> active_elements() const;
};

}  // namespace pythmata::engine
