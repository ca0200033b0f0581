#include "pythmata/http/request_parsing.hpp"

#include <charconv>
#include <string>

#include <nlohmann/json.hpp>

namespace pythmata::http {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

Result<int> parse_int_param(const Query& query, std::string_view name, int fallback, int min,
                            int max) {
    const auto it = query.find(name);
    if (it == query.end()) {
        return fallback;
    }
    const std::string& text = it->second;
    int value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max) {
        auto error = Error::invalid_argument(std::string{name} + " must be an integer from " +
                                             std::to_string(min) + " to " + std::to_string(max));
        error.context = {{"parameter", std::string{name}}, {"value", text}};
        return error;
    }
    return value;
}

}  // namespace

Result<std::string> percent_decode(std::string_view text, bool plus_is_space) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '%') {
            const int high = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
            const int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
            if (i + 2 >= text.size() || high < 0 || low < 0) {
                return Error::invalid_argument("malformed percent escape in the request target");
            }
            c = static_cast<char>(high * 16 + low);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0') {
            return Error::invalid_argument("NUL byte in the request target");
        }
        out.push_back(c);
    }
    return out;
}

Result<Query> parse_query(std::string_view query) {
    Query result;
    while (!query.empty()) {
        const auto amp = query.find('&');
        const std::string_view pair = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (pair.empty()) {
            continue;
        }
        const auto eq = pair.find('=');
        auto name = percent_decode(pair.substr(0, eq), true);
        if (!name) {
            return std::move(name).error();
        }
        auto value = percent_decode(
            eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
        if (!value) {
            return std::move(value).error();
        }
        result.emplace(std::move(name).value(), std::move(value).value());
    }
    return result;
}

Result<app::PageRequest> parse_paging(const Query& query) {
    auto page = parse_int_param(query, "page", 1, 1, 1'000'000'000);
    if (!page) {
        return std::move(page).error();
    }
    auto size = parse_int_param(query, "page_size", 20, 1, 1000);
    if (!size) {
        return std::move(size).error();
    }
    return app::PageRequest{page.value(), size.value()};
}

Result<bool> parse_flag(const Query& query, std::string_view name, bool fallback) {
    const auto it = query.find(name);
    if (it == query.end()) {
        return fallback;
    }
    if (it->second == "true" || it->second == "1") {
        return true;
    }
    if (it->second == "false" || it->second == "0") {
        return false;
    }
    auto error = Error::invalid_argument(std::string{name} + " must be true or false");
    error.context = {{"parameter", std::string{name}}, {"value", it->second}};
    return error;
}

Result<nlohmann::json> parse_json_body(std::string_view body, std::size_t max_depth) {
    std::size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (std::size_t i = 0; i < body.size(); ++i) {
        const char c = body[i];
        if (c == '\0') {
            // JSON never holds a raw NUL, and nlohmann would stop reading at it and accept
            // "{...}\0<anything>".
            auto error = Error::invalid_argument("the body is not valid JSON", "INVALID_JSON");
            error.context = {{"position", i}};
            return error;
        }
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                auto error = Error::invalid_argument(
                    "JSON nested deeper than " + std::to_string(max_depth) + " levels",
                    "JSON_TOO_DEEP");
                error.context = {{"max_depth", max_depth}, {"position", i}};
                return error;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    try {
        return nlohmann::json::parse(body);
    } catch (const nlohmann::json::parse_error& e) {
        auto error = Error::invalid_argument("the body is not valid JSON", "INVALID_JSON");
        error.context = {{"position", e.byte}};
        return error;
    } catch (const nlohmann::json::out_of_range&) {
        // A number no double holds (1e400): nlohmann refuses it with out_of_range, not
        // parse_error.
        return Error::invalid_argument("the body holds a number out of range", "INVALID_JSON");
    }
}

}  // namespace pythmata::http
