#include "pythmata/bpmn/parser.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>

#include "pythmata/bpmn/timer_spec.hpp"
#include "validation.hpp"
#include "xml_document.hpp"

namespace pythmata::bpmn {

namespace {

using detail::kBpmnNs;
using detail::kCamundaNs;
using detail::kPythmataNs;
using detail::kZeebeNs;
using detail::XmlDocument;

std::string lower(std::string_view text) {
    std::string out{text};
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

// Zeebe writes expressions as "=expr" and literals as plain text; the fields that Camunda 7
// writes as JUEL templates ("kermit" or "${assignee}") get the template form, so the engine
// sees one convention.
std::string feel_to_template(std::string_view text) {
    const std::string_view t = detail::trim(text);
    if (!t.empty() && t.front() == '=') {
        return "${" + std::string{detail::trim(t.substr(1))} + "}";
    }
    return std::string{t};
}

std::optional<ElementType> flow_node_type(std::string_view local) {
    static const std::map<std::string_view, ElementType> kTypes = {
        {"startEvent", ElementType::kStartEvent},
        {"endEvent", ElementType::kEndEvent},
        {"intermediateCatchEvent", ElementType::kIntermediateCatchEvent},
        {"intermediateThrowEvent", ElementType::kIntermediateThrowEvent},
        {"boundaryEvent", ElementType::kBoundaryEvent},
        {"task", ElementType::kTask},
        {"userTask", ElementType::kUserTask},
        {"serviceTask", ElementType::kServiceTask},
        {"scriptTask", ElementType::kScriptTask},
        {"sendTask", ElementType::kSendTask},
        {"receiveTask", ElementType::kReceiveTask},
        {"manualTask", ElementType::kManualTask},
        {"businessRuleTask", ElementType::kBusinessRuleTask},
        {"exclusiveGateway", ElementType::kExclusiveGateway},
        {"inclusiveGateway", ElementType::kInclusiveGateway},
        {"parallelGateway", ElementType::kParallelGateway},
        {"eventBasedGateway", ElementType::kEventBasedGateway},
        {"subProcess", ElementType::kSubProcess},
        {"transaction", ElementType::kTransaction},
        {"callActivity", ElementType::kCallActivity},
    };
    const auto it = kTypes.find(local);
    return it == kTypes.end() ? std::nullopt : std::optional{it->second};
}

// BPMN elements that may appear inside a process or subprocess and carry no execution meaning
// for this engine: they are skipped silently.
bool is_ignored_in_scope(std::string_view local) {
    static const std::unordered_set<std::string_view> kIgnored = {
        "laneSet",
        "lane",
        "dataObject",
        "dataObjectReference",
        "dataStoreReference",
        "dataStore",
        "textAnnotation",
        "group",
        "documentation",
        "extensionElements",
        "ioSpecification",
        "property",
        "category",
        "auditing",
        "monitoring",
        "correlationSubscription",
        "supportedInterfaceRef",
        "resourceRole",
        "performer",
        "potentialOwner",
        "humanPerformer",
        "incoming",
        "outgoing",
        "dataInput",
        "dataOutput",
        "inputSet",
        "outputSet",
        "dataInputAssociation",
        "dataOutputAssociation",
        "lanes",
        "flowNodeRef",
        "childLaneSet",
    };
    return kIgnored.contains(local);
}

bool is_activity(ElementType type) {
    switch (type) {
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

bool is_catching(ElementType type) {
    return type == ElementType::kStartEvent || type == ElementType::kIntermediateCatchEvent ||
           type == ElementType::kBoundaryEvent;
}

// A timer value that is plainly a literal (ISO 8601 duration, cycle or date, or cron) rather
// than an expression to evaluate: it starts, after an optional quote, with P, R, a digit, * or ?.
bool is_literal_timer(std::string_view text) {
    text = detail::trim(text);
    if (!text.empty() && (text.front() == '"' || text.front() == '\'')) {
        text.remove_prefix(1);
    }
    if (text.empty() || text.find("${") != std::string_view::npos) {
        return false;
    }
    const char c = text.front();
    return c == 'P' || c == 'R' || c == '*' || c == '?' ||
           std::isdigit(static_cast<unsigned char>(c)) != 0;
}

bool parse_bool(std::string_view text, bool fallback) {
    const std::string t = lower(detail::trim(text));
    if (t == "true") {
        return true;
    }
    if (t == "false") {
        return false;
    }
    return fallback;
}

// Root-level named things that events refer to, plus the Zeebe correlation keys that live on
// bpmn:message.
struct RootNames {
    std::map<std::string, std::string> message_keys;  // message id -> correlation key
};

// A *Ref may be written as a QName ("tns:Message_1"); look it up as written, then without the
// prefix.
const std::string* lookup_ref(const std::map<std::string, std::string>& names,
                              const std::string& ref) {
    if (auto it = names.find(ref); it != names.end()) {
        return &it->second;
    }
    const auto colon = ref.find(':');
    if (colon != std::string::npos) {
        if (auto it = names.find(ref.substr(colon + 1)); it != names.end()) {
            return &it->second;
        }
    }
    return nullptr;
}

std::string strip_ref_prefix(const std::string& ref,
                             const std::map<std::string, std::string>& names) {
    if (names.contains(ref)) {
        return ref;
    }
    const auto colon = ref.find(':');
    return colon == std::string::npos ? ref : ref.substr(colon + 1);
}

/// Builds one bpmn:process into a Process. Structural errors are collected as it goes; the
/// cross-reference pass (flows, defaults, boundary attachments, associations) runs at the end.
class ProcessBuilder {
  public:
    ProcessBuilder(const XmlDocument& doc, const Definitions& defs, const RootNames& roots,
                   std::unordered_set<std::string>& seen_ids, Process& process,
                   std::vector<Diagnostic>& errors, std::vector<Diagnostic>& document_errors)
        : doc_(doc),
          defs_(defs),
          roots_(roots),
          seen_ids_(seen_ids),
          process_(process),
          errors_(errors),
          document_errors_(document_errors) {}

    void build(pugi::xml_node process_node) {
        read_scope(process_node, kNoElement);
        resolve_flows();
        resolve_elements();
        resolve_associations();
    }

  private:
    void error(const std::string& id, std::string message) {
        errors_.push_back({id, std::move(message)});
    }

    bool claim_id(const std::string& id, std::string_view what) {
        if (id.empty()) {
            error("", "a bpmn:" + std::string{what} + " has no id");
            return false;
        }
        if (!seen_ids_.insert(id).second) {
            // Ids are unique per document, whichever process they are in.
            document_errors_.push_back({id, "duplicate id \"" + id + "\""});
            return false;
        }
        return true;
    }

    void read_scope(pugi::xml_node container, ElementIndex parent) {
        for (const pugi::xml_node node : container.children()) {
            if (node.type() != pugi::node_element || doc_.ns(node) != kBpmnNs) {
                continue;  // foreign elements (extensions, DI) carry no semantics here
            }
            const std::string_view local = XmlDocument::local(node);
            if (parent != kNoElement && (local == "multiInstanceLoopCharacteristics" ||
                                         local == "standardLoopCharacteristics")) {
                continue;  // the subprocess's own loop, read by read_loop()
            }
            if (local == "sequenceFlow") {
                read_flow(node, parent);
            } else if (local == "association") {
                associations_.push_back({node.attribute("id").value(),
                                         node.attribute("sourceRef").value(),
                                         node.attribute("targetRef").value()});
            } else if (const auto type = flow_node_type(local)) {
                read_flow_node(node, *type, parent);
            } else if (!is_ignored_in_scope(local)) {
                const std::string id = node.attribute("id").value();
                error(id, "unsupported element bpmn:" + std::string{local} +
                              (id.empty() ? std::string{} : " at id " + id));
            }
        }
    }

    void read_flow(pugi::xml_node node, ElementIndex parent) {
        SequenceFlow flow;
        flow.id = node.attribute("id").value();
        if (flow.id.empty()) {
            // Ids are optional on sequence flows in practice (Camunda's own test models omit
            // them); name the flow after its ends so that history and errors can refer to it.
            const std::string base = std::string{node.attribute("sourceRef").value()} + "->" +
                                     node.attribute("targetRef").value();
            flow.id = base;
            for (int n = 2; seen_ids_.contains(flow.id); ++n) {
                flow.id = base + "#" + std::to_string(n);
            }
        }
        if (!claim_id(flow.id, "sequenceFlow")) {
            return;
        }
        flow.name = node.attribute("name").value();
        if (const pugi::xml_node cond = doc_.child(node, kBpmnNs, "conditionExpression")) {
            flow.condition = XmlDocument::text(cond);
            flow.condition_language = lower(cond.attribute("language").value());
        }
        const auto index = static_cast<FlowIndex>(process_.flows.size());
        process_.flow_index.emplace(flow.id, index);
        process_.flows.push_back(std::move(flow));
        flow_refs_.push_back(
            {node.attribute("sourceRef").value(), node.attribute("targetRef").value(), parent});
    }

    void read_flow_node(pugi::xml_node node, ElementType type, ElementIndex parent) {
        const std::string_view local = XmlDocument::local(node);
        Element e;
        e.id = node.attribute("id").value();
        if (!claim_id(e.id, local)) {
            return;
        }
        e.name = node.attribute("name").value();
        e.type = type;
        e.type_name = std::string{local};
        e.parent = parent;
        e.is_for_compensation = parse_bool(node.attribute("isForCompensation").value(), false);
        if (type == ElementType::kSubProcess) {
            e.triggered_by_event = parse_bool(node.attribute("triggeredByEvent").value(), false);
        }
        if (type == ElementType::kStartEvent) {
            e.interrupting = parse_bool(node.attribute("isInterrupting").value(), true);
        } else if (type == ElementType::kBoundaryEvent) {
            e.interrupting = parse_bool(node.attribute("cancelActivity").value(), true);
        }
        if (type == ElementType::kEventBasedGateway) {
            if (parse_bool(node.attribute("instantiate").value(), false) ||
                lower(node.attribute("eventGatewayType").value()) == "parallel") {
                error(e.id, "unsupported element bpmn:eventBasedGateway at id " + e.id +
                                ": instantiating or parallel event-based gateways are not "
                                "supported");
            }
        }

        read_event_definitions(node, e);
        read_task_details(node, e);
        read_loop(node, e);
        read_io_mappings(node, e);

        const auto index = static_cast<ElementIndex>(process_.elements.size());
        process_.element_index.emplace(e.id, index);
        default_refs_.push_back(node.attribute("default").value());
        attached_refs_.push_back(node.attribute("attachedToRef").value());
        const bool is_start = type == ElementType::kStartEvent;
        const bool is_event_sub = e.triggered_by_event;
        process_.elements.push_back(std::move(e));
        if (parent == kNoElement) {
            if (is_start) {
                process_.start_events.push_back(index);
            }
            if (is_event_sub) {
                process_.event_subprocesses.push_back(index);
            }
        } else {
            Element& p = process_.elements[parent];
            p.children.push_back(index);
            if (is_start) {
                p.start_events.push_back(index);
            }
            if (is_event_sub) {
                p.event_subprocesses.push_back(index);
            }
        }
        if (type == ElementType::kSubProcess || type == ElementType::kTransaction) {
            read_scope(node, index);
        }
    }

    // Resolves a message/signal/error/escalation reference. `required`: a missing attribute is
    // an error too (message and signal events need a name to be triggered by).
    void resolve_named_ref(Element& e, pugi::xml_node def, const char* attribute,
                           const std::map<std::string, std::string>& names, std::string_view what,
                           bool required) {
        const std::string ref = def.attribute(attribute).value();
        e.event.ref_id = ref;
        if (ref.empty()) {
            if (required) {
                error(e.id, std::string{what} + " event " + e.id + " has no " + attribute);
            }
            return;
        }
        if (const std::string* name = lookup_ref(names, ref)) {
            e.event.ref_name = *name;
        } else {
            error(e.id, std::string{attribute} + " \"" + ref + "\" of " + e.id +
                            " refers to no bpmn:" + std::string{what});
        }
    }

    void read_event_definitions(pugi::xml_node node, Element& e) {
        int count = 0;
        for (const pugi::xml_node def : node.children()) {
            if (def.type() != pugi::node_element || doc_.ns(def) != kBpmnNs) {
                continue;
            }
            const std::string_view local = XmlDocument::local(def);
            if (local == "eventDefinitionRef") {
                error(e.id, "unsupported element bpmn:eventDefinitionRef at id " + e.id);
                continue;
            }
            if (local.size() < 15 || local.substr(local.size() - 15) != "EventDefinition") {
                continue;
            }
            if (++count == 2) {
                error(e.id, "unsupported: multiple event definitions on one event at id " + e.id +
                                " (multiple and parallel-multiple events are not supported)");
            }
            if (count > 1) {
                continue;
            }
            read_event_definition(def, local, e);
        }
        // pythmata:timerEventConfig (models drawn for the Python Pythmata) fills in a timer
        // when the standard definition is absent or empty.
        if (const pugi::xml_node cfg = doc_.extension(node, kPythmataNs, "timerEventConfig")) {
            if (e.event.kind == EventKind::kNone ||
                (e.event.kind == EventKind::kTimer && e.event.timer_expression.empty())) {
                const std::string kind = lower(cfg.attribute("timerType").value());
                e.event.kind = EventKind::kTimer;
                e.event.timer_kind = kind == "date"    ? TimerKind::kDate
                                     : kind == "cycle" ? TimerKind::kCycle
                                                       : TimerKind::kDuration;
                e.event.timer_expression = detail::trim(cfg.attribute("timerValue").value());
            }
        }
        if (e.event.kind == EventKind::kTimer && e.event.timer_expression.empty()) {
            error(e.id, "timer event " + e.id +
                            " has no timer value (timeDuration, timeDate or timeCycle)");
        } else if (e.event.kind == EventKind::kTimer &&
                   is_literal_timer(e.event.timer_expression)) {
            // Literal values are checked now, so that a typo fails the deploy and not the first
            // run; expressions are the engine's to evaluate.
            if (auto spec = TimerSpec::parse(e.event.timer_kind, e.event.timer_expression); !spec) {
                error(e.id, "timer event " + e.id + ": " + spec.error());
            }
        }
        // Message correlation: pythmata:correlationKey on the event or its definition, else
        // zeebe:subscription on the referenced message or on the event.
        if (e.event.kind == EventKind::kMessage) {
            e.event.correlation_key = correlation_key(node, e.event.ref_id);
        }
    }

    std::string correlation_key(pugi::xml_node node, const std::string& message_ref) {
        std::string key{doc_.attribute(node, kPythmataNs, "correlationKey")};
        if (key.empty()) {
            if (const pugi::xml_node def = doc_.child(node, kBpmnNs, "messageEventDefinition")) {
                key = doc_.attribute(def, kPythmataNs, "correlationKey");
            }
        }
        if (key.empty()) {
            if (const pugi::xml_node sub = doc_.extension(node, kZeebeNs, "subscription")) {
                key = detail::strip_feel(sub.attribute("correlationKey").value());
            }
        }
        if (key.empty() && !message_ref.empty()) {
            const std::string id = strip_ref_prefix(message_ref, roots_.message_keys);
            if (auto it = roots_.message_keys.find(id); it != roots_.message_keys.end()) {
                key = it->second;
            }
        }
        return std::string{detail::trim(key)};
    }

    void read_event_definition(pugi::xml_node def, std::string_view local, Element& e) {
        EventDefinition& ev = e.event;
        const bool catching = is_catching(e.type);
        if (local == "messageEventDefinition") {
            ev.kind = EventKind::kMessage;
            // A throwing message event may be implemented without a bpmn:message.
            resolve_named_ref(e, def, "messageRef", defs_.messages, "message", catching);
        } else if (local == "signalEventDefinition") {
            ev.kind = EventKind::kSignal;
            resolve_named_ref(e, def, "signalRef", defs_.signals, "signal", true);
        } else if (local == "errorEventDefinition") {
            ev.kind = EventKind::kError;
            resolve_named_ref(e, def, "errorRef", defs_.errors, "error", false);
            ev.code_variable = doc_.attribute(def, kCamundaNs, "errorCodeVariable");
            ev.message_variable = doc_.attribute(def, kCamundaNs, "errorMessageVariable");
        } else if (local == "escalationEventDefinition") {
            ev.kind = EventKind::kEscalation;
            resolve_named_ref(e, def, "escalationRef", defs_.escalations, "escalation", false);
            ev.code_variable = doc_.attribute(def, kCamundaNs, "escalationCodeVariable");
        } else if (local == "timerEventDefinition") {
            ev.kind = EventKind::kTimer;
            if (const auto n = doc_.child(def, kBpmnNs, "timeDuration")) {
                ev.timer_kind = TimerKind::kDuration;
                ev.timer_expression = XmlDocument::text(n);
            } else if (const auto d = doc_.child(def, kBpmnNs, "timeDate")) {
                ev.timer_kind = TimerKind::kDate;
                ev.timer_expression = XmlDocument::text(d);
            } else if (const auto c = doc_.child(def, kBpmnNs, "timeCycle")) {
                ev.timer_kind = TimerKind::kCycle;
                ev.timer_expression = XmlDocument::text(c);
            }
        } else if (local == "conditionalEventDefinition") {
            ev.kind = EventKind::kConditional;
            ev.condition = XmlDocument::text(doc_.child(def, kBpmnNs, "condition"));
            if (ev.condition.empty()) {
                error(e.id, "conditional event " + e.id + " has no condition");
            }
        } else if (local == "linkEventDefinition") {
            ev.kind = EventKind::kLink;
            ev.link_name = detail::trim(def.attribute("name").value());
            if (ev.link_name.empty()) {
                error(e.id, "link event " + e.id + " has no name");
            }
        } else if (local == "compensateEventDefinition") {
            ev.kind = EventKind::kCompensation;
            ev.activity_ref = def.attribute("activityRef").value();
            ev.wait_for_completion = parse_bool(def.attribute("waitForCompletion").value(), true);
        } else if (local == "terminateEventDefinition") {
            ev.kind = EventKind::kTerminate;
        } else if (local == "cancelEventDefinition") {
            ev.kind = EventKind::kCancel;
        } else {
            error(e.id, "unsupported element bpmn:" + std::string{local} + " at id " + e.id);
        }
    }

    void read_task_details(pugi::xml_node node, Element& e) {
        // Scripts: bpmn:script, zeebe:script, or pythmata:taskConfig/pythmata:script on any task.
        if (e.type == ElementType::kScriptTask) {
            e.script_format = lower(detail::trim(node.attribute("scriptFormat").value()));
            e.script = XmlDocument::text(doc_.child(node, kBpmnNs, "script"));
            e.result_variable = doc_.attribute(node, kCamundaNs, "resultVariable");
            if (const pugi::xml_node zs = doc_.extension(node, kZeebeNs, "script")) {
                if (e.script.empty()) {
                    e.script = detail::strip_feel(zs.attribute("expression").value());
                    e.script_format = "feel";
                }
                if (e.result_variable.empty()) {
                    e.result_variable = zs.attribute("resultVariable").value();
                }
            }
        }
        if (const pugi::xml_node cfg = doc_.extension(node, kPythmataNs, "taskConfig")) {
            if (const pugi::xml_node s = doc_.descendant(cfg, kPythmataNs, "script")) {
                if (e.script.empty()) {
                    e.script = XmlDocument::text(s);
                    std::string fmt = lower(s.attribute("language").value());
                    if (fmt.empty()) {
                        fmt = lower(s.attribute("scriptFormat").value());
                    }
                    if (e.script_format.empty()) {
                        e.script_format = fmt.empty() ? "python" : fmt;
                    }
                }
            }
            if (e.result_variable.empty()) {
                e.result_variable = cfg.attribute("resultVariable").value();
            }
        }

        switch (e.type) {
            case ElementType::kUserTask:
                read_user_task(node, e);
                break;
            case ElementType::kServiceTask:
            case ElementType::kBusinessRuleTask:
            case ElementType::kSendTask:
                read_job(node, e);
                break;
            case ElementType::kCallActivity:
                read_call_activity(node, e);
                break;
            default:
                break;
        }
        if (e.type == ElementType::kSendTask || e.type == ElementType::kReceiveTask) {
            const std::string ref = node.attribute("messageRef").value();
            if (ref.empty()) {
                if (e.type == ElementType::kReceiveTask) {
                    error(e.id, "receive task " + e.id + " has no messageRef");
                }
            } else if (const std::string* name = lookup_ref(defs_.messages, ref)) {
                e.message_ref_name = *name;
            } else {
                error(e.id, "messageRef \"" + ref + "\" of " + e.id + " refers to no bpmn:message");
            }
            if (e.type == ElementType::kReceiveTask) {
                e.correlation_key = correlation_key(node, ref);
            }
        }
    }

    void read_user_task(pugi::xml_node node, Element& e) {
        e.assignee = doc_.attribute(node, kCamundaNs, "assignee");
        e.candidate_groups = doc_.attribute(node, kCamundaNs, "candidateGroups");
        e.due_date = doc_.attribute(node, kCamundaNs, "dueDate");
        if (const pugi::xml_node a = doc_.extension(node, kZeebeNs, "assignmentDefinition")) {
            if (e.assignee.empty()) {
                e.assignee = feel_to_template(a.attribute("assignee").value());
            }
            if (e.candidate_groups.empty()) {
                e.candidate_groups = feel_to_template(a.attribute("candidateGroups").value());
            }
        }
        if (const pugi::xml_node s = doc_.extension(node, kZeebeNs, "taskSchedule")) {
            if (e.due_date.empty()) {
                e.due_date = feel_to_template(s.attribute("dueDate").value());
            }
        }
    }

    void read_job(pugi::xml_node node, Element& e) {
        // API.md order: zeebe:taskDefinition@type, camunda:topic, pythmata:serviceTaskConfig,
        // then the element id.
        if (const pugi::xml_node td = doc_.extension(node, kZeebeNs, "taskDefinition")) {
            e.job_type = feel_to_template(td.attribute("type").value());
            e.job_retries = detail::strip_feel(td.attribute("retries").value());
        }
        if (e.job_type.empty()) {
            e.job_type = detail::trim(doc_.attribute(node, kCamundaNs, "topic"));
        }
        if (const pugi::xml_node cfg = doc_.extension(node, kPythmataNs, "serviceTaskConfig")) {
            const std::string task_name{detail::trim(cfg.attribute("taskName").value())};
            if (task_name == "http" || task_name == "logger") {
                e.service_name = task_name;
            } else if (e.job_type.empty()) {
                e.job_type = task_name;
            }
            read_pythmata_properties(cfg, e);
        }
        if (const pugi::xml_node headers = doc_.extension(node, kZeebeNs, "taskHeaders")) {
            for (const pugi::xml_node h : doc_.children(headers, kZeebeNs, "header")) {
                e.properties[h.attribute("key").value()] = h.attribute("value").value();
            }
        }
        const bool is_send = e.type == ElementType::kSendTask;
        if (e.job_type.empty() && e.service_name.empty() && e.script.empty() && !is_send) {
            e.job_type = e.id;
        }
    }

    void read_pythmata_properties(pugi::xml_node cfg, Element& e) {
        // <pythmata:properties><pythmata:property name= value=/></pythmata:properties>, with the
        // property elements also accepted directly under the config.
        std::vector<pugi::xml_node> holders{cfg};
        for (const pugi::xml_node p : doc_.children(cfg, kPythmataNs, "properties")) {
            holders.push_back(p);
        }
        for (const pugi::xml_node holder : holders) {
            for (const pugi::xml_node p : doc_.children(holder, kPythmataNs, "property")) {
                std::string value = p.attribute("value").value();
                if (!p.attribute("value")) {
                    value = XmlDocument::text(p);
                }
                e.properties[p.attribute("name").value()] = std::move(value);
            }
        }
    }

    void read_call_activity(pugi::xml_node node, Element& e) {
        e.called_element = detail::trim(node.attribute("calledElement").value());
        bool any_mapping = false;
        bool all_in = false;
        bool all_out = false;
        for (const pugi::xml_node ext : doc_.children(node, kBpmnNs, "extensionElements")) {
            for (const pugi::xml_node c : ext.children()) {
                if (doc_.ns(c) != kCamundaNs) {
                    continue;
                }
                const std::string_view local = XmlDocument::local(c);
                if (local != "in" && local != "out") {
                    continue;
                }
                const bool in = local == "in";
                any_mapping = true;
                if (parse_bool(c.attribute("variables").value(), false) ||
                    lower(c.attribute("variables").value()) == "all") {
                    (in ? all_in : all_out) = true;
                    continue;
                }
                std::string source = c.attribute("source").value();
                if (source.empty()) {
                    source = c.attribute("sourceExpression").value();
                }
                if (source.empty() && !c.attribute("target")) {
                    continue;  // businessKey and similar, not a variable mapping
                }
                std::string target = c.attribute("target").value();
                if (target.empty()) {
                    target = source;
                }
                (in ? e.inputs : e.outputs).push_back({std::move(source), std::move(target)});
            }
        }
        // Camunda 7 passes nothing unless told; a model without any camunda:in/out follows
        // SpiffWorkflow (everything in and out).
        e.pass_all_variables_in = all_in || !any_mapping;
        e.pass_all_variables_out = all_out || !any_mapping;
        if (const pugi::xml_node zc = doc_.extension(node, kZeebeNs, "calledElement")) {
            if (e.called_element.empty()) {
                e.called_element = feel_to_template(zc.attribute("processId").value());
            }
            e.pass_all_variables_out =
                parse_bool(zc.attribute("propagateAllChildVariables").value(), true);
            e.pass_all_variables_in =
                parse_bool(zc.attribute("propagateAllParentVariables").value(), true);
        }
        if (e.called_element.empty()) {
            error(e.id, "call activity " + e.id +
                            " names no called element (calledElement or "
                            "zeebe:calledElement processId)");
        }
    }

    // A camunda:inputParameter/outputParameter value is a template: plain text is a constant,
    // "${...}" an expression. IoMapping::source is always an expression, so constants become
    // quoted string literals and an empty value becomes None (null), as in Camunda.
    std::string camunda_parameter_source(pugi::xml_node param, const std::string& element_id) {
        for (const pugi::xml_node c : param.children()) {
            if (c.type() == pugi::node_element) {
                error(element_id,
                      "unsupported element camunda:" + std::string{XmlDocument::local(c)} +
                          " in parameter \"" + param.attribute("name").value() + "\" of " +
                          element_id + " (only text and ${...} values are supported)");
                return "None";
            }
        }
        const std::string text = XmlDocument::text(param);
        if (text.empty()) {
            return "None";
        }
        if (text.find("${") != std::string::npos || text.find("#{") != std::string::npos) {
            return text;
        }
        std::string quoted = "'";
        for (const char c : text) {
            if (c == '\\' || c == '\'') {
                quoted += '\\';
            }
            quoted += c;
        }
        return quoted + "'";
    }

    void read_io_mappings(pugi::xml_node node, Element& e) {
        if (const pugi::xml_node io = doc_.extension(node, kCamundaNs, "inputOutput")) {
            for (const pugi::xml_node p : doc_.children(io, kCamundaNs, "inputParameter")) {
                e.inputs.push_back(
                    {camunda_parameter_source(p, e.id), p.attribute("name").value()});
            }
            for (const pugi::xml_node p : doc_.children(io, kCamundaNs, "outputParameter")) {
                e.outputs.push_back(
                    {camunda_parameter_source(p, e.id), p.attribute("name").value()});
            }
        }
        if (const pugi::xml_node io = doc_.extension(node, kZeebeNs, "ioMapping")) {
            for (const pugi::xml_node p : doc_.children(io, kZeebeNs, "input")) {
                e.inputs.push_back({detail::strip_feel(p.attribute("source").value()),
                                    p.attribute("target").value()});
            }
            for (const pugi::xml_node p : doc_.children(io, kZeebeNs, "output")) {
                e.outputs.push_back({detail::strip_feel(p.attribute("source").value()),
                                     p.attribute("target").value()});
            }
        }
    }

    static std::string data_item_name(pugi::xml_node item) {
        // SpiffWorkflow names the element variable by the data item's id ("input_item"); the
        // name ("input item") is a label.
        std::string id = item.attribute("id").value();
        return id.empty() ? std::string{detail::trim(item.attribute("name").value())} : id;
    }

    void read_loop(pugi::xml_node node, Element& e) {
        if (const pugi::xml_node mi =
                doc_.child(node, kBpmnNs, "multiInstanceLoopCharacteristics")) {
            MultiInstance m;
            m.sequential = parse_bool(mi.attribute("isSequential").value(), false);
            m.loop_cardinality = XmlDocument::text(doc_.child(mi, kBpmnNs, "loopCardinality"));
            m.completion_condition =
                XmlDocument::text(doc_.child(mi, kBpmnNs, "completionCondition"));
            m.collection = detail::trim(doc_.attribute(mi, kCamundaNs, "collection"));
            m.element_variable = detail::trim(doc_.attribute(mi, kCamundaNs, "elementVariable"));
            if (const pugi::xml_node z = doc_.extension(mi, kZeebeNs, "loopCharacteristics")) {
                if (m.collection.empty()) {
                    m.collection = detail::strip_feel(z.attribute("inputCollection").value());
                }
                if (m.element_variable.empty()) {
                    m.element_variable = detail::trim(z.attribute("inputElement").value());
                }
                m.output_collection = detail::trim(z.attribute("outputCollection").value());
                m.output_element = detail::strip_feel(z.attribute("outputElement").value());
            }
            if (m.collection.empty()) {
                m.collection = XmlDocument::text(doc_.child(mi, kBpmnNs, "loopDataInputRef"));
            }
            if (m.element_variable.empty()) {
                if (const auto item = doc_.child(mi, kBpmnNs, "inputDataItem")) {
                    m.element_variable = data_item_name(item);
                }
            }
            if (m.output_collection.empty()) {
                m.output_collection =
                    XmlDocument::text(doc_.child(mi, kBpmnNs, "loopDataOutputRef"));
            }
            if (m.output_element.empty()) {
                if (const auto item = doc_.child(mi, kBpmnNs, "outputDataItem")) {
                    m.output_element = data_item_name(item);
                }
            }
            if (m.loop_cardinality.empty() && m.collection.empty()) {
                error(e.id, "multi-instance activity " + e.id +
                                " has neither a loopCardinality "
                                "nor an input collection");
            }
            e.multi_instance = std::move(m);
        }
        if (const pugi::xml_node sl = doc_.child(node, kBpmnNs, "standardLoopCharacteristics")) {
            StandardLoop l;
            l.condition = XmlDocument::text(doc_.child(sl, kBpmnNs, "loopCondition"));
            l.test_before = parse_bool(sl.attribute("testBefore").value(), false);
            const std::string max{detail::trim(sl.attribute("loopMaximum").value())};
            if (!max.empty()) {
                std::int64_t value = 0;
                const auto [ptr, ec] = std::from_chars(max.data(), max.data() + max.size(), value);
                if (ec != std::errc{} || ptr != max.data() + max.size() || value < 0) {
                    error(e.id, "loopMaximum \"" + max + "\" of " + e.id +
                                    " is not a non-negative integer");
                } else {
                    l.maximum = value;
                }
            }
            if (e.multi_instance) {
                error(e.id, "activity " + e.id +
                                " has both multi-instance and standard loop "
                                "characteristics");
            }
            e.standard_loop = std::move(l);
        }
    }

    void resolve_flows() {
        for (FlowIndex f = 0; f < process_.flows.size(); ++f) {
            SequenceFlow& flow = process_.flows[f];
            const FlowRefs& refs = flow_refs_[f];
            flow.source = find(refs.source);
            flow.target = find(refs.target);
            bool ok = true;
            if (flow.source == kNoElement) {
                error(flow.id, "sequence flow " + flow.id + ": sourceRef \"" + refs.source +
                                   "\" is not a flow node of this process");
                ok = false;
            }
            if (flow.target == kNoElement) {
                error(flow.id, "sequence flow " + flow.id + ": targetRef \"" + refs.target +
                                   "\" is not a flow node of this process");
                ok = false;
            }
            if (!ok) {
                continue;
            }
            const ElementIndex sp = process_.elements[flow.source].parent;
            const ElementIndex tp = process_.elements[flow.target].parent;
            if (sp != refs.scope || tp != refs.scope) {
                error(flow.id, "sequence flow " + flow.id + " crosses scopes: " + refs.source +
                                   " and " + refs.target +
                                   " must be in the same (sub)process as the flow");
                continue;
            }
            process_.elements[flow.source].outgoing.push_back(f);
            process_.elements[flow.target].incoming.push_back(f);
        }
    }

    void resolve_elements() {
        for (ElementIndex i = 0; i < process_.elements.size(); ++i) {
            Element& e = process_.elements[i];
            if (const std::string& ref = default_refs_[i]; !ref.empty()) {
                const auto it = process_.flow_index.find(ref);
                const bool outgoing =
                    it != process_.flow_index.end() &&
                    std::find(e.outgoing.begin(), e.outgoing.end(), it->second) != e.outgoing.end();
                if (!outgoing) {
                    error(e.id, "default flow \"" + ref + "\" of " + e.id +
                                    " is not one of its outgoing sequence flows");
                } else {
                    e.default_flow = it->second;
                }
            }
            if (e.type != ElementType::kBoundaryEvent) {
                continue;
            }
            const std::string& ref = attached_refs_[i];
            const ElementIndex host = find(ref);
            if (ref.empty() || host == kNoElement) {
                error(e.id, "boundary event " + e.id + " is attached to nothing" +
                                (ref.empty() ? std::string{} : " (\"" + ref + "\" not found)"));
                continue;
            }
            Element& h = process_.elements[host];
            if (!is_activity(h.type)) {
                error(e.id, "boundary event " + e.id + " is attached to " + h.id +
                                ", which is not an activity");
                continue;
            }
            if (h.parent != e.parent) {
                error(e.id, "boundary event " + e.id + " must be in the same scope as " + h.id);
                continue;
            }
            e.attached_to = host;
            h.boundary_events.push_back(i);
        }
    }

    void resolve_associations() {
        // A compensation boundary event is tied to its handler by an association (in either
        // direction); the handler must be marked isForCompensation.
        for (const Association& a : associations_) {
            ElementIndex from = find(a.source);
            ElementIndex to = find(a.target);
            if (from == kNoElement || to == kNoElement) {
                continue;  // associations to text annotations and data
            }
            if (process_.elements[to].event.kind == EventKind::kCompensation &&
                process_.elements[to].type == ElementType::kBoundaryEvent) {
                std::swap(from, to);
            }
            Element& boundary = process_.elements[from];
            if (boundary.type != ElementType::kBoundaryEvent ||
                boundary.event.kind != EventKind::kCompensation) {
                continue;
            }
            Element& handler = process_.elements[to];
            if (!handler.is_for_compensation) {
                error(handler.id, "compensation handler " + handler.id + " (associated with " +
                                      boundary.id + ") is not marked isForCompensation=\"true\"");
                continue;
            }
            boundary.compensation_handler = to;
            if (boundary.attached_to != kNoElement) {
                process_.elements[boundary.attached_to].compensation_handler = to;
            }
        }
    }

    ElementIndex find(const std::string& id) const {
        const auto it = process_.element_index.find(id);
        return it == process_.element_index.end() ? kNoElement : it->second;
    }

    struct FlowRefs {
        std::string source;
        std::string target;
        ElementIndex scope;
    };
    struct Association {
        std::string id;
        std::string source;
        std::string target;
    };

    const XmlDocument& doc_;
    const Definitions& defs_;
    const RootNames& roots_;
    std::unordered_set<std::string>& seen_ids_;
    Process& process_;
    std::vector<Diagnostic>& errors_;
    std::vector<Diagnostic>& document_errors_;
    std::vector<std::string> default_refs_;
    std::vector<std::string> attached_refs_;
    std::vector<FlowRefs> flow_refs_;
    std::vector<Association> associations_;
};

// Reads bpmn:message, signal, error, escalation at the root (they may follow the processes).
void read_root_names(const XmlDocument& doc, pugi::xml_node root, Definitions& defs,
                     RootNames& roots, std::unordered_set<std::string>& seen_ids,
                     std::vector<Diagnostic>& errors) {
    for (const pugi::xml_node node : root.children()) {
        if (node.type() != pugi::node_element || doc.ns(node) != kBpmnNs) {
            continue;
        }
        const std::string_view local = XmlDocument::local(node);
        std::map<std::string, std::string>* names = nullptr;
        std::string value;
        const std::string name = node.attribute("name").value();
        if (local == "message") {
            names = &defs.messages;
            value = name;
        } else if (local == "signal") {
            names = &defs.signals;
            value = name;
        } else if (local == "error") {
            names = &defs.errors;
            value = node.attribute("errorCode").value();
            if (value.empty()) {
                value = name;
            }
        } else if (local == "escalation") {
            names = &defs.escalations;
            value = node.attribute("escalationCode").value();
            if (value.empty()) {
                value = name;
            }
        } else {
            continue;
        }
        const std::string id = node.attribute("id").value();
        if (id.empty()) {
            errors.push_back({"", "a bpmn:" + std::string{local} + " has no id"});
            continue;
        }
        if (!seen_ids.insert(id).second) {
            errors.push_back({id, "duplicate id \"" + id + "\""});
            continue;
        }
        (*names)[id] = value.empty() ? id : value;
        if (local == "message") {
            if (const pugi::xml_node sub = doc.extension(node, kZeebeNs, "subscription")) {
                roots.message_keys[id] =
                    detail::strip_feel(sub.attribute("correlationKey").value());
            }
        }
    }
}

}  // namespace

namespace {

/// The byte offset of the first invalid UTF-8 sequence (overlong forms, surrogates and code
/// points above U+10FFFF included), or npos when `text` is valid UTF-8.
std::size_t invalid_utf8_at(std::string_view text) {
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (i + len > n)
            return i;
        for (std::size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(text[i + k]);
            if ((cc & 0xc0) != 0x80)
                return i;
            cp = (cp << 6) | (cc & 0x3f);
        }
        const bool overlong =
            (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
        if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += len;
    }
    return std::string_view::npos;
}

/// True when the XML declaration names an encoding other than UTF-8 (pugixml converts those).
bool declares_other_encoding(std::string_view xml) {
    if (xml.substr(0, 5) != "<?xml")
        return false;
    const auto end = xml.find("?>");
    const std::string_view decl = xml.substr(0, end);
    const auto at = decl.find("encoding");
    if (at == std::string_view::npos)
        return false;
    const auto quote = decl.find_first_of("\"'", at);
    if (quote == std::string_view::npos)
        return false;
    const auto close = decl.find(decl[quote], quote + 1);
    std::string name(decl.substr(quote + 1, close - quote - 1));
    for (auto& ch : name)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return name != "utf-8" && name != "utf8";
}

}  // namespace

Result<ParseOutput, std::vector<Diagnostic>> parse(std::string_view xml,
                                                   const ParseLimits& limits) {
    if (xml.size() <= limits.max_document_bytes && !declares_other_encoding(xml)) {
        if (const auto bad = invalid_utf8_at(xml); bad != std::string_view::npos) {
            return std::vector<Diagnostic>{
                {"", "the document is not valid UTF-8 (first bad byte at offset " +
                         std::to_string(bad) + ")"}};
        }
    }
    XmlDocument doc;
    if (auto load_errors = doc.load(xml, limits); !load_errors.empty()) {
        return load_errors;
    }
    const pugi::xml_node root = doc.root();
    if (!doc.is(root, kBpmnNs, "definitions")) {
        const std::string ns{doc.ns(root)};
        return std::vector<Diagnostic>{{"", "not a BPMN 2.0 document: the root element is <" +
                                                std::string{root.name()} + "> in namespace \"" +
                                                ns + "\", expected definitions in " +
                                                std::string{kBpmnNs}}};
    }

    ParseOutput out;
    Definitions& defs = out.definitions;
    defs.id = root.attribute("id").value();
    defs.target_namespace = root.attribute("targetNamespace").value();
    std::vector<Diagnostic> errors;
    std::unordered_set<std::string> seen_ids;
    RootNames roots;
    read_root_names(doc, root, defs, roots, seen_ids, errors);

    // Executability: isExecutable="true" processes are executable. A document in which no
    // process says isExecutable at all (older Camunda Modeler files, hand-written XML) counts
    // every process executable; once any process states it, an absent attribute means false.
    const auto process_nodes = doc.children(root, kBpmnNs, "process");
    bool any_stated = false;
    for (const pugi::xml_node p : process_nodes) {
        any_stated = any_stated || static_cast<bool>(p.attribute("isExecutable"));
    }
    for (const pugi::xml_node node : root.children()) {
        if (node.type() != pugi::node_element || doc.ns(node) != kBpmnNs) {
            continue;
        }
        const std::string_view local = XmlDocument::local(node);
        if (local == "choreography" || local == "globalConversation") {
            errors.push_back(
                {node.attribute("id").value(), "unsupported element bpmn:" + std::string{local} +
                                                   " at id " + node.attribute("id").value()});
        }
    }

    for (const pugi::xml_node node : process_nodes) {
        Process process;
        process.id = node.attribute("id").value();
        process.name = node.attribute("name").value();
        process.executable =
            any_stated ? parse_bool(node.attribute("isExecutable").value(), false) : true;
        if (process.id.empty()) {
            errors.push_back({"", "a bpmn:process has no id"});
            continue;
        }
        if (!seen_ids.insert(process.id).second) {
            errors.push_back({process.id, "duplicate id \"" + process.id + "\""});
            continue;
        }
        // A non-executable process (a black-box pool, a sketch) never runs: its problems are
        // reported as warnings so that they do not block deploying the executable ones.
        std::vector<Diagnostic>& sink = process.executable ? errors : out.warnings;
        const std::size_t first_finding = sink.size();
        ProcessBuilder builder{doc, defs, roots, seen_ids, process, sink, errors};
        builder.build(node);
        detail::validate_process(process, sink, out.warnings);
        if (!process.executable) {
            for (std::size_t i = first_finding; i < sink.size(); ++i) {
                sink[i].message =
                    "in non-executable process " + process.id + ": " + sink[i].message;
            }
        }
        defs.processes.push_back(std::move(process));
    }

    const bool any_executable = std::any_of(defs.processes.begin(), defs.processes.end(),
                                            [](const Process& p) { return p.executable; });
    if (!any_executable) {
        errors.push_back({"", defs.processes.empty()
                                  ? "the document contains no bpmn:process"
                                  : "the document contains no executable process (every process "
                                    "has isExecutable=\"false\" or lacks it)"});
    }
    if (!errors.empty()) {
        return errors;
    }
    return out;
}

}  // namespace pythmata::bpmn
