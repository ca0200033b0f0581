#include "validation.hpp"

#include <algorithm>
#include <deque>
#include <initializer_list>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace pythmata::bpmn::detail {

namespace {

std::string_view kind_name(EventKind kind) {
    switch (kind) {
        case EventKind::kNone:
            return "none";
        case EventKind::kMessage:
            return "message";
        case EventKind::kTimer:
            return "timer";
        case EventKind::kSignal:
            return "signal";
        case EventKind::kError:
            return "error";
        case EventKind::kEscalation:
            return "escalation";
        case EventKind::kTerminate:
            return "terminate";
        case EventKind::kLink:
            return "link";
        case EventKind::kCompensation:
            return "compensation";
        case EventKind::kConditional:
            return "conditional";
        case EventKind::kCancel:
            return "cancel";
    }
    return "unknown";
}

bool is_gateway(ElementType type) {
    return type == ElementType::kExclusiveGateway || type == ElementType::kInclusiveGateway ||
           type == ElementType::kParallelGateway || type == ElementType::kEventBasedGateway;
}

bool is_event(ElementType type) {
    return type == ElementType::kStartEvent || type == ElementType::kEndEvent ||
           type == ElementType::kIntermediateCatchEvent ||
           type == ElementType::kIntermediateThrowEvent || type == ElementType::kBoundaryEvent;
}

bool one_of(EventKind kind, std::initializer_list<EventKind> kinds) {
    return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

class Validator {
  public:
    Validator(const Process& process, std::vector<Diagnostic>& errors,
              std::vector<Diagnostic>& warnings)
        : p_(process), errors_(errors), warnings_(warnings) {}

    void run() {
        for (const Element& e : p_.elements) {
            check_flows(e);
            check_event_kind(e);
            check_event_subprocess(e);
            check_event_gateway(e);
            check_compensation(e);
        }
        check_none_starts(kNoElement, top_level_starts());
        for (const Element& e : p_.elements) {
            if (!e.start_events.empty() && !e.triggered_by_event) {
                check_none_starts(p_.element_index.at(e.id), e.start_events);
            }
        }
        check_links();
        check_reachability();
    }

  private:
    void error(const Element& e, std::string message) {
        errors_.push_back({e.id, std::move(message)});
    }

    bool in_event_subprocess(const Element& e) const {
        return e.parent != kNoElement && p_.elements[e.parent].triggered_by_event;
    }

    void check_flows(const Element& e) {
        const std::string what = qualified_type(e);
        switch (e.type) {
            case ElementType::kStartEvent:
                if (!e.incoming.empty()) {
                    error(e, "start event " + e.id + " has incoming sequence flows");
                }
                break;
            case ElementType::kEndEvent:
                if (!e.outgoing.empty()) {
                    error(e, "end event " + e.id + " has outgoing sequence flows");
                }
                break;
            case ElementType::kBoundaryEvent:
                if (!e.incoming.empty()) {
                    error(e, "boundary event " + e.id + " has incoming sequence flows");
                }
                break;
            default:
                break;
        }
        if (is_gateway(e.type) && e.outgoing.empty()) {
            error(e, "gateway " + e.id + " (" + what + ") has no outgoing sequence flow");
        }
        if (e.default_flow != kNoFlow &&
            (e.type == ElementType::kParallelGateway || e.type == ElementType::kEventBasedGateway ||
             is_event(e.type))) {
            error(e, what + " " + e.id + " cannot have a default flow");
        }
        if (e.triggered_by_event && (!e.incoming.empty() || !e.outgoing.empty())) {
            error(e, "event subprocess " + e.id +
                         " cannot have incoming or outgoing sequence "
                         "flows");
        }
    }

    void check_event_kind(const Element& e) {
        const EventKind k = e.event.kind;
        using K = EventKind;
        bool allowed = true;
        switch (e.type) {
            case ElementType::kStartEvent:
                if (in_event_subprocess(e)) {
                    allowed = one_of(k, {K::kMessage, K::kTimer, K::kSignal, K::kConditional,
                                         K::kError, K::kEscalation, K::kCompensation});
                    if (k == K::kNone) {
                        error(e, "start event " + e.id + " of event subprocess " +
                                     p_.elements[e.parent].id + " has no event definition");
                        return;
                    }
                } else if (e.parent != kNoElement) {
                    allowed = k == K::kNone;
                    if (!allowed) {
                        error(e, "start event " + e.id + " of embedded subprocess " +
                                     p_.elements[e.parent].id + " must be a none start event");
                        return;
                    }
                } else {
                    allowed =
                        one_of(k, {K::kNone, K::kMessage, K::kTimer, K::kSignal, K::kConditional});
                }
                break;
            case ElementType::kEndEvent:
                allowed = one_of(k, {K::kNone, K::kMessage, K::kSignal, K::kError, K::kEscalation,
                                     K::kTerminate, K::kCancel, K::kCompensation});
                break;
            case ElementType::kIntermediateCatchEvent:
                if (k == K::kNone) {
                    error(e, "intermediate catch event " + e.id + " has no event definition");
                    return;
                }
                allowed =
                    one_of(k, {K::kMessage, K::kTimer, K::kSignal, K::kLink, K::kConditional});
                break;
            case ElementType::kIntermediateThrowEvent:
                allowed = one_of(k, {K::kNone, K::kMessage, K::kSignal, K::kEscalation, K::kLink,
                                     K::kCompensation});
                break;
            case ElementType::kBoundaryEvent:
                if (k == K::kNone) {
                    error(e, "boundary event " + e.id + " has no event definition");
                    return;
                }
                allowed = one_of(k, {K::kMessage, K::kTimer, K::kSignal, K::kError, K::kEscalation,
                                     K::kConditional, K::kCancel, K::kCompensation});
                break;
            default:
                allowed = k == K::kNone;
                break;
        }
        if (!allowed) {
            error(e, "a " + std::string{kind_name(k)} + " event definition is not allowed on " +
                         qualified_type(e) + " " + e.id);
            return;
        }
        if (k == K::kCancel) {
            const bool in_transaction =
                e.type == ElementType::kEndEvent
                    ? e.parent != kNoElement &&
                          p_.elements[e.parent].type == ElementType::kTransaction
                    : e.attached_to != kNoElement &&
                          p_.elements[e.attached_to].type == ElementType::kTransaction;
            if (!in_transaction) {
                error(e, "cancel event " + e.id + " must " +
                             (e.type == ElementType::kEndEvent ? "be inside a bpmn:transaction"
                                                               : "be attached to a "
                                                                 "bpmn:transaction"));
            }
        }
        if (k == K::kCompensation && !e.event.activity_ref.empty() &&
            !p_.element_index.contains(e.event.activity_ref)) {
            error(e, "compensation event " + e.id + ": activityRef \"" + e.event.activity_ref +
                         "\" is not an element of this process");
        }
    }

    std::vector<ElementIndex> top_level_starts() const { return p_.start_events; }

    // One scope cannot start in two places at once: with several none start events the engine
    // could not tell which one a plain start means.
    void check_none_starts(ElementIndex scope, const std::vector<ElementIndex>& starts) {
        std::vector<std::string> none;
        for (const ElementIndex i : starts) {
            if (p_.elements[i].event.kind == EventKind::kNone) {
                none.push_back(p_.elements[i].id);
            }
        }
        if (none.size() > 1) {
            const std::string where =
                scope == kNoElement ? "process " + p_.id : "subprocess " + p_.elements[scope].id;
            std::string list;
            for (const std::string& id : none) {
                list += (list.empty() ? "" : ", ") + id;
            }
            errors_.push_back({none[1], where + " has more than one none start event (" + list +
                                            "); only one is supported"});
        }
    }

    void check_compensation(const Element& e) {
        if (e.type == ElementType::kBoundaryEvent && e.event.kind == EventKind::kCompensation) {
            if (!e.outgoing.empty()) {
                error(e, "compensation boundary event " + e.id +
                             " cannot have outgoing sequence flows; associate a handler activity "
                             "marked isForCompensation=\"true\" instead");
            }
            if (e.compensation_handler == kNoElement) {
                error(e, "compensation boundary event " + e.id +
                             " has no handler: associate an activity marked "
                             "isForCompensation=\"true\" with it");
            }
        }
        if (e.is_for_compensation && (!e.incoming.empty() || !e.outgoing.empty())) {
            error(e, "compensation handler " + e.id + " cannot have sequence flows");
        }
    }

    void check_event_subprocess(const Element& e) {
        if (!e.triggered_by_event) {
            return;
        }
        if (e.start_events.empty()) {
            error(e, "event subprocess " + e.id + " has no start event");
        }
    }

    void check_event_gateway(const Element& e) {
        if (e.type != ElementType::kEventBasedGateway) {
            return;
        }
        for (const FlowIndex f : e.outgoing) {
            const Element& t = p_.elements[p_.flows[f].target];
            const bool catch_event =
                t.type == ElementType::kIntermediateCatchEvent &&
                one_of(t.event.kind, {EventKind::kMessage, EventKind::kTimer, EventKind::kSignal,
                                      EventKind::kConditional});
            if (!catch_event && t.type != ElementType::kReceiveTask) {
                error(e, "event-based gateway " + e.id + " leads to " + t.id + " (" +
                             qualified_type(t) +
                             "); only message, timer, signal and conditional intermediate catch "
                             "events and receive tasks may follow it");
            }
        }
    }

    void check_links() {
        // Link events pair up by name within one scope (process level or one subprocess).
        std::map<std::pair<ElementIndex, std::string>, ElementIndex> catches;
        for (ElementIndex i = 0; i < p_.elements.size(); ++i) {
            const Element& e = p_.elements[i];
            if (e.type == ElementType::kIntermediateCatchEvent &&
                e.event.kind == EventKind::kLink && !e.event.link_name.empty()) {
                if (!catches.emplace(std::pair{e.parent, e.event.link_name}, i).second) {
                    error(e, "link catch event " + e.id +
                                 ": another link catch event in the "
                                 "same scope is named \"" +
                                 e.event.link_name + "\"");
                }
            }
        }
        for (const Element& e : p_.elements) {
            if (e.type == ElementType::kIntermediateThrowEvent &&
                e.event.kind == EventKind::kLink && !e.event.link_name.empty() &&
                !catches.contains({e.parent, e.event.link_name})) {
                error(e, "link throw event " + e.id + " has no matching link catch event named \"" +
                             e.event.link_name + "\" in the same scope");
            }
        }
    }

    void check_reachability() {
        const std::size_t n = p_.elements.size();
        std::vector<bool> seen(n, false);
        std::deque<ElementIndex> queue;
        const auto visit = [&](ElementIndex i) {
            if (i != kNoElement && !seen[i]) {
                seen[i] = true;
                queue.push_back(i);
            }
        };
        std::vector<ElementIndex> top_level;
        for (ElementIndex i = 0; i < n; ++i) {
            if (p_.elements[i].parent == kNoElement) {
                top_level.push_back(i);
            }
        }
        const auto enter_scope = [&](ElementIndex scope) {
            // A scope starts at its start events; a scope without any starts at every element
            // with no incoming flow (BPMN 10.5.2: implicit start).
            const std::vector<ElementIndex>& members =
                scope == kNoElement ? top_level : p_.elements[scope].children;
            const bool has_start = std::any_of(members.begin(), members.end(), [&](ElementIndex i) {
                return p_.elements[i].type == ElementType::kStartEvent;
            });
            for (const ElementIndex i : members) {
                const Element& c = p_.elements[i];
                if (c.type == ElementType::kStartEvent || c.triggered_by_event) {
                    visit(i);
                } else if (!has_start && c.incoming.empty() &&
                           c.type != ElementType::kBoundaryEvent && !c.is_for_compensation) {
                    visit(i);
                }
            }
        };
        std::map<std::pair<ElementIndex, std::string>, std::vector<ElementIndex>> link_catches;
        for (ElementIndex i = 0; i < n; ++i) {
            const Element& c = p_.elements[i];
            if (c.type == ElementType::kIntermediateCatchEvent &&
                c.event.kind == EventKind::kLink) {
                link_catches[{c.parent, c.event.link_name}].push_back(i);
            }
        }
        enter_scope(kNoElement);
        while (!queue.empty()) {
            const ElementIndex i = queue.front();
            queue.pop_front();
            const Element& e = p_.elements[i];
            for (const FlowIndex f : e.outgoing) {
                visit(p_.flows[f].target);
            }
            for (const ElementIndex b : e.boundary_events) {
                visit(b);
            }
            if (e.compensation_handler != kNoElement) {
                visit(e.compensation_handler);
            }
            if (e.type == ElementType::kSubProcess || e.type == ElementType::kTransaction) {
                enter_scope(i);
            }
            if (e.type == ElementType::kIntermediateThrowEvent &&
                e.event.kind == EventKind::kLink) {
                if (auto it = link_catches.find({e.parent, e.event.link_name});
                    it != link_catches.end()) {
                    for (const ElementIndex c : it->second) {
                        visit(c);
                    }
                }
            }
        }
        for (ElementIndex i = 0; i < n; ++i) {
            const Element& e = p_.elements[i];
            // Compensation handlers without an association are reached by compensation only.
            if (!seen[i] && !e.is_for_compensation) {
                warnings_.push_back({e.id, qualified_type(e) + " " + e.id +
                                               " is unreachable from any start event"});
            }
        }
    }

    const Process& p_;
    std::vector<Diagnostic>& errors_;
    std::vector<Diagnostic>& warnings_;
};

}  // namespace

std::string qualified_type(const Element& element) {
    return "bpmn:" + element.type_name;
}

void validate_process(const Process& process, std::vector<Diagnostic>& errors,
                      std::vector<Diagnostic>& warnings) {
    Validator{process, errors, warnings}.run();
}

}  // namespace pythmata::bpmn::detail
