#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "pythmata/bpmn/model.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::bpmn {

struct ParseLimits {
    std::size_t max_document_bytes = 10u << 20;  ///< max_bpmn_size
    std::size_t max_depth = 256;                 ///< XML element nesting
    /// XML elements in the whole document (flow elements, flows, extensions, diagram shapes):
    /// counting every element bounds the work of every later pass.
    std::size_t max_elements = 100'000;
};

/// One finding, naming the element it is about (empty element_id for document-level problems).
struct Diagnostic {
    std::string element_id;
    std::string message;
};

struct ParseOutput {
    Definitions definitions;
    std::vector<Diagnostic> warnings;  ///< e.g. unreachable elements
};

/// Parses and structurally validates a BPMN 2.0 document. Pure: no I/O, no clock, no logging.
///
/// Safe by construction: a document containing a DOCTYPE or ENTITY declaration is refused before
/// parsing (no DTD, no internal or external entity expansion: billion laughs and XXE cannot
/// happen); the size is checked before parsing, nesting depth and element count while walking.
///
/// Elements are matched by namespace URI and local name, never by prefix: bpmn:, bpmn2:,
/// semantic:, any prefix or the default namespace all work. Extension attributes and elements
/// are read from the camunda (http://camunda.org/schema/1.0/bpmn), zeebe
/// (http://camunda.org/schema/zeebe/1.0) and pythmata (http://pythmata.org/schema/1.0/bpmn)
/// namespaces. Lanes, data objects, text annotations and BPMNDiagram are ignored.
///
/// Executability: processes with isExecutable="true" are executable. When NO process in the
/// document carries isExecutable at all (older Camunda Modeler files, hand-written XML), every
/// process counts as executable; once any process states it, an absent attribute means false.
/// A document without an executable process is refused. Problems inside a non-executable
/// process (a black-box pool, a sketch) are reported as warnings, since it never runs;
/// duplicate ids are errors wherever they are.
///
/// Sequence flows without an id get the id "<sourceRef>-><targetRef>". A service or
/// business-rule task that names no built-in service, job type or script gets its element id
/// as job type (API.md order). Zeebe FEEL markers are normalised: "=expr" becomes "${expr}" in
/// template fields (assignee, candidate groups, due date, called element, job type) and plain
/// "expr" in expression fields (mapping sources, input collection, correlation key).
///
/// On failure, every error found (not only the first) with the element ids concerned; warnings
/// (unreachable elements) never fail a parse.
[[nodiscard]] Result<ParseOutput, std::vector<Diagnostic>> parse(std::string_view xml,
                                                                 const ParseLimits& limits = {});

}  // namespace pythmata::bpmn
