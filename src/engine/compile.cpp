#include <algorithm>
#include <deque>
#include <string>
#include <utility>

#include "compiled_impl.hpp"
#include "pythmata/engine/compiled_process.hpp"

namespace pythmata::engine {

using bpmn::ElementIndex;
using bpmn::ElementType;
using bpmn::EventKind;

namespace {

bool is_activity_type(ElementType t) {
    switch (t) {
        case ElementType::kTask:
        case ElementType::kUserTask:
        case ElementType::kServiceTask:
        case ElementType::kScriptTask:
        case ElementType::kSendTask:
        case ElementType::kReceiveTask:
        case ElementType::kManualTask:
        case ElementType::kBusinessRuleTask:
        case ElementType::kSubProcess:
        case ElementType::kTransaction:
        case ElementType::kCallActivity:
            return true;
        default:
            return false;
    }
}

bool looks_like_expression(std::string_view text) {
    if (text.find("${") != std::string_view::npos || text.find("#{") != std::string_view::npos) {
        return true;
    }
    auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) {
        return false;
    }
    char c = text[first];
    return c == '"' || c == '\'' || c == '=';
}

std::string trim(std::string_view s) {
    auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) {
        return {};
    }
    auto e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

class Compiler {
  public:
    Compiler(const bpmn::Process& process, const CompileOptions& options)
        : process_(process), options_(options) {}

    std::optional<expr::Expression> expression(const std::string& element_id, std::string_view what,
                                               std::string_view text) {
        auto r = expr::Expression::compile(text);
        if (!r) {
            errors_.push_back({element_id, std::string(what) + " '" + std::string(text) +
                                               "' does not compile: " + r.error().message});
            return std::nullopt;
        }
        return std::move(r).value();
    }

    Template make_template(const std::string& element_id, std::string_view what,
                           std::string_view text) {
        Template t;
        if (text.find("${") == std::string_view::npos &&
            text.find("#{") == std::string_view::npos) {
            t.literal = std::string(text);
            return t;
        }
        t.is_literal = false;
        std::size_t pos = 0;
        while (pos < text.size()) {
            auto open = std::min(text.find("${", pos), text.find("#{", pos));
            if (open == std::string_view::npos) {
                t.parts.push_back({std::string(text.substr(pos)), std::nullopt});
                break;
            }
            if (open > pos) {
                t.parts.push_back({std::string(text.substr(pos, open - pos)), std::nullopt});
            }
            auto close = text.find('}', open + 2);
            if (close == std::string_view::npos) {
                errors_.push_back({element_id, std::string(what) + " '" + std::string(text) +
                                                   "' has an unterminated ${"});
                return t;
            }
            auto e = expression(element_id, what, text.substr(open + 2, close - open - 2));
            t.parts.push_back({{}, std::move(e)});
            pos = close + 1;
        }
        return t;
    }

    void compile_timer(const bpmn::Element& el, CompiledElement& ce) {
        const auto& ev = el.event;
        std::string text = trim(ev.timer_expression);
        if (text.empty()) {
            errors_.push_back({el.id, "timer event has no timer value"});
            return;
        }
        if (looks_like_expression(text)) {
            ce.timer_expression = expression(el.id, "timer expression", text);
            return;
        }
        auto spec = bpmn::TimerSpec::parse(ev.timer_kind, text);
        if (!spec) {
            errors_.push_back({el.id, "timer value '" + text + "' is invalid: " + spec.error()});
            return;
        }
        ce.timer = std::move(spec).value();
    }

    void compile_element(ElementIndex idx, CompiledElement& ce) {
        const auto& el = process_.elements[idx];
        ce.is_activity = is_activity_type(el.type);
        ce.name = make_template(el.id, "name", el.name);
        const auto& ev = el.event;
        if (ev.kind == EventKind::kTimer) {
            compile_timer(el, ce);
        }
        if (ev.kind == EventKind::kConditional) {
            if (trim(ev.condition).empty()) {
                errors_.push_back({el.id, "conditional event has no condition"});
            } else {
                ce.condition = expression(el.id, "condition", ev.condition);
            }
        }
        // Message catch events keep their key in the event definition; receive tasks on the
        // element.
        const std::string& key =
            !ev.correlation_key.empty() ? ev.correlation_key : el.correlation_key;
        if (!key.empty()) {
            ce.correlation_key = expression(el.id, "correlation key", key);
        }
        if (el.type == ElementType::kScriptTask) {
            if (!trim(el.script).empty()) {
                script::ScriptLimits limits;
                limits.max_instructions = options_.script_max_instructions;
                limits.max_memory = options_.script_max_memory;
                limits.timeout = std::chrono::milliseconds(options_.script_timeout_ms);
                auto s = script::Script::compile(el.script_format, el.script, limits);
                if (!s) {
                    errors_.push_back({el.id, "script does not compile: " + s.error().message});
                } else {
                    ce.script = std::move(s).value();
                }
            }
        }
        if (el.multi_instance) {
            const auto& mi = *el.multi_instance;
            if (!trim(mi.loop_cardinality).empty()) {
                ce.mi_cardinality = expression(el.id, "loopCardinality", mi.loop_cardinality);
            } else if (!trim(mi.collection).empty()) {
                ce.mi_collection = expression(el.id, "collection", mi.collection);
            } else {
                errors_.push_back(
                    {el.id,
                     "multi-instance activity has neither loopCardinality nor a collection"});
            }
            if (!trim(mi.completion_condition).empty()) {
                ce.mi_completion =
                    expression(el.id, "completionCondition", mi.completion_condition);
            }
            if (!trim(mi.output_collection).empty() && !trim(mi.output_element).empty()) {
                ce.mi_output_element = expression(el.id, "output element", mi.output_element);
            }
        }
        if (el.standard_loop && !trim(el.standard_loop->condition).empty()) {
            ce.loop_condition = expression(el.id, "loopCondition", el.standard_loop->condition);
        }
        for (const auto& m : el.inputs) {
            if (auto e = expression(el.id, "input mapping", m.source)) {
                ce.inputs.push_back({std::move(*e), m.target});
            }
        }
        for (const auto& m : el.outputs) {
            if (auto e = expression(el.id, "output mapping", m.source)) {
                ce.outputs.push_back({std::move(*e), m.target});
            }
        }
        if (el.type == ElementType::kUserTask) {
            ce.assignee = make_template(el.id, "assignee", el.assignee);
            ce.candidate_groups = make_template(el.id, "candidate groups", el.candidate_groups);
            ce.due_date = make_template(el.id, "due date", el.due_date);
        }
        if (el.type == ElementType::kCallActivity) {
            if (trim(el.called_element).empty()) {
                errors_.push_back({el.id, "call activity names no called element"});
            }
            ce.called_element = make_template(el.id, "called element", el.called_element);
        }
        for (const auto& [k, v] : el.properties) {
            ce.headers[k] = v;
        }
        for (ElementIndex b : el.boundary_events) {
            auto k = process_.elements[b].event.kind;
            if (k == EventKind::kTimer || k == EventKind::kMessage || k == EventKind::kSignal ||
                k == EventKind::kConditional) {
                ce.has_wait_boundaries = true;
            }
        }
        if (el.type == ElementType::kIntermediateThrowEvent && ev.kind == EventKind::kLink) {
            for (ElementIndex j = 0; j < process_.elements.size(); ++j) {
                const auto& c = process_.elements[j];
                if (c.type == ElementType::kIntermediateCatchEvent &&
                    c.event.kind == EventKind::kLink && c.parent == el.parent &&
                    c.event.link_name == ev.link_name) {
                    ce.link_target = j;
                    break;
                }
            }
            if (ce.link_target == bpmn::kNoElement) {
                errors_.push_back({el.id, "link throw event '" + ev.link_name +
                                              "' has no matching link catch event"});
            }
        }
        for (ElementIndex s : el.start_events) {
            if (process_.elements[s].event.kind == EventKind::kNone) {
                ce.none_start = s;
                break;
            }
        }
        if (el.type == ElementType::kInclusiveGateway && el.incoming.size() > 1) {
            ce.reaches = reach_set(idx);
        }
    }

    /// Backward reachability to `target` inside its scope, not passing through it.
    std::vector<bool> reach_set(ElementIndex target) {
        std::vector<bool> seen(process_.elements.size(), false);
        std::deque<ElementIndex> queue;
        auto push = [&](ElementIndex e) {
            if (e != target && e != bpmn::kNoElement && !seen[e]) {
                seen[e] = true;
                queue.push_back(e);
            }
        };
        for (auto f : process_.elements[target].incoming) {
            push(process_.flows[f].source);
        }
        while (!queue.empty()) {
            ElementIndex e = queue.front();
            queue.pop_front();
            const auto& el = process_.elements[e];
            for (auto f : el.incoming) {
                push(process_.flows[f].source);
            }
            if (el.type == ElementType::kBoundaryEvent) {
                push(el.attached_to);
            }
            if (el.type == ElementType::kIntermediateCatchEvent &&
                el.event.kind == EventKind::kLink) {
                for (ElementIndex j = 0; j < process_.elements.size(); ++j) {
                    const auto& t = process_.elements[j];
                    if (t.type == ElementType::kIntermediateThrowEvent &&
                        t.event.kind == EventKind::kLink && t.parent == el.parent &&
                        t.event.link_name == el.event.link_name) {
                        push(j);
                    }
                }
            }
        }
        return seen;
    }

    std::vector<bpmn::Diagnostic> errors_;

  private:
    const bpmn::Process& process_;
    const CompileOptions& options_;
};

}  // namespace

CompiledProcess::CompiledProcess(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CompiledProcess::~CompiledProcess() = default;

const bpmn::Process& CompiledProcess::process() const {
    return impl_->process;
}
const std::string& CompiledProcess::key() const {
    return impl_->process.id;
}
const std::string& CompiledProcess::element_id(bpmn::ElementIndex index) const {
    return impl_->process.elements[index].id;
}
const std::string& CompiledProcess::element_name(bpmn::ElementIndex index) const {
    return impl_->process.elements[index].name;
}
const std::string& CompiledProcess::element_type(bpmn::ElementIndex index) const {
    return impl_->process.elements[index].type_name;
}
std::optional<bpmn::ElementIndex> CompiledProcess::find(std::string_view element_id) const {
    auto it = impl_->process.element_index.find(std::string(element_id));
    if (it == impl_->process.element_index.end()) {
        return std::nullopt;
    }
    return it->second;
}
std::vector<bpmn::ElementIndex> CompiledProcess::start_events(bpmn::EventKind kind) const {
    std::vector<bpmn::ElementIndex> out;
    for (auto s : impl_->process.start_events) {
        if (impl_->process.elements[s].event.kind == kind) {
            out.push_back(s);
        }
    }
    return out;
}

std::optional<TimePoint> CompiledProcess::timer_first(bpmn::ElementIndex start,
                                                      TimePoint from) const {
    if (start >= impl_->elements.size() || !impl_->elements[start].timer) {
        return std::nullopt;
    }
    return impl_->elements[start].timer->first(from);
}

std::optional<TimePoint> CompiledProcess::timer_next(bpmn::ElementIndex start, TimePoint previous,
                                                     std::int64_t fired) const {
    if (start >= impl_->elements.size() || !impl_->elements[start].timer) {
        return std::nullopt;
    }
    return impl_->elements[start].timer->next(previous, fired);
}

Result<std::shared_ptr<const CompiledProcess>, std::vector<bpmn::Diagnostic>> compile(
    const bpmn::Definitions& definitions, std::string_view process_id,
    const CompileOptions& options) {
    const bpmn::Process* found = nullptr;
    for (const auto& p : definitions.processes) {
        if (p.id == process_id) {
            found = &p;
        }
    }
    if (found == nullptr) {
        return std::vector<bpmn::Diagnostic>{
            {std::string(process_id), "no process with id '" + std::string(process_id) + "'"}};
    }
    auto impl = std::make_unique<CompiledProcess::Impl>();
    impl->process = *found;
    const auto& process = impl->process;
    Compiler compiler(process, options);
    impl->elements.resize(process.elements.size());
    for (ElementIndex i = 0; i < process.elements.size(); ++i) {
        compiler.compile_element(i, impl->elements[i]);
    }
    impl->flow_conditions.resize(process.flows.size());
    for (bpmn::FlowIndex f = 0; f < process.flows.size(); ++f) {
        const auto& flow = process.flows[f];
        if (!trim(flow.condition).empty()) {
            impl->flow_conditions[f] =
                compiler.expression(flow.id, "sequence flow condition", flow.condition);
        }
    }
    for (auto s : process.start_events) {
        if (process.elements[s].event.kind == EventKind::kNone) {
            impl->none_start = s;
            break;
        }
    }
    if (process.start_events.empty()) {
        compiler.errors_.push_back({process.id, "process has no start event"});
    }
    if (!compiler.errors_.empty()) {
        return std::move(compiler.errors_);
    }
    return std::shared_ptr<const CompiledProcess>(
        std::make_shared<CompiledProcess>(std::move(impl)));
}

}  // namespace pythmata::engine
