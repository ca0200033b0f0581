#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace pythmata::fuzz {

/// The outcome of a depth-limited JSON parse.
struct LimitedParse {
    bool ok = false;
    bool too_deep = false;  ///< refused because nesting exceeded the limit
    std::size_t error_position = 0;
    nlohmann::json value;
};

/// Builds the DOM like nlohmann::json::parse but refuses documents nested deeper than
/// `max_depth` before building them (a request decoder's guard: deep documents make every later
/// recursive walk -- dump, comparison, conversion -- a stack-overflow risk). Never throws on bad
/// input.
class DepthLimitedSax {
  public:
    using json = nlohmann::json;

    DepthLimitedSax(json& out, std::size_t max_depth) : dom_(out, false), max_depth_(max_depth) {}

    bool null() { return dom_.null(); }
    bool boolean(bool v) { return dom_.boolean(v); }
    bool number_integer(json::number_integer_t v) { return dom_.number_integer(v); }
    bool number_unsigned(json::number_unsigned_t v) { return dom_.number_unsigned(v); }
    bool number_float(json::number_float_t v, const json::string_t& s) {
        return dom_.number_float(v, s);
    }
    bool string(json::string_t& v) { return dom_.string(v); }
    bool binary(json::binary_t& v) { return dom_.binary(v); }
    bool key(json::string_t& v) { return dom_.key(v); }
    bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
    bool end_object() {
        --depth_;
        return dom_.end_object();
    }
    bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
    bool end_array() {
        --depth_;
        return dom_.end_array();
    }
    bool parse_error(std::size_t position, const std::string& /*token*/,
                     const nlohmann::detail::exception& /*error*/) {
        error_position_ = position;
        return false;
    }

    [[nodiscard]] bool too_deep() const { return too_deep_; }
    [[nodiscard]] std::size_t error_position() const { return error_position_; }

  private:
    bool enter() {
        if (++depth_ > max_depth_) {
            too_deep_ = true;
            return false;
        }
        return true;
    }

    nlohmann::detail::json_sax_dom_parser<json> dom_;
    std::size_t max_depth_;
    std::size_t depth_ = 0;
    std::size_t error_position_ = 0;
    bool too_deep_ = false;
};

/// Parses `text` (strict JSON, no comments) with at most `max_depth` nested arrays/objects.
[[nodiscard]] inline LimitedParse parse_json_limited(std::string_view text, std::size_t max_depth) {
    LimitedParse out;
    DepthLimitedSax sax(out.value, max_depth);
    out.ok =
        nlohmann::json::sax_parse(text, &sax, nlohmann::json::input_format_t::json, true, false);
    out.too_deep = sax.too_deep();
    out.error_position = sax.error_position();
    if (!out.ok) {
        out.value = nullptr;
    }
    return out;
}

}  // namespace pythmata::fuzz
