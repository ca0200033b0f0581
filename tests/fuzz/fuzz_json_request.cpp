// libFuzzer target: the HTTP layer's JSON request body decoder, http::parse_json_body (with its
// nesting limit, http::kMaxJsonDepth).
// Contract checked: no crash, throw or unbounded recursion on any bytes; the decoder accepts
// exactly the valid JSON documents nested no deeper than the limit and builds the same value as
// an unlimited parse; it refuses everything else as a 400 with code INVALID_JSON (not JSON) or
// JSON_TOO_DEEP (too many open brackets); what it accepts survives a dump/parse round trip.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pythmata/common/error.hpp"
#include "pythmata/http/request_parsing.hpp"

namespace {

using json = nlohmann::json;

/// Validity and greatest nesting depth of a document, found without building it (a DOM of a
/// very deep document would make the reference check itself recurse deeply).
class DepthProbe {
  public:
    bool null() { return true; }
    bool boolean(bool /*v*/) { return true; }
    bool number_integer(json::number_integer_t /*v*/) { return true; }
    bool number_unsigned(json::number_unsigned_t /*v*/) { return true; }
    bool number_float(json::number_float_t /*v*/, const json::string_t& /*s*/) { return true; }
    bool string(json::string_t& /*v*/) { return true; }
    bool binary(json::binary_t& /*v*/) { return true; }
    bool key(json::string_t& /*v*/) { return true; }
    bool start_object(std::size_t /*n*/) { return enter(); }
    bool end_object() { return leave(); }
    bool start_array(std::size_t /*n*/) { return enter(); }
    bool end_array() { return leave(); }
    bool parse_error(std::size_t /*position*/, const std::string& /*token*/,
                     const nlohmann::detail::exception& /*error*/) {
        return false;
    }

    [[nodiscard]] std::size_t deepest() const { return deepest_; }

  private:
    bool enter() {
        ++depth_;
        deepest_ = depth_ > deepest_ ? depth_ : deepest_;
        return true;
    }
    bool leave() {
        --depth_;
        return true;
    }

    std::size_t depth_ = 0;
    std::size_t deepest_ = 0;
};

std::size_t depth_of(const json& value, std::size_t depth = 0) {
    std::size_t deepest = depth;
    if (value.is_structured()) {
        deepest = depth + 1;
        for (const auto& child : value) {
            const std::size_t d = depth_of(child, depth + 1);
            deepest = d > deepest ? d : deepest;
        }
    }
    return deepest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    constexpr std::size_t kLimit = pythmata::http::kMaxJsonDepth;
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    // The reference: strict JSON (nlohmann, which would stop at a NUL byte, plus "no raw NUL").
    DepthProbe probe;
    const bool valid = text.find('\0') == std::string_view::npos &&
                       json::sax_parse(text, &probe, json::input_format_t::json, true, false);
    const bool within_limit = probe.deepest() <= kLimit;

    const auto decoded = pythmata::http::parse_json_body(text);
    if (decoded.ok()) {
        if (!valid || !within_limit) {
            __builtin_trap();  // accepted something that is not JSON, or too deep
        }
        const json& value = decoded.value();
        const json plain = json::parse(text, nullptr, false);
        if (plain.is_discarded() || plain != value || depth_of(value) > kLimit) {
            __builtin_trap();  // the limit must not change what is built
        }
        const auto again = pythmata::http::parse_json_body(value.dump());
        if (!again.ok() || again.value() != value) {
            __builtin_trap();  // round trip
        }
        return 0;
    }
    const pythmata::Error& error = decoded.error();
    if (error.kind != pythmata::ErrorKind::kInvalidArgument) {
        __builtin_trap();  // a body problem is always a 400
    }
    if (error.code == "INVALID_JSON") {
        if (valid) {
            __builtin_trap();  // refused valid JSON as invalid
        }
    } else if (error.code == "JSON_TOO_DEEP") {
        if (valid && within_limit) {
            __builtin_trap();  // refused a document within the limit as too deep
        }
    } else {
        __builtin_trap();  // no other codes
    }
    return 0;
}
