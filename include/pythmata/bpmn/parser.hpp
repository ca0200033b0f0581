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
    std::size_t max_elements = 100'000;          ///< flow elements + flows in one document
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

/// Parses and structurally validates a BPMN 2.0 document. Safe by construction: no DTDs, no
/// external or internal entity expansion, bounded size, depth and element count. On failure,
/// every error found (not only the first) with the element ids concerned.
[[nodiscard]] Result<ParseOutput, std::vector<Diagnostic>> parse(std::string_view xml,
                                                                 const ParseLimits& limits = {});

}  // namespace pythmata::bpmn
