// libFuzzer target: JSON request body decoding (nlohmann::json with the request depth limit of
// json_depth_limit.hpp, 64 levels as the HTTP layer plans).
// Contract checked: no crash, throw or unbounded recursion on any bytes; the limited parser
// accepts exactly what the unlimited parser accepts when nesting is within the limit, builds the
// same value, and its output survives a dump/parse round trip.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "json_depth_limit.hpp"

namespace {

constexpr std::size_t kMaxDepth = 64;

std::size_t depth_of(const nlohmann::json& value, std::size_t depth = 0) {
    std::size_t deepest = depth;
    if (value.is_structured()) {
        for (const auto& child : value) {
            const std::size_t d = depth_of(child, depth + 1);
            deepest = d > deepest ? d : deepest;
        }
        deepest = deepest > depth + 1 ? deepest : depth + 1;
    }
    return deepest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto limited = pythmata::fuzz::parse_json_limited(text, kMaxDepth);
    const nlohmann::json plain = nlohmann::json::parse(text, nullptr, false);
    if (limited.ok) {
        if (plain.is_discarded() || plain != limited.value) {
            __builtin_trap();  // the limit must not change what is accepted or built
        }
        if (depth_of(limited.value) > kMaxDepth) {
            __builtin_trap();
        }
        const std::string dumped = limited.value.dump();
        const auto again = pythmata::fuzz::parse_json_limited(dumped, kMaxDepth);
        if (!again.ok || again.value != limited.value) {
            __builtin_trap();  // round trip
        }
    } else if (!limited.too_deep && !plain.is_discarded()) {
        __builtin_trap();  // refused for a reason other than depth, yet valid JSON
    }
    return 0;
}
