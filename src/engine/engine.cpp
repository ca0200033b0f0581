#include "pythmata/engine/engine.hpp"

#include <algorithm>
#include <charconv>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "compiled_impl.hpp"
#include "variables.hpp"

namespace pythmata::engine {

using bpmn::ElementIndex;
using bpmn::ElementType;
using bpmn::EventKind;
using bpmn::FlowIndex;
using bpmn::kNoElement;
using bpmn::kNoFlow;
using Json = nlohmann::json;

namespace {

constexpr std::uint8_t flag(TokenFlag f) {
    return static_cast<std::uint8_t>(f);
}

std::string value_to_text(const Json& v) {
    if (v.is_string()) {
        return v.get<std::string>();
    }
    if (v.is_null()) {
        return {};
    }
    return v.dump();
}

std::vector<std::string> split_groups(const std::string& text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto comma = text.find(',', pos);
        auto part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        auto b = part.find_first_not_of(" \t");
        auto e = part.find_last_not_of(" \t");
        if (b != std::string::npos) {
            out.push_back(part.substr(b, e - b + 1));
        }
        if (comma == std::string::npos) {
            break;
        }
        pos = comma + 1;
    }
    return out;
}

/// Approximate size in bytes of a JSON value's text, without building the text.
std::size_t json_size(const Json& v) {
    switch (v.type()) {
        case Json::value_t::object: {
            std::size_t n = 2;
            for (auto it = v.begin(); it != v.end(); ++it) {
                n += it.key().size() + 4 + json_size(it.value());
            }
            return n;
        }
        case Json::value_t::array: {
            std::size_t n = 2;
            for (const auto& e : v) {
                n += json_size(e) + 1;
            }
            return n;
        }
        case Json::value_t::string:
            return v.get_ref<const std::string&>().size() + 2;
        case Json::value_t::number_integer:
        case Json::value_t::number_unsigned:
        case Json::value_t::number_float:
            return 8;
        default:
            return 5;
    }
}

/// An evaluation failure (distinct type, so Result<std::string, Failure> is unambiguous).
struct Failure {
    std::string message;
};

class Runner {
  public:
    Runner(const CompiledProcess& cp, InstanceState& st, Effects& fx, TimePoint now,
           const EngineLimits& lim)
        : cp_(cp), impl_(cp.impl()), p_(impl_.process), st_(st), fx_(fx), now_(now), lim_(lim) {}

    Result<void, EngineError> dispatch(const Command& command);

  private:
    // ---- lookups -------------------------------------------------------------------------
    Token* token(TokenId id) {
        for (auto& t : st_.tokens) {
            if (t.id == id) {
                return &t;
            }
        }
        return nullptr;
    }
    Scope* scope(ScopeId id) { return find_scope(st_, id); }
    Wait* wait(WaitId id) {
        for (auto& w : st_.waits) {
            if (w.id == id) {
                return &w;
            }
        }
        return nullptr;
    }
    const bpmn::Element& el(ElementIndex i) const { return p_.elements[i]; }
    const CompiledElement& ce(ElementIndex i) const { return impl_.elements[i]; }

    void history(ElementIndex e, HistoryEvent ev) {
        if (lim_.history) {
            fx_.history.push_back({e, ev, now_});
        }
    }

    expr::EvalContext ctx() const {
        expr::EvalContext c;
        c.now = now_;
        return c;
    }

    Result<Json, std::string> eval(const expr::Expression& e, ScopeId s) {
        Variables vars(st_, s, &fx_.variables_changed);
        auto r = e.evaluate(vars, ctx());
        if (!r) {
            return std::string(r.error().message);
        }
        return std::move(r).value();
    }

    Result<std::string, Failure> render(const Template& t, ScopeId s) {
        if (t.is_literal) {
            return t.literal;
        }
        std::string out;
        for (const auto& part : t.parts) {
            if (part.expression) {
                auto v = eval(*part.expression, s);
                if (!v) {
                    return Failure{v.error()};
                }
                out += value_to_text(v.value());
            } else {
                out += part.literal;
            }
        }
        return out;
    }

    // ---- token and scope bookkeeping -------------------------------------------------------
    Result<TokenId, EngineError> new_token(ElementIndex e, ScopeId s, std::uint8_t flags = 0) {
        if (st_.tokens.size() >= lim_.max_tokens) {
            return EngineError{
                ErrorKind::kTooLarge, "TOKEN_LIMIT",
                "the instance would exceed " + std::to_string(lim_.max_tokens) + " tokens",
                el(e).id};
        }
        Token t;
        t.id = st_.next_token++;
        t.element = e;
        t.scope = s;
        t.flags = flags;
        st_.tokens.push_back(t);
        queue_.push_back(t.id);
        return t.id;
    }

    ScopeId new_scope(ScopeKind kind, ElementIndex e, ScopeId parent, TokenId owner) {
        Scope s;
        s.id = st_.next_scope++;
        s.kind = kind;
        s.element = e;
        s.parent = parent;
        s.token = owner;
        st_.scopes.push_back(std::move(s));
        return st_.scopes.back().id;
    }

    void erase_token(TokenId id) {
        auto it = std::find_if(st_.tokens.begin(), st_.tokens.end(),
                               [id](const Token& t) { return t.id == id; });
        if (it != st_.tokens.end()) {
            st_.tokens.erase(it);
        }
    }

    void erase_scope(ScopeId id) {
        auto it = std::find_if(st_.scopes.begin(), st_.scopes.end(),
                               [id](const Scope& s) { return s.id == id; });
        if (it != st_.scopes.end()) {
            st_.scopes.erase(it);
        }
    }

    void close_wait(WaitId id) {
        auto it = std::find_if(st_.waits.begin(), st_.waits.end(),
                               [id](const Wait& w) { return w.id == id; });
        if (it != st_.waits.end()) {
            st_.waits.erase(it);
            fx_.waits_closed.push_back(id);
        }
    }

    template <typename Pred>
    void close_waits_if(Pred pred) {
        for (std::size_t i = 0; i < st_.waits.size();) {
            if (pred(st_.waits[i])) {
                fx_.waits_closed.push_back(st_.waits[i].id);
                st_.waits.erase(st_.waits.begin() + static_cast<std::ptrdiff_t>(i));
            } else {
                ++i;
            }
        }
    }

    /// Removes a token and everything below it (child scopes, waits), recording `ev`.
    void cancel_token(TokenId id, HistoryEvent ev) {
        Token* t = token(id);
        if (t == nullptr) {
            return;
        }
        ScopeId child = t->child_scope;
        ElementIndex e = t->element;
        if (child != 0) {
            cancel_scope(child, ev);
        }
        close_waits_if([id](const Wait& w) { return w.token == id; });
        std::erase_if(st_.incidents, [&](const Incident& inc) {
            if (inc.token == id) {
                fx_.incidents_resolved.push_back(inc.id);
                return true;
            }
            return false;
        });
        history(e, ev);
        erase_token(id);
    }

    /// Removes a scope, its tokens, child scopes and waits.
    void cancel_scope(ScopeId sid, HistoryEvent ev) {
        clear_scope(sid, ev);  // its tokens and child scopes (token ids start at 1: none kept)
        close_waits_if([sid](const Wait& w) { return w.scope == sid && w.token == 0; });
        erase_scope(sid);
    }

    /// Cancels everything inside scope `sid` but keeps the scope (interrupting events,
    /// terminate). `keep` survives.
    void clear_scope(ScopeId sid, HistoryEvent ev, TokenId keep = 0) {
        std::vector<TokenId> toks;
        for (const auto& t : st_.tokens) {
            if (t.scope == sid && t.id != keep) {
                toks.push_back(t.id);
            }
        }
        for (auto id : toks) {
            cancel_token(id, ev);
        }
        std::vector<ScopeId> kids;
        for (const auto& s : st_.scopes) {
            if (s.parent == sid) {
                kids.push_back(s.id);
            }
        }
        for (auto k : kids) {
            Scope* ks = scope(k);
            if (ks != nullptr && ks->kind == ScopeKind::kEventSubProcess) {
                history(ks->element, ev);
            }
            cancel_scope(k, ev);
        }
    }

    Result<void, EngineError> open_incident(TokenId id, std::string kind, std::string message,
                                            bool reopen = false) {
        Token* t = token(id);
        Incident inc;
        inc.id = st_.next_incident++;
        inc.element = t->element;
        inc.token = id;
        inc.kind = std::move(kind);
        inc.message = std::move(message);
        inc.reopen_job = reopen;
        t->phase = TokenPhase::kIncident;
        history(t->element, HistoryEvent::kFailed);
        fx_.incidents_opened.push_back(inc);
        st_.incidents.push_back(std::move(inc));
        return {};
    }

    // ---- variables -------------------------------------------------------------------------
    Result<void, EngineError> merge(const Json& vars, ScopeId s) {
        if (vars.is_null()) {
            return {};
        }
        if (!vars.is_object()) {
            return EngineError{ErrorKind::kInvalidArgument,
                               "INVALID_ARGUMENT",
                               "variables must be a JSON object",
                               {}};
        }
        Variables sink(st_, s, &fx_.variables_changed);
        for (auto it = vars.begin(); it != vars.end(); ++it) {
            if (json_size(it.value()) > lim_.max_variable_size) {
                return EngineError{ErrorKind::kTooLarge,
                                   "VARIABLE_TOO_LARGE",
                                   "variable '" + it.key() + "' is larger than " +
                                       std::to_string(lim_.max_variable_size) + " bytes",
                                   {}};
            }
            sink.set(it.key(), it.value());
        }
        conditions_dirty_ = true;
        return {};
    }

    /// Evaluates output mappings of element `e` reading `source`, writing into scope `s`.
    Result<void, std::string> apply_mappings(const std::vector<Mapping>& maps,
                                             const expr::VariableSource& source, ScopeId s) {
        Variables sink(st_, s, &fx_.variables_changed);
        for (const auto& m : maps) {
            auto v = m.source.evaluate(source, ctx());
            if (!v) {
                return "mapping to '" + m.target + "': " + v.error().message;
            }
            sink.set(m.target, std::move(v).value());
        }
        return {};
    }

    // ---- waits -----------------------------------------------------------------------------
    /// Opens a wait for `event_el` (the element whose event/activity it is). Returns the wait
    /// id, or an error text (expression failures) for an incident.
    Result<WaitId, std::string> open_wait(WaitKind kind, WaitRole role, ElementIndex event_el,
                                          TokenId tok, ScopeId s) {
        const auto& e = el(event_el);
        const auto& c = ce(event_el);
        Wait w;
        w.id = st_.next_wait++;
        w.kind = kind;
        w.role = role;
        w.element = event_el;
        w.token = tok;
        w.scope = s;
        WaitOpened o;
        o.id = w.id;
        o.kind = kind;
        o.element = event_el;
        o.element_id = e.id;
        auto name = render(c.name, s);
        if (!name) {
            return name.error().message;
        }
        o.name = std::move(name).value();
        o.interrupting = e.interrupting;
        switch (kind) {
            case WaitKind::kUserTask: {
                auto a = render(c.assignee, s);
                if (!a) {
                    return a.error().message;
                }
                o.assignee = std::move(a).value();
                auto g = render(c.candidate_groups, s);
                if (!g) {
                    return g.error().message;
                }
                o.candidate_groups = split_groups(g.value());
                auto d = render(c.due_date, s);
                if (!d) {
                    return d.error().message;
                }
                if (!d.value().empty()) {
                    if (auto at = parse_rfc3339(d.value())) {
                        o.due_at = *at;
                    } else if (auto spec =
                                   bpmn::TimerSpec::parse(bpmn::TimerKind::kDuration, d.value())) {
                        o.due_at = spec.value().first(now_);
                    }
                }
                break;
            }
            case WaitKind::kMessage: {
                w.name =
                    e.type == ElementType::kReceiveTask ? e.message_ref_name : e.event.ref_name;
                if (c.correlation_key) {
                    auto k = eval(*c.correlation_key, s);
                    if (!k) {
                        return "correlation key: " + k.error();
                    }
                    w.correlation_key = value_to_text(k.value());
                }
                o.message_name = w.name;
                o.correlation_key = w.correlation_key;
                break;
            }
            case WaitKind::kSignal:
                w.name = e.event.ref_name;
                o.signal_name = w.name;
                break;
            case WaitKind::kTimer: {
                auto spec = timer_spec(event_el, s);
                if (!spec) {
                    return spec.error();
                }
                auto due = spec.value().first(now_);
                if (!due) {
                    return std::string("timer value never fires");
                }
                w.due_at = *due;
                o.due_at = *due;
                auto reps = spec.value().repetitions();
                o.repeat = reps < 0 ? -1 : std::max<std::int64_t>(reps - 1, 0);
                break;
            }
            case WaitKind::kJob:
                o.job_type = e.job_type.empty() ? e.id : e.job_type;
                o.service_name = e.service_name;
                o.headers = c.headers;
                o.variables = visible_variables(st_, s);
                if (!c.inputs.empty()) {
                    Variables src(st_, s, nullptr);
                    for (const auto& m : c.inputs) {
                        auto v = m.source.evaluate(src, ctx());
                        if (!v) {
                            return "input mapping '" + m.target + "': " + v.error().message;
                        }
                        o.variables[m.target] = std::move(v).value();
                    }
                }
                break;
            case WaitKind::kCall: {
                auto called = render(c.called_element, s);
                if (!called) {
                    return called.error().message;
                }
                o.called_process = std::move(called).value();
                if (c.inputs.empty()) {
                    o.variables = visible_variables(st_, s);
                } else {
                    Variables src(st_, s, nullptr);
                    for (const auto& m : c.inputs) {
                        auto v = m.source.evaluate(src, ctx());
                        if (!v) {
                            return "input mapping '" + m.target + "': " + v.error().message;
                        }
                        o.variables[m.target] = std::move(v).value();
                    }
                }
                break;
            }
            case WaitKind::kConditional:
                conditions_dirty_ = true;
                break;
        }
        st_.waits.push_back(std::move(w));
        fx_.waits_opened.push_back(std::move(o));
        return st_.waits.back().id;
    }

    Result<bpmn::TimerSpec, std::string> timer_spec(ElementIndex e, ScopeId s) {
        const auto& c = ce(e);
        if (c.timer) {
            return *c.timer;
        }
        if (!c.timer_expression) {
            return std::string("timer has no value");
        }
        auto v = eval(*c.timer_expression, s);
        if (!v) {
            return "timer expression: " + v.error();
        }
        auto spec = bpmn::TimerSpec::parse(el(e).event.timer_kind, value_to_text(v.value()));
        if (!spec) {
            return "timer value '" + value_to_text(v.value()) + "': " + spec.error();
        }
        return std::move(spec).value();
    }

    static std::optional<WaitKind> event_wait_kind(EventKind k) {
        switch (k) {
            case EventKind::kMessage:
                return WaitKind::kMessage;
            case EventKind::kTimer:
                return WaitKind::kTimer;
            case EventKind::kSignal:
                return WaitKind::kSignal;
            case EventKind::kConditional:
                return WaitKind::kConditional;
            default:
                return std::nullopt;
        }
    }

    /// Opens the timer/message/signal/conditional boundary events of an activity token.
    Result<void, std::string> open_boundaries(TokenId id) {
        Token* t = token(id);
        ElementIndex e = t->element;
        ScopeId s = t->scope;
        // A multi-instance activity's boundary events belong to its body, not its instances.
        if (!ce(e).has_wait_boundaries || t->has(TokenFlag::kMiInstance)) {
            return {};
        }
        for (ElementIndex b : el(e).boundary_events) {
            if (auto k = event_wait_kind(el(b).event.kind)) {
                auto r = open_wait(*k, WaitRole::kBoundary, b, id, s);
                if (!r) {
                    return r.error();
                }
            }
        }
        return {};
    }

    /// Opens the event-subprocess start events of a scope (message/timer/signal/conditional).
    Result<void, std::string> open_event_subprocess_starts(ScopeId s,
                                                           const std::vector<ElementIndex>& esps) {
        for (ElementIndex esp : esps) {
            for (ElementIndex start : el(esp).start_events) {
                if (auto k = event_wait_kind(el(start).event.kind)) {
                    auto r = open_wait(*k, WaitRole::kEventSubProcess, start, 0, s);
                    if (!r) {
                        return r.error();
                    }
                }
            }
        }
        return {};
    }

    // ---- the loop --------------------------------------------------------------------------
    Result<void, EngineError> run();
    Result<void, EngineError> arrive(TokenId id);
    Result<void, EngineError> leave(TokenId id);
    Result<void, EngineError> take_flows(TokenId id, const std::vector<FlowIndex>& flows);
    Result<void, EngineError> select_and_take(TokenId id, bool exclusive, bool parallel);
    Result<void, EngineError> end_token(TokenId id);
    Result<void, EngineError> scope_done(ScopeId sid);
    Result<void, EngineError> enter_subprocess(TokenId id);
    Result<void, EngineError> start_multi_instance(TokenId id);
    Result<void, EngineError> start_mi_instance(ScopeId body, std::int64_t index);
    Result<void, EngineError> mi_instance_done(TokenId id);
    Result<void, EngineError> finish_mi_body(ScopeId body);
    Result<void, EngineError> parallel_join(TokenId id);
    Result<bool, EngineError> try_inclusive_join(TokenId id);
    Result<void, EngineError> throw_error(TokenId id, const std::string& code,
                                          const std::string& message, bool thrower_is_activity);
    Result<bool, EngineError> throw_escalation(TokenId id, const std::string& code);
    Result<void, EngineError> start_event_subprocess(ScopeId s, ElementIndex start,
                                                     bool interrupting);
    Result<void, EngineError> fire_boundary(TokenId owner, ElementIndex boundary,
                                            bool interrupting);
    Result<void, EngineError> trigger(WaitId wid, const Json& vars);
    Result<void, EngineError> compensate(TokenId id, ElementIndex activity_ref);
    Result<void, EngineError> compensation_done(TokenId waiter);
    Result<void, EngineError> finish_cancel(TokenId id);
    Result<void, EngineError> check_conditions();
    Result<void, EngineError> deliver_signal_locally(const std::string& name);
    Result<void, EngineError> end_instance(InstanceStatus status, HistoryEvent ev);
    Result<void, EngineError> activity_done(TokenId id, const Json* vars,
                                            const expr::VariableSource* outputs_source);
    Result<void, EngineError> run_activity_wait(TokenId id, WaitKind kind);

    Result<void, EngineError> incident_or(TokenId id, const char* kind,
                                          Result<void, std::string> r) {
        if (!r) {
            return open_incident(id, kind, r.error());
        }
        return {};
    }

    const CompiledProcess& cp_;
    const CompiledProcess::Impl& impl_;
    const bpmn::Process& p_;
    InstanceState& st_;
    Effects& fx_;
    TimePoint now_;
    const EngineLimits& lim_;
    std::deque<TokenId> queue_;
    std::uint64_t steps_ = 0;
    bool conditions_dirty_ = false;
};

#define PY_TRY(expr_)                     \
    do {                                  \
        auto r_ = (expr_);                \
        if (!r_) {                        \
            return std::move(r_).error(); \
        }                                 \
    } while (0)

Result<void, EngineError> Runner::run() {
    for (;;) {
        while (!queue_.empty()) {
            TokenId id = queue_.front();
            queue_.pop_front();
            Token* t = token(id);
            if (t == nullptr) {
                continue;
            }
            if (t->phase == TokenPhase::kArrive) {
                PY_TRY(arrive(id));
            } else if (t->phase == TokenPhase::kComplete) {
                PY_TRY(leave(id));
            }
            if (st_.ended()) {
                queue_.clear();
                return {};
            }
        }
        bool progressed = false;
        // Inclusive joins fire once no token can still reach them.
        std::vector<TokenId> joins;
        for (const auto& t : st_.tokens) {
            if (t.phase == TokenPhase::kJoin &&
                el(t.element).type == ElementType::kInclusiveGateway) {
                joins.push_back(t.id);
            }
        }
        for (auto id : joins) {
            if (token(id) == nullptr) {
                continue;
            }
            auto fired = try_inclusive_join(id);
            if (!fired) {
                return std::move(fired).error();
            }
            if (fired.value()) {
                progressed = true;
                break;
            }
        }
        if (!progressed && conditions_dirty_) {
            conditions_dirty_ = false;
            std::size_t before = queue_.size() + fx_.waits_closed.size();
            PY_TRY(check_conditions());
            progressed = queue_.size() + fx_.waits_closed.size() != before;
        }
        if (!progressed || st_.ended()) {
            return {};
        }
    }
}

Result<void, EngineError> Runner::deliver_signal_locally(const std::string& name) {
    std::vector<WaitId> ids;
    for (const auto& w : st_.waits) {
        if (w.kind == WaitKind::kSignal && w.name == name) {
            ids.push_back(w.id);
        }
    }
    for (auto wid : ids) {
        if (wait(wid) != nullptr && !st_.ended()) {
            PY_TRY(trigger(wid, Json()));
        }
    }
    return {};
}

Result<void, EngineError> Runner::check_conditions() {
    std::vector<WaitId> ids;
    for (const auto& w : st_.waits) {
        if (w.kind == WaitKind::kConditional) {
            ids.push_back(w.id);
        }
    }
    for (auto wid : ids) {
        Wait* w = wait(wid);
        if (w == nullptr) {
            continue;  // closed by an earlier trigger
        }
        ScopeId s = w->scope;
        if (w->token != 0) {
            if (Token* t = token(w->token)) {
                s = t->scope;
            }
        }
        const auto& cond = ce(w->element).condition;
        if (!cond) {
            continue;
        }
        auto v = eval(*cond, s);
        // An undefined variable in a condition means "not yet": the event keeps waiting.
        if (v && expr::truthy(v.value())) {
            PY_TRY(trigger(wid, Json()));
            if (st_.ended()) {
                return {};
            }
        }
    }
    return {};
}

Result<void, EngineError> Runner::arrive(TokenId id) {
    ++steps_;
    ++st_.steps;
    ++fx_.tokens_processed;
    Token* t = token(id);
    if (steps_ > lim_.max_steps_per_event || st_.steps > lim_.max_steps_per_instance) {
        return EngineError{
            ErrorKind::kConflict, "STEP_LIMIT",
            steps_ > lim_.max_steps_per_event
                ? "more than " + std::to_string(lim_.max_steps_per_event) +
                      " steps in one event (a cycle without a wait?)"
                : "the instance exceeded " + std::to_string(lim_.max_steps_per_instance) + " steps",
            el(t->element).id};
    }
    const ElementIndex e = t->element;
    const auto& E = el(e);
    const auto& C = ce(e);
    history(e, HistoryEvent::kStarted);

    if (C.is_activity && E.multi_instance && !t->has(TokenFlag::kMiInstance) &&
        !t->has(TokenFlag::kCompensation)) {
        return start_multi_instance(id);
    }
    if (C.is_activity && E.standard_loop && E.standard_loop->test_before &&
        !t->has(TokenFlag::kLoopStarted)) {
        t->flags |= flag(TokenFlag::kLoopStarted);
        if (C.loop_condition) {
            auto v = eval(*C.loop_condition, t->scope);
            if (!v) {
                return open_incident(id, "EXPRESSION", "loopCondition: " + v.error());
            }
            if (!expr::truthy(v.value())) {
                t->phase = TokenPhase::kComplete;
                t->loop_counter = -1;  // skip the loop check: the activity did not run
                return leave(id);
            }
        }
    }

    switch (E.type) {
        case ElementType::kStartEvent:
        case ElementType::kBoundaryEvent:
        case ElementType::kTask:
        case ElementType::kManualTask:
            return leave(id);
        case ElementType::kScriptTask: {
            if (C.script) {
                Variables vars(st_, t->scope, &fx_.variables_changed);
                Json result;
                auto r = C.script->run(vars, ctx(), &result);
                conditions_dirty_ = true;
                if (!r) {
                    return open_incident(id, "SCRIPT", r.error().message);
                }
                if (!E.result_variable.empty()) {
                    vars.set(E.result_variable, std::move(result));
                }
            }
            return leave(id);
        }
        case ElementType::kUserTask:
            return run_activity_wait(id, WaitKind::kUserTask);
        case ElementType::kServiceTask:
        case ElementType::kBusinessRuleTask:
            return run_activity_wait(id, WaitKind::kJob);
        case ElementType::kSendTask: {
            MessageSent m;
            m.name = E.message_ref_name;
            m.variables = visible_variables(st_, t->scope);
            if (C.correlation_key) {
                auto k = eval(*C.correlation_key, t->scope);
                if (!k) {
                    return open_incident(id, "EXPRESSION", "correlation key: " + k.error());
                }
                m.correlation_key = value_to_text(k.value());
            }
            fx_.messages.push_back(std::move(m));
            return leave(id);
        }
        case ElementType::kReceiveTask:
            if (E.message_ref_name.empty()) {
                return leave(id);
            }
            return run_activity_wait(id, WaitKind::kMessage);
        case ElementType::kCallActivity:
            if (st_.call_depth + 1 > lim_.max_call_depth) {
                return open_incident(
                    id, "CALL_DEPTH",
                    "call depth limit of " + std::to_string(lim_.max_call_depth) + " reached");
            }
            return run_activity_wait(id, WaitKind::kCall);
        case ElementType::kSubProcess:
        case ElementType::kTransaction:
            return enter_subprocess(id);
        case ElementType::kExclusiveGateway:
            return select_and_take(id, true, false);
        case ElementType::kParallelGateway:
            if (E.incoming.size() > 1) {
                return parallel_join(id);
            }
            return select_and_take(id, false, true);
        case ElementType::kInclusiveGateway:
            if (E.incoming.size() > 1) {
                t->phase = TokenPhase::kJoin;
                return {};  // fires from run() once nothing else can arrive
            }
            return select_and_take(id, false, false);
        case ElementType::kEventBasedGateway: {
            t->phase = TokenPhase::kWaiting;
            ScopeId s = t->scope;
            for (FlowIndex f : E.outgoing) {
                ElementIndex target = p_.flows[f].target;
                const auto& T = el(target);
                std::optional<WaitKind> k;
                if (T.type == ElementType::kReceiveTask) {
                    k = WaitKind::kMessage;
                } else {
                    k = event_wait_kind(T.event.kind);
                }
                if (!k) {
                    continue;
                }
                auto r = open_wait(*k, WaitRole::kEventGateway, target, id, s);
                if (!r) {
                    return open_incident(id, "EXPRESSION", r.error());
                }
            }
            return {};
        }
        case ElementType::kIntermediateCatchEvent: {
            if (E.event.kind == EventKind::kLink || E.event.kind == EventKind::kNone) {
                return leave(id);
            }
            auto k = event_wait_kind(E.event.kind);
            if (!k) {
                return leave(id);
            }
            t->phase = TokenPhase::kWaiting;
            auto r = open_wait(*k, WaitRole::kActivity, e, id, t->scope);
            if (!r) {
                return open_incident(id, "EXPRESSION", r.error());
            }
            return {};
        }
        case ElementType::kIntermediateThrowEvent:
        case ElementType::kEndEvent: {
            const bool is_end = E.type == ElementType::kEndEvent;
            switch (E.event.kind) {
                case EventKind::kMessage: {
                    MessageSent m;
                    m.name = E.event.ref_name;
                    m.variables = visible_variables(st_, t->scope);
                    if (C.correlation_key) {
                        auto k = eval(*C.correlation_key, t->scope);
                        if (!k) {
                            return open_incident(id, "EXPRESSION", "correlation key: " + k.error());
                        }
                        m.correlation_key = value_to_text(k.value());
                    }
                    fx_.messages.push_back(std::move(m));
                    break;
                }
                case EventKind::kSignal: {
                    fx_.signals.push_back({E.event.ref_name, visible_variables(st_, t->scope)});
                    // The instance's own catchers hear the signal at once, before the thrower
                    // moves on (the app broadcasts it to the other instances).
                    PY_TRY(deliver_signal_locally(E.event.ref_name));
                    if (token(id) == nullptr || st_.ended()) {
                        return {};
                    }
                    break;
                }
                case EventKind::kLink:
                    if (!is_end && C.link_target != kNoElement) {
                        history(e, HistoryEvent::kCompleted);
                        t->element = C.link_target;
                        t->arrived_via = kNoFlow;
                        t->phase = TokenPhase::kArrive;
                        queue_.push_back(id);
                        return {};
                    }
                    break;
                case EventKind::kError:
                    history(e, HistoryEvent::kCompleted);
                    return throw_error(id, E.event.ref_name, E.name, false);
                case EventKind::kEscalation: {
                    auto caught = throw_escalation(id, E.event.ref_name);
                    if (!caught) {
                        return std::move(caught).error();
                    }
                    if (token(id) == nullptr || st_.ended()) {
                        return {};  // an interrupting catcher cancelled the thrower
                    }
                    break;
                }
                case EventKind::kCompensation:
                    return compensate(id,
                                      E.event.activity_ref.empty()
                                          ? kNoElement
                                          : cp_.find(E.event.activity_ref).value_or(kNoElement));
                case EventKind::kCancel:
                    if (is_end) {
                        return compensate(id, kNoElement);  // finish_cancel() runs afterwards
                    }
                    break;
                case EventKind::kTerminate: {
                    history(e, HistoryEvent::kCompleted);
                    ScopeId s = t->scope;
                    erase_token(id);
                    if (s == kRootScope) {
                        st_.terminated = true;
                        history(e, HistoryEvent::kTerminated);
                        return end_instance(InstanceStatus::kCompleted, HistoryEvent::kTerminated);
                    }
                    clear_scope(s, HistoryEvent::kTerminated);
                    close_waits_if([s](const Wait& w) { return w.scope == s && w.token == 0; });
                    return scope_done(s);
                }
                default:
                    break;
            }
            if (is_end) {
                history(e, HistoryEvent::kCompleted);
                return end_token(id);
            }
            return leave(id);
        }
    }
    return leave(id);
}

Result<void, EngineError> Runner::run_activity_wait(TokenId id, WaitKind kind) {
    Token* t = token(id);
    t->phase = TokenPhase::kWaiting;
    auto r = open_wait(kind, WaitRole::kActivity, t->element, id, t->scope);
    if (!r) {
        return open_incident(id, "EXPRESSION", r.error());
    }
    return incident_or(id, "EXPRESSION", open_boundaries(id));
}

Result<void, EngineError> Runner::leave(TokenId id) {
    Token* t = token(id);
    const ElementIndex e = t->element;
    const auto& E = el(e);
    history(e, HistoryEvent::kCompleted);
    if (ce(e).has_wait_boundaries) {
        close_waits_if([id](const Wait& w) { return w.token == id; });
    }
    if (E.compensation_handler != kNoElement && !t->has(TokenFlag::kCompensation)) {
        st_.compensations.push_back({e, E.compensation_handler, t->scope});
    }
    if (t->has(TokenFlag::kCompensation)) {
        TokenId waiter = t->waiter;
        erase_token(id);
        return compensation_done(waiter);
    }
    if (t->has(TokenFlag::kMiInstance)) {
        return mi_instance_done(id);
    }
    if (E.standard_loop && t->loop_counter >= 0) {
        t->loop_counter += 1;
        bool again = true;
        if (E.standard_loop->maximum && t->loop_counter >= *E.standard_loop->maximum) {
            again = false;
        }
        if (again && ce(e).loop_condition) {
            auto v = eval(*ce(e).loop_condition, t->scope);
            if (!v) {
                return open_incident(id, "EXPRESSION", "loopCondition: " + v.error());
            }
            again = expr::truthy(v.value());
        } else if (!ce(e).loop_condition) {
            again = again && E.standard_loop->maximum.has_value();
        }
        if (again) {
            t->phase = TokenPhase::kArrive;
            queue_.push_back(id);
            return {};
        }
    }
    t->loop_counter = 0;
    t->flags &= static_cast<std::uint8_t>(~flag(TokenFlag::kLoopStarted));
    switch (E.type) {
        case ElementType::kExclusiveGateway:
        case ElementType::kInclusiveGateway:
        case ElementType::kParallelGateway:
            // Gateways choose their flows in arrive(); reaching here means "all outgoing".
            return take_flows(id, E.outgoing);
        default:
            break;
    }
    if (E.outgoing.empty()) {
        return end_token(id);
    }
    return select_and_take(id, false, false);
}

Result<void, EngineError> Runner::select_and_take(TokenId id, bool exclusive, bool parallel) {
    Token* t = token(id);
    const auto& E = el(t->element);
    const bool is_gateway = E.type == ElementType::kExclusiveGateway ||
                            E.type == ElementType::kInclusiveGateway ||
                            E.type == ElementType::kParallelGateway;
    if (is_gateway) {
        history(t->element, HistoryEvent::kCompleted);
    }
    if (parallel) {
        return take_flows(id, E.outgoing);
    }
    std::vector<FlowIndex> chosen;
    for (FlowIndex f : E.outgoing) {
        if (f == E.default_flow) {
            continue;
        }
        const auto& cond = impl_.flow_conditions[f];
        bool take = true;
        if (cond) {
            auto v = eval(*cond, t->scope);
            if (!v) {
                return open_incident(id, "EXPRESSION",
                                     "condition of " + p_.flows[f].id + ": " + v.error());
            }
            take = expr::truthy(v.value());
        }
        if (take) {
            chosen.push_back(f);
            if (exclusive) {
                break;
            }
        }
    }
    if (chosen.empty() && E.default_flow != kNoFlow) {
        chosen.push_back(E.default_flow);
    }
    if (chosen.empty()) {
        return open_incident(id, "NO_OUTGOING_FLOW",
                             "no outgoing sequence flow of '" + E.id +
                                 "' can be taken: no condition holds and there is no default flow");
    }
    return take_flows(id, chosen);
}

Result<void, EngineError> Runner::take_flows(TokenId id, const std::vector<FlowIndex>& flows) {
    if (flows.empty()) {
        return end_token(id);
    }
    Token* t = token(id);
    ScopeId s = t->scope;
    for (std::size_t i = 1; i < flows.size(); ++i) {
        auto n = new_token(p_.flows[flows[i]].target, s);
        if (!n) {
            return std::move(n).error();
        }
        token(n.value())->arrived_via = flows[i];
    }
    t = token(id);
    t->element = p_.flows[flows[0]].target;
    t->arrived_via = flows[0];
    t->phase = TokenPhase::kArrive;
    t->child_scope = 0;
    queue_.push_back(id);
    return {};
}

Result<void, EngineError> Runner::end_token(TokenId id) {
    Token* t = token(id);
    ScopeId s = t->scope;
    erase_token(id);
    return scope_done(s);
}

Result<void, EngineError> Runner::end_instance(InstanceStatus status, HistoryEvent ev) {
    std::vector<TokenId> toks;
    for (const auto& t : st_.tokens) {
        toks.push_back(t.id);
    }
    for (auto id : toks) {
        cancel_token(id, ev);
    }
    for (const auto& w : st_.waits) {
        fx_.waits_closed.push_back(w.id);
    }
    st_.waits.clear();
    st_.scopes.clear();
    st_.compensations.clear();
    for (const auto& inc : st_.incidents) {
        fx_.incidents_resolved.push_back(inc.id);
    }
    st_.incidents.clear();
    st_.status = status;
    return {};
}

Result<void, EngineError> Runner::scope_done(ScopeId sid) {
    for (const auto& t : st_.tokens) {
        if (t.scope == sid) {
            return {};
        }
    }
    for (const auto& s : st_.scopes) {
        if (s.parent == sid) {
            return {};
        }
    }
    Scope* sc = scope(sid);
    if (sc == nullptr) {
        return {};
    }
    if (sc->kind == ScopeKind::kProcess) {
        return end_instance(InstanceStatus::kCompleted, HistoryEvent::kCancelled);
    }
    if (sc->kind == ScopeKind::kMultiInstance || sc->kind == ScopeKind::kMiInstance) {
        return {};  // driven by mi_instance_done()
    }
    const ScopeKind kind = sc->kind;
    const ElementIndex container = sc->element;
    const ScopeId parent = sc->parent;
    const TokenId owner = sc->token;
    close_waits_if([sid](const Wait& w) { return w.scope == sid && w.token == 0; });
    // Compensation records of a completed scope move up: compensating the parent compensates
    // what ran inside.
    for (auto& rec : st_.compensations) {
        if (rec.scope == sid) {
            rec.scope = parent;
        }
    }
    Json locals = std::move(sc->locals);
    erase_scope(sid);
    if (kind == ScopeKind::kEventSubProcess) {
        history(container, HistoryEvent::kCompleted);
        return scope_done(parent);
    }
    Token* o = token(owner);
    if (o == nullptr) {
        return scope_done(parent);
    }
    o->child_scope = 0;
    const auto& C = ce(o->element);
    if (!C.outputs.empty()) {
        LocalSource src(locals, st_, parent);
        auto r = apply_mappings(C.outputs, src, parent);
        if (!r) {
            return open_incident(owner, "EXPRESSION", r.error());
        }
    }
    o->phase = TokenPhase::kComplete;
    return leave(owner);
}

Result<void, EngineError> Runner::enter_subprocess(TokenId id) {
    Token* t = token(id);
    const ElementIndex e = t->element;
    const ScopeId parent = t->scope;
    const ScopeId child = new_scope(ScopeKind::kSubProcess, e, parent, id);
    t = token(id);
    t->phase = TokenPhase::kWaiting;
    t->child_scope = child;
    const auto& C = ce(e);
    if (!C.inputs.empty()) {
        Variables src(st_, parent, nullptr);
        Json locals = Json::object();
        for (const auto& m : C.inputs) {
            auto v = m.source.evaluate(src, ctx());
            if (!v) {
                return open_incident(id, "EXPRESSION",
                                     "input mapping '" + m.target + "': " + v.error().message);
            }
            locals[m.target] = std::move(v).value();
        }
        scope(child)->locals = std::move(locals);
    }
    auto b = open_boundaries(id);
    if (!b) {
        return open_incident(id, "EXPRESSION", b.error());
    }
    auto w = open_event_subprocess_starts(child, el(e).event_subprocesses);
    if (!w) {
        return open_incident(id, "EXPRESSION", w.error());
    }
    if (C.none_start == kNoElement) {
        return scope_done(child);
    }
    auto n = new_token(C.none_start, child);
    if (!n) {
        return std::move(n).error();
    }
    return {};
}

Result<void, EngineError> Runner::start_multi_instance(TokenId id) {
    Token* t = token(id);
    const ElementIndex e = t->element;
    const auto& C = ce(e);
    const auto& mi = *el(e).multi_instance;
    const ScopeId parent = t->scope;
    std::int64_t total = 0;
    Json items;
    if (C.mi_cardinality) {
        auto v = eval(*C.mi_cardinality, parent);
        if (!v) {
            return open_incident(id, "EXPRESSION", "loopCardinality: " + v.error());
        }
        if (v.value().is_number()) {
            total = v.value().get<std::int64_t>();
        } else if (v.value().is_string()) {
            const auto& s = v.value().get_ref<const std::string&>();
            std::from_chars(s.data(), s.data() + s.size(), total);
        }
    } else if (C.mi_collection) {
        auto v = eval(*C.mi_collection, parent);
        if (!v) {
            return open_incident(id, "EXPRESSION", "collection: " + v.error());
        }
        items = std::move(v).value();
        if (items.is_string()) {
            // A collection given by variable name ("input_data").
            Variables vars(st_, parent, nullptr);
            if (const Json* named = vars.find(items.get<std::string>())) {
                items = *named;
            }
        }
        if (!items.is_array()) {
            return open_incident(id, "EXPRESSION", "multi-instance collection is not a list");
        }
        total = static_cast<std::int64_t>(items.size());
    }
    if (total < 0) {
        return open_incident(id, "EXPRESSION", "loopCardinality is negative");
    }
    const ScopeId body = new_scope(ScopeKind::kMultiInstance, e, parent, id);
    t = token(id);
    t->phase = TokenPhase::kWaiting;
    t->child_scope = body;
    Scope* b = scope(body);
    b->mi_total = total;
    b->mi_items = std::move(items);
    if (!mi.output_collection.empty()) {
        b->mi_output = Json::array();
        if (mi.output_element.empty() || !C.mi_output_element) {
            b->mi_output = Json();
        } else {
            for (std::int64_t i = 0; i < total; ++i) {
                b->mi_output.push_back(nullptr);
            }
        }
    }
    b->locals = Json::object();
    b->locals["nrOfInstances"] = total;
    b->locals["nrOfCompletedInstances"] = 0;
    b->locals["nrOfActiveInstances"] = 0;
    auto bo = open_boundaries(id);
    if (!bo) {
        return open_incident(id, "EXPRESSION", bo.error());
    }
    if (total == 0) {
        return finish_mi_body(body);
    }
    if (mi.sequential) {
        return start_mi_instance(body, 0);
    }
    for (std::int64_t i = 0; i < total; ++i) {
        PY_TRY(start_mi_instance(body, i));
    }
    return {};
}

Result<void, EngineError> Runner::start_mi_instance(ScopeId body, std::int64_t index) {
    Scope* b = scope(body);
    const ElementIndex e = b->element;
    const auto& mi = *el(e).multi_instance;
    b->mi_next = index + 1;
    b->mi_active += 1;
    b->locals["nrOfActiveInstances"] = b->mi_active;
    Json locals = Json::object();
    locals["loopCounter"] = index;
    if (!mi.element_variable.empty()) {
        locals[mi.element_variable] =
            b->mi_items.is_array() && index < static_cast<std::int64_t>(b->mi_items.size())
                ? b->mi_items[static_cast<std::size_t>(index)]
                : Json();
    }
    if (!mi.output_element.empty() &&
        mi.output_element.find_first_of(" ([{$.'\"") == std::string::npos) {
        // The output element is a local of each instance, so instances do not overwrite each
        // other's results.
        locals[mi.output_element] = nullptr;
    }
    const ScopeId inst = new_scope(ScopeKind::kMiInstance, e, body, 0);
    scope(inst)->locals = std::move(locals);
    auto n = new_token(e, inst, flag(TokenFlag::kMiInstance));
    if (!n) {
        return std::move(n).error();
    }
    return {};
}

Result<void, EngineError> Runner::mi_instance_done(TokenId id) {
    Token* t = token(id);
    const ScopeId inst = t->scope;
    Scope* is = scope(inst);
    const ScopeId body = is->parent;
    const ElementIndex e = t->element;
    const auto& C = ce(e);
    Scope* b = scope(body);
    const std::int64_t index = is->locals.value("loopCounter", std::int64_t{0});
    if (C.mi_output_element && b->mi_output.is_array()) {
        auto v = eval(*C.mi_output_element, inst);
        if (!v) {
            return open_incident(id, "EXPRESSION", "output element: " + v.error());
        }
        b = scope(body);
        if (index < static_cast<std::int64_t>(b->mi_output.size())) {
            b->mi_output[static_cast<std::size_t>(index)] = std::move(v).value();
        }
    }
    erase_token(id);
    // Anything left in the instance scope (non-interrupting branches) ends with it.
    cancel_scope(inst, HistoryEvent::kCancelled);
    b = scope(body);
    b->mi_completed += 1;
    b->mi_active -= 1;
    b->locals["nrOfCompletedInstances"] = b->mi_completed;
    b->locals["nrOfActiveInstances"] = b->mi_active;
    bool done = b->mi_completed >= b->mi_total;
    if (!done && C.mi_completion) {
        auto v = eval(*C.mi_completion, body);
        if (!v) {
            return open_incident(b->token, "EXPRESSION", "completionCondition: " + v.error());
        }
        done = expr::truthy(v.value());
    }
    if (done) {
        return finish_mi_body(body);
    }
    if (el(e).multi_instance->sequential && b->mi_active == 0) {
        return start_mi_instance(body, b->mi_next);
    }
    return {};
}

Result<void, EngineError> Runner::finish_mi_body(ScopeId body) {
    Scope* b = scope(body);
    const TokenId owner = b->token;
    const ScopeId parent = b->parent;
    const ElementIndex e = b->element;
    Json output = std::move(b->mi_output);
    clear_scope(body, HistoryEvent::kCancelled);
    erase_scope(body);
    const auto& mi = *el(e).multi_instance;
    if (!mi.output_collection.empty() && output.is_array()) {
        Variables vars(st_, parent, &fx_.variables_changed);
        vars.set(mi.output_collection, std::move(output));
    }
    Token* o = token(owner);
    o->child_scope = 0;
    o->phase = TokenPhase::kComplete;
    return leave(owner);
}

Result<void, EngineError> Runner::parallel_join(TokenId id) {
    Token* t = token(id);
    t->phase = TokenPhase::kJoin;
    const ElementIndex g = t->element;
    const ScopeId s = t->scope;
    const auto& incoming = el(g).incoming;
    std::vector<TokenId> picked;
    for (FlowIndex f : incoming) {
        TokenId found = 0;
        for (const auto& o : st_.tokens) {
            if (o.element == g && o.scope == s && o.phase == TokenPhase::kJoin &&
                o.arrived_via == f &&
                std::find(picked.begin(), picked.end(), o.id) == picked.end()) {
                found = o.id;
                if (o.id == id) {
                    break;
                }
            }
        }
        if (found == 0) {
            return {};  // still waiting for a branch
        }
        picked.push_back(found);
    }
    TokenId keep = std::find(picked.begin(), picked.end(), id) != picked.end() ? id : picked[0];
    for (auto p : picked) {
        if (p != keep) {
            erase_token(p);
        }
    }
    token(keep)->phase = TokenPhase::kArrive;
    return select_and_take(keep, false, true);
}

Result<bool, EngineError> Runner::try_inclusive_join(TokenId id) {
    Token* t = token(id);
    const ElementIndex g = t->element;
    const ScopeId s = t->scope;
    const auto& reaches = ce(g).reaches;
    for (const auto& o : st_.tokens) {
        if (o.scope != s) {
            continue;
        }
        if (o.element == g && o.phase == TokenPhase::kJoin) {
            continue;
        }
        if (o.element < reaches.size() && reaches[o.element]) {
            return false;  // that token may still arrive
        }
    }
    std::vector<TokenId> parked;
    for (const auto& o : st_.tokens) {
        if (o.scope == s && o.element == g && o.phase == TokenPhase::kJoin && o.id != id) {
            parked.push_back(o.id);
        }
    }
    for (auto p : parked) {
        erase_token(p);
    }
    token(id)->phase = TokenPhase::kArrive;
    auto r = select_and_take(id, false, false);
    if (!r) {
        return std::move(r).error();
    }
    return true;
}

namespace {
bool error_matches(const bpmn::Element& catcher, const std::string& code, bool specific) {
    if (specific) {
        return !catcher.event.ref_name.empty() && catcher.event.ref_name == code;
    }
    return catcher.event.ref_name.empty();
}
}  // namespace

Result<void, EngineError> Runner::throw_error(TokenId id, const std::string& code,
                                              const std::string& message,
                                              bool thrower_is_activity) {
    Token* t = token(id);
    if (thrower_is_activity) {
        for (bool specific : {true, false}) {
            for (ElementIndex b : el(t->element).boundary_events) {
                if (el(b).event.kind == EventKind::kError && error_matches(el(b), code, specific)) {
                    return fire_boundary(id, b, true);
                }
            }
        }
    }
    ScopeId s = t->scope;
    if (!thrower_is_activity) {
        erase_token(id);
    }
    while (s != 0) {
        Scope* sc = scope(s);
        if (sc == nullptr) {
            break;
        }
        const std::vector<ElementIndex>* esps = nullptr;
        if (sc->kind == ScopeKind::kProcess) {
            esps = &p_.event_subprocesses;
        } else if (sc->kind == ScopeKind::kSubProcess || sc->kind == ScopeKind::kEventSubProcess) {
            esps = &el(sc->element).event_subprocesses;
        }
        if (esps != nullptr) {
            for (bool specific : {true, false}) {
                for (ElementIndex esp : *esps) {
                    for (ElementIndex start : el(esp).start_events) {
                        if (el(start).event.kind == EventKind::kError &&
                            error_matches(el(start), code, specific)) {
                            return start_event_subprocess(s, start, true);
                        }
                    }
                }
            }
        }
        if (sc->token != 0) {
            if (Token* owner = token(sc->token)) {
                for (bool specific : {true, false}) {
                    for (ElementIndex b : el(owner->element).boundary_events) {
                        if (el(b).event.kind == EventKind::kError &&
                            error_matches(el(b), code, specific)) {
                            return fire_boundary(owner->id, b, true);
                        }
                    }
                }
            }
        }
        s = sc->parent;
    }
    fx_.uncaught_error = UncaughtError{code, message};
    return end_instance(InstanceStatus::kError, HistoryEvent::kCancelled);
}

Result<bool, EngineError> Runner::throw_escalation(TokenId id, const std::string& code) {
    Token* t = token(id);
    ScopeId s = t->scope;
    while (s != 0) {
        Scope* sc = scope(s);
        if (sc == nullptr) {
            break;
        }
        const std::vector<ElementIndex>* esps = nullptr;
        if (sc->kind == ScopeKind::kProcess) {
            esps = &p_.event_subprocesses;
        } else if (sc->kind == ScopeKind::kSubProcess || sc->kind == ScopeKind::kEventSubProcess) {
            esps = &el(sc->element).event_subprocesses;
        }
        if (esps != nullptr) {
            for (bool specific : {true, false}) {
                for (ElementIndex esp : *esps) {
                    for (ElementIndex start : el(esp).start_events) {
                        if (el(start).event.kind == EventKind::kEscalation &&
                            error_matches(el(start), code, specific)) {
                            PY_TRY(start_event_subprocess(s, start, el(start).interrupting));
                            return true;
                        }
                    }
                }
            }
        }
        if (sc->token != 0) {
            if (Token* owner = token(sc->token)) {
                for (bool specific : {true, false}) {
                    for (ElementIndex b : el(owner->element).boundary_events) {
                        if (el(b).event.kind == EventKind::kEscalation &&
                            error_matches(el(b), code, specific)) {
                            PY_TRY(fire_boundary(owner->id, b, el(b).interrupting));
                            return true;
                        }
                    }
                }
            }
        }
        s = sc->parent;
    }
    return false;  // uncaught escalations are not errors: the thrower carries on
}

Result<void, EngineError> Runner::start_event_subprocess(ScopeId s, ElementIndex start,
                                                         bool interrupting) {
    const ElementIndex esp = el(start).parent;
    if (interrupting) {
        clear_scope(s, HistoryEvent::kCancelled);
        close_waits_if([s](const Wait& w) { return w.scope == s && w.token == 0; });
    }
    const ScopeId child = new_scope(ScopeKind::kEventSubProcess, esp, s, 0);
    history(esp, HistoryEvent::kStarted);
    auto w = open_event_subprocess_starts(child, el(esp).event_subprocesses);
    (void)w;
    auto n = new_token(start, child);
    if (!n) {
        return std::move(n).error();
    }
    return {};
}

Result<void, EngineError> Runner::fire_boundary(TokenId owner, ElementIndex boundary,
                                                bool interrupting) {
    Token* o = token(owner);
    const ScopeId s = o->scope;
    if (interrupting) {
        cancel_token(owner, HistoryEvent::kCancelled);
    }
    auto n = new_token(boundary, s);
    if (!n) {
        return std::move(n).error();
    }
    return {};
}

Result<void, EngineError> Runner::trigger(WaitId wid, const Json& vars) {
    Wait* w = wait(wid);
    const Wait copy = *w;
    switch (copy.role) {
        case WaitRole::kActivity: {
            close_wait(wid);
            Token* t = token(copy.token);
            PY_TRY(merge(vars, t->scope));
            if (el(copy.element).type == ElementType::kReceiveTask) {
                return activity_done(copy.token, nullptr, nullptr);
            }
            return leave(copy.token);
        }
        case WaitRole::kBoundary: {
            const bool interrupting = el(copy.element).interrupting;
            Token* t = token(copy.token);
            PY_TRY(merge(vars, t->scope));
            if (!interrupting && copy.kind == WaitKind::kTimer) {
                // Cycles re-arm.
                auto spec = timer_spec(copy.element, token(copy.token)->scope);
                std::optional<TimePoint> next;
                if (spec) {
                    next = spec.value().next(copy.due_at, copy.fired + 1);
                }
                if (next) {
                    Wait* live = wait(wid);
                    live->fired += 1;
                    live->due_at = *next;
                    WaitOpened o;
                    o.id = wid;
                    o.kind = WaitKind::kTimer;
                    o.element = copy.element;
                    o.element_id = el(copy.element).id;
                    o.name = el(copy.element).name;
                    o.due_at = *next;
                    o.interrupting = false;
                    auto reps = spec.value().repetitions();
                    o.repeat = reps < 0 ? -1 : std::max<std::int64_t>(reps - live->fired - 1, 0);
                    fx_.waits_opened.push_back(std::move(o));
                } else {
                    close_wait(wid);
                }
            } else if (!interrupting && copy.kind != WaitKind::kConditional) {
                // Message and signal non-interrupting boundaries stay subscribed.
            } else {
                close_wait(wid);
            }
            return fire_boundary(copy.token, copy.element, interrupting);
        }
        case WaitRole::kEventGateway: {
            Token* t = token(copy.token);
            PY_TRY(merge(vars, t->scope));
            const TokenId gid = copy.token;
            close_waits_if([gid](const Wait& x) { return x.token == gid; });
            t = token(gid);
            history(t->element, HistoryEvent::kCompleted);
            t->element = copy.element;
            t->phase = TokenPhase::kComplete;
            history(copy.element, HistoryEvent::kStarted);
            return leave(gid);
        }
        case WaitRole::kEventSubProcess: {
            const bool interrupting = el(copy.element).interrupting;
            PY_TRY(merge(vars, copy.scope));
            if (interrupting) {
                close_wait(wid);
            } else if (copy.kind == WaitKind::kTimer) {
                auto spec = timer_spec(copy.element, copy.scope);
                std::optional<TimePoint> next;
                if (spec) {
                    next = spec.value().next(copy.due_at, copy.fired + 1);
                }
                if (next) {
                    Wait* live = wait(wid);
                    live->fired += 1;
                    live->due_at = *next;
                    WaitOpened o;
                    o.id = wid;
                    o.kind = WaitKind::kTimer;
                    o.element = copy.element;
                    o.element_id = el(copy.element).id;
                    o.due_at = *next;
                    o.interrupting = false;
                    fx_.waits_opened.push_back(std::move(o));
                } else {
                    close_wait(wid);
                }
            } else if (copy.kind == WaitKind::kConditional) {
                close_wait(wid);
            }
            return start_event_subprocess(copy.scope, copy.element, interrupting);
        }
    }
    return {};
}

Result<void, EngineError> Runner::activity_done(TokenId id, const Json* /*vars*/,
                                                const expr::VariableSource* outputs_source) {
    Token* t = token(id);
    const auto& C = ce(t->element);
    if (!C.outputs.empty()) {
        Variables own(st_, t->scope, nullptr);
        const expr::VariableSource& src =
            outputs_source != nullptr ? *outputs_source : static_cast<expr::VariableSource&>(own);
        auto r = apply_mappings(C.outputs, src, t->scope);
        if (!r) {
            return open_incident(id, "EXPRESSION", r.error());
        }
    }
    token(id)->phase = TokenPhase::kComplete;
    return leave(id);
}

Result<void, EngineError> Runner::compensate(TokenId id, ElementIndex activity_ref) {
    Token* t = token(id);
    ScopeId s = t->scope;
    if (Scope* sc = scope(s); sc != nullptr && sc->kind == ScopeKind::kEventSubProcess) {
        s = sc->parent;  // compensation from an event subprocess compensates its parent scope
    }
    const bool cancel = el(t->element).event.kind == EventKind::kCancel;
    if (cancel) {
        clear_scope(t->scope, HistoryEvent::kCancelled, id);
        close_waits_if([s](const Wait& w) { return w.scope == s && w.token == 0; });
    }
    std::vector<CompensationRecord> todo;
    for (auto it = st_.compensations.rbegin(); it != st_.compensations.rend(); ++it) {
        if (it->scope == s && (activity_ref == kNoElement || it->activity == activity_ref)) {
            todo.push_back(*it);
        }
    }
    std::erase_if(st_.compensations, [&](const CompensationRecord& r) {
        return r.scope == s && (activity_ref == kNoElement || r.activity == activity_ref);
    });
    t = token(id);
    t->phase = TokenPhase::kCompensating;
    t->pending = static_cast<std::uint32_t>(todo.size());
    for (const auto& rec : todo) {
        ScopeId hs = scope(rec.scope) != nullptr ? rec.scope : s;
        auto n = new_token(rec.handler, hs, flag(TokenFlag::kCompensation));
        if (!n) {
            return std::move(n).error();
        }
        token(n.value())->waiter = id;
    }
    if (todo.empty()) {
        t->pending = 1;
        return compensation_done(id);
    }
    return {};
}

Result<void, EngineError> Runner::compensation_done(TokenId waiter) {
    Token* w = token(waiter);
    if (w == nullptr || w->phase != TokenPhase::kCompensating) {
        return {};
    }
    if (w->pending > 0) {
        w->pending -= 1;
    }
    if (w->pending > 0) {
        return {};
    }
    const auto& E = el(w->element);
    if (E.event.kind == EventKind::kCancel) {
        return finish_cancel(waiter);
    }
    w->phase = TokenPhase::kComplete;
    if (E.type == ElementType::kEndEvent) {
        history(w->element, HistoryEvent::kCompleted);
        return end_token(waiter);
    }
    return leave(waiter);
}

Result<void, EngineError> Runner::finish_cancel(TokenId id) {
    Token* t = token(id);
    history(t->element, HistoryEvent::kCompleted);
    Scope* sc = scope(t->scope);
    if (sc == nullptr || sc->token == 0) {
        return end_token(id);
    }
    const TokenId owner = sc->token;
    Token* o = token(owner);
    for (ElementIndex b : el(o->element).boundary_events) {
        if (el(b).event.kind == EventKind::kCancel) {
            erase_token(id);  // completed above; the transaction's cancellation removes the rest
            return fire_boundary(owner, b, true);
        }
    }
    return end_token(id);
}

Result<void, EngineError> Runner::dispatch(const Command& command) {
    if (const auto* start = std::get_if<Start>(&command)) {
        if (st_.status != InstanceStatus::kRunning || !st_.tokens.empty() || st_.steps != 0 ||
            !st_.scopes.empty()) {
            return EngineError{
                ErrorKind::kConflict, "INVALID_START", "the instance has already started", {}};
        }
        ElementIndex start_el = impl_.none_start;
        if (!start->start_event_id.empty()) {
            auto f = cp_.find(start->start_event_id);
            if (!f || el(*f).type != ElementType::kStartEvent || el(*f).parent != kNoElement) {
                return EngineError{
                    ErrorKind::kInvalidArgument, "INVALID_START",
                    "'" + start->start_event_id + "' is not a top-level start event of the process",
                    start->start_event_id};
            }
            start_el = *f;
        } else if (start_el == kNoElement && !p_.start_events.empty()) {
            start_el = p_.start_events.front();
        }
        if (start_el == kNoElement) {
            return EngineError{
                ErrorKind::kInvalid, "INVALID_START", "the process has no start event", {}};
        }
        st_.call_depth = start->call_depth;
        Scope root;
        root.id = kRootScope;
        root.kind = ScopeKind::kProcess;
        st_.scopes.push_back(std::move(root));
        PY_TRY(merge(start->variables, kRootScope));
        auto n = new_token(start_el, kRootScope);
        if (!n) {
            return std::move(n).error();
        }
        auto w = open_event_subprocess_starts(kRootScope, p_.event_subprocesses);
        if (!w) {
            return open_incident(n.value(), "EXPRESSION", w.error());
        }
        return run();
    }
    if (std::holds_alternative<ResolveIncident>(command) &&
        st_.status == InstanceStatus::kRunning) {
        const auto& ri = std::get<ResolveIncident>(command);
        auto it = std::find_if(st_.incidents.begin(), st_.incidents.end(),
                               [&](const Incident& i) { return i.id == ri.incident_id; });
        if (it == st_.incidents.end()) {
            return EngineError{ErrorKind::kNotFound,
                               "INCIDENT_NOT_FOUND",
                               "no open incident " + std::to_string(ri.incident_id),
                               {}};
        }
        Incident inc = *it;
        st_.incidents.erase(it);
        fx_.incidents_resolved.push_back(inc.id);
        Token* t = token(inc.token);
        if (t == nullptr) {
            return run();
        }
        if (inc.reopen_job) {
            const ElementType ty = el(t->element).type;
            t->phase = TokenPhase::kWaiting;
            auto r = open_wait(ty == ElementType::kCallActivity ? WaitKind::kCall : WaitKind::kJob,
                               WaitRole::kActivity, t->element, inc.token, t->scope);
            if (!r) {
                return open_incident(inc.token, "EXPRESSION", r.error());
            }
            return run();
        }
        t->phase = TokenPhase::kArrive;
        queue_.push_back(inc.token);
        return run();
    }
    if (st_.status != InstanceStatus::kRunning) {
        return EngineError{
            ErrorKind::kConflict, "INSTANCE_NOT_RUNNING", "the instance is not running", {}};
    }
    if (std::holds_alternative<Cancel>(command)) {
        return end_instance(InstanceStatus::kCancelled, HistoryEvent::kCancelled);
    }
    if (const auto* sv = std::get_if<SetVariables>(&command)) {
        PY_TRY(merge(sv->variables, kRootScope));
        return run();
    }

    WaitId wid = 0;
    WaitKind expected = WaitKind::kUserTask;
    std::visit(
        [&](const auto& c) {
            using T = std::decay_t<decltype(c)>;
            if constexpr (std::is_same_v<T, CompleteTask>) {
                wid = c.wait_id;
                expected = WaitKind::kUserTask;
            } else if constexpr (std::is_same_v<T, CorrelateMessage>) {
                wid = c.wait_id;
                expected = WaitKind::kMessage;
            } else if constexpr (std::is_same_v<T, Signal>) {
                wid = c.wait_id;
                expected = WaitKind::kSignal;
            } else if constexpr (std::is_same_v<T, FireTimer>) {
                wid = c.wait_id;
                expected = WaitKind::kTimer;
            } else if constexpr (std::is_same_v<T, CompleteJob> ||
                                 std::is_same_v<T, ThrowJobError> || std::is_same_v<T, FailJob>) {
                wid = c.wait_id;
                expected = WaitKind::kJob;
            } else if constexpr (std::is_same_v<T, CompleteCall> || std::is_same_v<T, FailCall>) {
                wid = c.wait_id;
                expected = WaitKind::kCall;
            }
        },
        command);
    Wait* w = wait(wid);
    if (w == nullptr) {
        return EngineError{ErrorKind::kNotFound,
                           "WAIT_NOT_FOUND",
                           "no open wait " + std::to_string(wid) + " in this instance",
                           {}};
    }
    if (w->kind != expected) {
        return EngineError{ErrorKind::kConflict, "WAIT_KIND_MISMATCH",
                           "wait " + std::to_string(wid) + " is a " +
                               std::string(to_string(w->kind)) + " wait, not a " +
                               std::string(to_string(expected)) + " wait",
                           el(w->element).id};
    }
    const TokenId tid = w->token;
    if (const auto* c = std::get_if<CompleteTask>(&command)) {
        Token* t = token(tid);
        PY_TRY(merge(c->variables, t->scope));
        close_wait(wid);
        PY_TRY(activity_done(tid, nullptr, nullptr));
        return run();
    }
    if (const auto* c = std::get_if<CompleteJob>(&command)) {
        Token* t = token(tid);
        PY_TRY(merge(c->variables, t->scope));
        close_wait(wid);
        PY_TRY(activity_done(tid, nullptr, nullptr));
        return run();
    }
    if (const auto* c = std::get_if<ThrowJobError>(&command)) {
        Token* t = token(tid);
        PY_TRY(merge(c->variables, t->scope));
        close_wait(wid);
        PY_TRY(throw_error(tid, c->error_code, c->message, true));
        return run();
    }
    if (const auto* c = std::get_if<FailJob>(&command)) {
        close_wait(wid);
        PY_TRY(open_incident(tid, "JOB_FAILED", c->message, true));
        return run();
    }
    if (const auto* c = std::get_if<CompleteCall>(&command)) {
        Token* t = token(tid);
        const ScopeId s = t->scope;
        close_wait(wid);
        const auto& C = ce(t->element);
        if (C.outputs.empty()) {
            PY_TRY(merge(c->variables, s));
            PY_TRY(activity_done(tid, nullptr, nullptr));
        } else {
            LocalSource src(c->variables, st_, 0);
            PY_TRY(activity_done(tid, nullptr, &src));
        }
        return run();
    }
    if (const auto* c = std::get_if<FailCall>(&command)) {
        close_wait(wid);
        if (c->error_code.empty()) {
            PY_TRY(open_incident(tid, "CALL", c->message, true));
        } else {
            PY_TRY(throw_error(tid, c->error_code, c->message, true));
        }
        return run();
    }
    Json vars;
    if (const auto* c = std::get_if<CorrelateMessage>(&command)) {
        vars = c->variables;
    } else if (const auto* c = std::get_if<Signal>(&command)) {
        vars = c->variables;
    }
    PY_TRY(trigger(wid, vars));
    return run();
}

/// Drops waits that were opened and closed within one call from both lists.
void net_waits(Effects& fx, WaitId first_new) {
    if (fx.waits_closed.empty()) {
        return;
    }
    std::vector<WaitId> closed = fx.waits_closed;
    std::sort(closed.begin(), closed.end());
    std::erase_if(fx.waits_opened, [&](const WaitOpened& o) {
        return std::binary_search(closed.begin(), closed.end(), o.id);
    });
    std::erase_if(fx.waits_closed, [&](WaitId id) { return id >= first_new; });
}

Result<void, EngineError> check_sizes(const InstanceState& st, const EngineLimits& lim) {
    std::size_t total = 0;
    auto add = [&](const Json& obj) -> Result<void, EngineError> {
        if (!obj.is_object()) {
            return {};
        }
        for (auto it = obj.begin(); it != obj.end(); ++it) {
            std::size_t n = json_size(it.value());
            if (n > lim.max_variable_size) {
                return EngineError{ErrorKind::kTooLarge,
                                   "VARIABLE_TOO_LARGE",
                                   "variable '" + it.key() + "' is larger than " +
                                       std::to_string(lim.max_variable_size) + " bytes",
                                   {}};
            }
            total += n + it.key().size();
        }
        return {};
    };
    PY_TRY(add(st.variables));
    for (const auto& s : st.scopes) {
        PY_TRY(add(s.locals));
    }
    if (total > lim.max_total_variables) {
        return EngineError{
            ErrorKind::kTooLarge,
            "VARIABLES_TOO_LARGE",
            "the instance's variables exceed " + std::to_string(lim.max_total_variables) + " bytes",
            {}};
    }
    return {};
}

}  // namespace

Error EngineError::to_error() const {
    Error e{kind, code, message, Json::object(), {}, 1};
    if (!element_id.empty()) {
        e.context["element_id"] = element_id;
    }
    return e;
}

Result<Effects, EngineError> Engine::execute(const CompiledProcess& process, InstanceState& state,
                                             const Command& command, TimePoint now,
                                             const EngineLimits& limits) {
    Effects fx;
    const WaitId first_new = state.next_wait;
    Runner runner(process, state, fx, now, limits);
    auto r = runner.dispatch(command);
    if (!r) {
        return std::move(r).error();
    }
    if (fx.variables_changed) {
        auto sizes = check_sizes(state, limits);
        if (!sizes) {
            return std::move(sizes).error();
        }
    }
    net_waits(fx, first_new);
    fx.status = state.status;
    return fx;
}

}  // namespace pythmata::engine
