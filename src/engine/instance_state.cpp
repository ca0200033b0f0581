#include "pythmata/engine/instance_state.hpp"

#include <initializer_list>
#include <iterator>
#include <string>
#include <vector>

#include "pythmata/engine/effects.hpp"

namespace pythmata::engine {

using Json = nlohmann::json;

namespace {

// The state is written as nested JSON arrays (positional, no key names) and encoded as
// MessagePack: compact, and the layout is versioned by the leading number.
constexpr int kFormatVersion = 1;

Json token_to_json(const Token& t) {
    return Json::array({t.id, t.element, t.scope, static_cast<int>(t.phase), t.flags, t.arrived_via,
                        t.child_scope, t.loop_counter, t.waiter, t.pending});
}

Token token_from_json(const Json& j) {
    Token t;
    t.id = j.at(0).get<TokenId>();
    t.element = j.at(1).get<bpmn::ElementIndex>();
    t.scope = j.at(2).get<ScopeId>();
    t.phase = static_cast<TokenPhase>(j.at(3).get<int>());
    t.flags = j.at(4).get<std::uint8_t>();
    t.arrived_via = j.at(5).get<bpmn::FlowIndex>();
    t.child_scope = j.at(6).get<ScopeId>();
    t.loop_counter = j.at(7).get<std::int64_t>();
    t.waiter = j.at(8).get<TokenId>();
    t.pending = j.at(9).get<std::uint32_t>();
    return t;
}

Json scope_to_json(const Scope& s) {
    return Json::array({s.id, static_cast<int>(s.kind), s.element, s.parent, s.token, s.locals,
                        s.mi_total, s.mi_completed, s.mi_active, s.mi_next, s.mi_items,
                        s.mi_output});
}

Scope scope_from_json(const Json& j) {
    Scope s;
    s.id = j.at(0).get<ScopeId>();
    s.kind = static_cast<ScopeKind>(j.at(1).get<int>());
    s.element = j.at(2).get<bpmn::ElementIndex>();
    s.parent = j.at(3).get<ScopeId>();
    s.token = j.at(4).get<TokenId>();
    s.locals = j.at(5);
    s.mi_total = j.at(6).get<std::int64_t>();
    s.mi_completed = j.at(7).get<std::int64_t>();
    s.mi_active = j.at(8).get<std::int64_t>();
    s.mi_next = j.at(9).get<std::int64_t>();
    s.mi_items = j.at(10);
    s.mi_output = j.at(11);
    return s;
}

Json wait_to_json(const Wait& w) {
    return Json::array({w.id, static_cast<int>(w.kind), static_cast<int>(w.role), w.element,
                        w.token, w.scope, to_epoch_ms(w.due_at), w.fired, w.name,
                        w.correlation_key});
}

Wait wait_from_json(const Json& j) {
    Wait w;
    w.id = j.at(0).get<WaitId>();
    w.kind = static_cast<WaitKind>(j.at(1).get<int>());
    w.role = static_cast<WaitRole>(j.at(2).get<int>());
    w.element = j.at(3).get<bpmn::ElementIndex>();
    w.token = j.at(4).get<TokenId>();
    w.scope = j.at(5).get<ScopeId>();
    w.due_at = from_epoch_ms(j.at(6).get<std::int64_t>());
    w.fired = j.at(7).get<std::int64_t>();
    w.name = j.at(8).get<std::string>();
    w.correlation_key = j.at(9).get<std::string>();
    return w;
}

Json incident_to_json(const Incident& i) {
    return Json::array({i.id, i.element, i.token, i.kind, i.message, i.reopen_job});
}

Incident incident_from_json(const Json& j) {
    Incident i;
    i.id = j.at(0).get<IncidentId>();
    i.element = j.at(1).get<bpmn::ElementIndex>();
    i.token = j.at(2).get<TokenId>();
    i.kind = j.at(3).get<std::string>();
    i.message = j.at(4).get<std::string>();
    i.reopen_job = j.at(5).get<bool>();
    return i;
}

}  // namespace

std::string InstanceState::serialize() const {
    Json toks = Json::array();
    for (const auto& t : tokens) {
        toks.push_back(token_to_json(t));
    }
    Json scs = Json::array();
    for (const auto& s : scopes) {
        scs.push_back(scope_to_json(s));
    }
    Json ws = Json::array();
    for (const auto& w : waits) {
        ws.push_back(wait_to_json(w));
    }
    Json incs = Json::array();
    for (const auto& i : incidents) {
        incs.push_back(incident_to_json(i));
    }
    Json comps = Json::array();
    for (const auto& c : compensations) {
        comps.push_back(Json::array({c.activity, c.handler, c.scope}));
    }
    // A msgpack array is its header and its elements one after the other: written element by
    // element, the variables are encoded where they are instead of copied into a root array.
    const Json head[] = {kFormatVersion, static_cast<int>(status)};
    const Json tail[] = {next_token, next_scope, next_wait, next_incident,
                         steps,      call_depth, terminated};
    constexpr std::size_t kElements = std::size(head) + 6 + std::size(tail);
    static_assert(kElements == 15, "the format's root array has 15 elements");
    std::string out;
    out.reserve(128);
    out.push_back(static_cast<char>(0x90 | kElements));  // fixarray
    auto put = [&out](const Json& element) {
        Json::to_msgpack(element, nlohmann::detail::output_adapter<char>(out));
    };
    for (const Json& element : head) {
        put(element);
    }
    for (const Json* element :
         std::initializer_list<const Json*>{&variables, &toks, &scs, &ws, &incs, &comps}) {
        put(*element);
    }
    for (const Json& element : tail) {
        put(element);
    }
    return out;
}

Result<InstanceState, std::string> InstanceState::deserialize(std::string_view bytes) {
    Json root = Json::from_msgpack(bytes.begin(), bytes.end(), true, false);
    if (root.is_discarded() || !root.is_array() || root.size() != 15) {
        return std::string("not a serialized instance state");
    }
    try {
        if (root.at(0).get<int>() != kFormatVersion) {
            return "unsupported instance state format " + root.at(0).dump();
        }
        InstanceState st;
        st.status = static_cast<InstanceStatus>(root.at(1).get<int>());
        st.variables = root.at(2);
        for (const auto& t : root.at(3)) {
            st.tokens.push_back(token_from_json(t));
        }
        for (const auto& s : root.at(4)) {
            st.scopes.push_back(scope_from_json(s));
        }
        for (const auto& w : root.at(5)) {
            st.waits.push_back(wait_from_json(w));
        }
        for (const auto& i : root.at(6)) {
            st.incidents.push_back(incident_from_json(i));
        }
        for (const auto& c : root.at(7)) {
            st.compensations.push_back({c.at(0).get<bpmn::ElementIndex>(),
                                        c.at(1).get<bpmn::ElementIndex>(), c.at(2).get<ScopeId>()});
        }
        st.next_token = root.at(8).get<std::uint32_t>();
        st.next_scope = root.at(9).get<std::uint32_t>();
        st.next_wait = root.at(10).get<WaitId>();
        st.next_incident = root.at(11).get<IncidentId>();
        st.steps = root.at(12).get<std::uint64_t>();
        st.call_depth = root.at(13).get<std::uint32_t>();
        st.terminated = root.at(14).get<bool>();
        return st;
    } catch (const Json::exception& e) {
        // nlohmann reports type mismatches by exception; turn them into a value here.
        return std::string("malformed instance state: ") + e.what();
    }
}

std::string_view InstanceState::api_status() const {
    if (status == InstanceStatus::kRunning && !incidents.empty()) {
        return "ERROR";
    }
    return to_string(status);
}

std::vector<bpmn::ElementIndex> InstanceState::active_elements() const {
    std::vector<bpmn::ElementIndex> out;
    for (const auto& t : tokens) {
        if (t.phase == TokenPhase::kWaiting || t.phase == TokenPhase::kJoin ||
            t.phase == TokenPhase::kIncident || t.phase == TokenPhase::kCompensating) {
            out.push_back(t.element);
        }
    }
    return out;
}

std::string_view to_string(HistoryEvent event) {
    switch (event) {
        case HistoryEvent::kStarted:
            return "STARTED";
        case HistoryEvent::kCompleted:
            return "COMPLETED";
        case HistoryEvent::kCancelled:
            return "CANCELLED";
        case HistoryEvent::kTerminated:
            return "TERMINATED";
        case HistoryEvent::kFailed:
            return "FAILED";
    }
    return "UNKNOWN";
}

std::string_view to_string(WaitKind kind) {
    switch (kind) {
        case WaitKind::kUserTask:
            return "USER_TASK";
        case WaitKind::kMessage:
            return "MESSAGE";
        case WaitKind::kSignal:
            return "SIGNAL";
        case WaitKind::kTimer:
            return "TIMER";
        case WaitKind::kJob:
            return "JOB";
        case WaitKind::kCall:
            return "CALL";
        case WaitKind::kConditional:
            return "CONDITIONAL";
    }
    return "UNKNOWN";
}

std::string_view to_string(InstanceStatus status) {
    switch (status) {
        case InstanceStatus::kRunning:
            return "RUNNING";
        case InstanceStatus::kCompleted:
            return "COMPLETED";
        case InstanceStatus::kCancelled:
            return "CANCELLED";
        case InstanceStatus::kError:
            return "ERROR";
    }
    return "UNKNOWN";
}

}  // namespace pythmata::engine
