// libFuzzer target: the BPMN parser and validator.
// Contract checked: any bytes parse into a model or a list of diagnostics; nothing throws,
// crashes, recurses without bound or expands entities.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pythmata/bpmn/parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view xml(reinterpret_cast<const char*>(data), size);
    auto parsed = pythmata::bpmn::parse(xml);
    if (!parsed.ok() && parsed.error().empty()) {
        __builtin_trap();  // a failure must say why
    }
    pythmata::bpmn::ParseLimits tight;
    tight.max_document_bytes = 4096;
    tight.max_depth = 16;
    tight.max_elements = 64;
    (void)pythmata::bpmn::parse(xml, tight);
    return 0;
}
