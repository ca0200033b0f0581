#pragma once

#include <vector>

#include "pythmata/bpmn/model.hpp"
#include "pythmata/bpmn/parser.hpp"

namespace pythmata::bpmn::detail {

/// Structural checks on one built process: flow placement per element type, gateways, default
/// flows, which event definitions an element may carry, link pairs, cancel events outside
/// transactions, event-based gateway targets, event subprocess shape. Problems go to `errors`
/// (for a non-executable process the caller passes its warnings list instead); unreachable
/// elements go to `warnings`.
void validate_process(const Process& process, std::vector<Diagnostic>& errors,
                      std::vector<Diagnostic>& warnings);

/// The display name of an element type as written in BPMN ("bpmn:userTask").
[[nodiscard]] std::string qualified_type(const Element& element);

}  // namespace pythmata::bpmn::detail
