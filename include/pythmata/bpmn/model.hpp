#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pythmata::bpmn {

/// Dense indices into Process::elements and Process::flows. The engine works on indices only:
/// no string lookups on the hot path.
using ElementIndex = std::uint32_t;
using FlowIndex = std::uint32_t;
inline constexpr ElementIndex kNoElement = 0xFFFFFFFFu;
inline constexpr FlowIndex kNoFlow = 0xFFFFFFFFu;

enum class ElementType : std::uint8_t {
    kStartEvent,
    kEndEvent,
    kIntermediateCatchEvent,
    kIntermediateThrowEvent,
    kBoundaryEvent,
    kTask,  ///< bpmn:task (plain), runs straight through
    kUserTask,
    kServiceTask,
    kScriptTask,
    kSendTask,
    kReceiveTask,
    kManualTask,
    kBusinessRuleTask,
    kExclusiveGateway,
    kInclusiveGateway,
    kParallelGateway,
    kEventBasedGateway,
    kSubProcess,  ///< embedded subprocess; triggered_by_event marks an event subprocess
    kTransaction,
    kCallActivity,
};

/// The event definition an event carries (at most one is supported per event; a second one is a
/// validation error, since multiple/parallel-multiple events are not supported).
enum class EventKind : std::uint8_t {
    kNone,
    kMessage,
    kTimer,
    kSignal,
    kError,
    kEscalation,
    kTerminate,
    kLink,
    kCompensation,
    kConditional,
    kCancel,
};

enum class TimerKind : std::uint8_t { kNone, kDuration, kDate, kCycle };

struct EventDefinition {
    EventKind kind = EventKind::kNone;
    /// Message/signal/error/escalation: the referenced name (bpmn:message@name etc., resolved from
    /// messageRef/signalRef/errorRef/escalationRef; the ref id itself when the target has no
    /// name). For an error, the errorCode; empty on a catch event = catch all.
    std::string ref_name;
    std::string ref_id;  ///< the raw *Ref attribute
    TimerKind timer_kind = TimerKind::kNone;
    std::string timer_expression;  ///< timeDuration / timeDate / timeCycle text, may be ${...}
    std::string condition;         ///< conditional events: conditionExpression text
    std::string link_name;         ///< link events: linkEventDefinition@name
    std::string activity_ref;      ///< compensation: activityRef (element id), empty = whole scope
    bool wait_for_completion = true;
    /// Message catch: the correlation key expression, from pythmata:correlationKey or
    /// zeebe:subscription@correlationKey (a leading '=' of FEEL is stripped).
    std::string correlation_key;
    /// Error/escalation catch events: camunda:errorCodeVariable / escalationCodeVariable, the
    /// variable that receives the caught code (empty = none).
    std::string code_variable;
    /// Error catch events: camunda:errorMessageVariable (empty = none).
    std::string message_variable;
};

struct MultiInstance {
    bool sequential = false;
    std::string loop_cardinality;  ///< expression or integer literal
    std::string collection;  ///< camunda:collection / zeebe inputCollection / loopDataInputRef
    std::string element_variable;  ///< camunda:elementVariable / zeebe inputElement / inputDataItem
    std::string completion_condition;
    std::string output_collection;  ///< zeebe outputCollection / loopDataOutputRef
    std::string output_element;     ///< zeebe outputElement / outputDataItem
};

struct StandardLoop {
    std::string condition;  ///< loopCondition; loop while true
    bool test_before = false;
    std::optional<std::int64_t> maximum;  ///< loopMaximum
};

/// One input or output mapping: evaluate `source` (expression) and assign it to `target`.
/// The parser normalises every dialect to an expression: Zeebe's "=expr" loses its '=';
/// a Camunda parameter's constant text becomes a quoted string literal ('AmountTooBig'), an
/// empty one None, and "${...}" stays as written; camunda:in/out source is a variable name.
struct IoMapping {
    std::string source;
    std::string target;
};

struct Element {
    std::string id;
    std::string name;
    ElementType type = ElementType::kTask;
    std::string type_name;  ///< the XML local name, e.g. "userTask", for messages and history
    /// The enclosing subprocess / event subprocess / transaction, or kNoElement at process level.
    ElementIndex parent = kNoElement;
    std::vector<FlowIndex> incoming;
    std::vector<FlowIndex> outgoing;
    FlowIndex default_flow = kNoFlow;  ///< gateways and activities with a default flow

    // Events
    EventDefinition event;     ///< kind kNone for none events and for non-events
    bool interrupting = true;  ///< start events of event subprocesses; boundary cancelActivity
    ElementIndex attached_to = kNoElement;      ///< boundary events
    std::vector<ElementIndex> boundary_events;  ///< on activities: the boundary events attached

    // Containers (subprocess, event subprocess, transaction)
    bool triggered_by_event = false;               ///< an event subprocess
    std::vector<ElementIndex> children;            ///< direct children, in document order
    std::vector<ElementIndex> start_events;        ///< direct-child start events (none/typed)
    std::vector<ElementIndex> event_subprocesses;  ///< direct-child event subprocesses

    // Tasks
    std::string script;           ///< scriptTask/script, or pythmata:taskConfig/pythmata:script
    std::string script_format;    ///< lower-cased scriptFormat ("lua", "python", ...)
    std::string result_variable;  ///< camunda:resultVariable / pythmata result variable
    std::string job_type;         ///< external job type (API.md: zeebe type, camunda:topic, ...)
    /// zeebe:taskDefinition@retries (an integer or expression); empty = the engine default.
    std::string job_retries;
    std::string service_name;  ///< built-in service: pythmata:serviceTaskConfig@taskName
    std::map<std::string, std::string> properties;  ///< serviceTaskConfig properties, task headers
    std::string message_ref_name;                   ///< receive/send tasks: message name
    /// Receive tasks: the correlation key expression (pythmata:correlationKey, or the message's
    /// zeebe:subscription@correlationKey without its leading '='). Events keep theirs in `event`.
    std::string correlation_key;
    std::string assignee;           ///< user tasks: camunda:assignee / zeebe assignee
    std::string candidate_groups;   ///< comma-separated
    std::string due_date;           ///< expression
    std::string called_element;     ///< call activities: calledElement / zeebe processId
    std::vector<IoMapping> inputs;  ///< camunda:inputOutput / zeebe:ioMapping inputs
    std::vector<IoMapping> outputs;
    /// Call activities: whether every caller variable is passed into the called instance and
    /// every child variable back out, besides `inputs`/`outputs`. Decided by the parser: true
    /// when the model names no camunda:in/out mapping (SpiffWorkflow and Zeebe semantics), or
    /// says camunda:in/out variables="all"; false when it names specific camunda:in/out
    /// mappings (Camunda 7 semantics) or zeebe:calledElement propagateAll*Variables="false".
    bool pass_all_variables_in = false;
    bool pass_all_variables_out = false;
    bool is_for_compensation = false;
    ElementIndex compensation_handler = kNoElement;  ///< via compensation boundary association
    std::optional<MultiInstance> multi_instance;
    std::optional<StandardLoop> standard_loop;
};

struct SequenceFlow {
    std::string id;
    std::string name;
    ElementIndex source = kNoElement;
    ElementIndex target = kNoElement;
    std::string condition;           ///< conditionExpression text, empty = unconditional
    std::string condition_language;  ///< conditionExpression@language, lower-cased, may be empty
};

/// One process, immutable after parsing. Elements are in document order; children of
/// subprocesses follow their parent's entry.
struct Process {
    std::string id;
    std::string name;
    bool executable = false;
    std::vector<Element> elements;
    std::vector<SequenceFlow> flows;
    std::vector<ElementIndex> start_events;                       ///< top-level start events
    std::vector<ElementIndex> event_subprocesses;                 ///< top-level event subprocesses
    std::unordered_map<std::string, ElementIndex> element_index;  ///< by id
    std::unordered_map<std::string, FlowIndex> flow_index;        ///< by id

    [[nodiscard]] const Element* find(const std::string& element_id) const {
        auto it = element_index.find(element_id);
        return it == element_index.end() ? nullptr : &elements[it->second];
    }
};

/// A parsed document: every process it holds (executable or not) plus the root-level names.
struct Definitions {
    std::string id;
    std::string target_namespace;
    std::vector<Process> processes;
    std::map<std::string, std::string> messages;     ///< message id -> name
    std::map<std::string, std::string> signals;      ///< signal id -> name
    std::map<std::string, std::string> errors;       ///< error id -> errorCode (or name)
    std::map<std::string, std::string> escalations;  ///< escalation id -> escalationCode

    /// The process with this id, or nullptr.
    [[nodiscard]] const Process* find_process(std::string_view process_id) const {
        for (const Process& p : processes) {
            if (p.id == process_id) {
                return &p;
            }
        }
        return nullptr;
    }
};

}  // namespace pythmata::bpmn
