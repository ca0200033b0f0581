#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "pythmata/app/records.hpp"
#include "pythmata/common/result.hpp"

namespace pythmata::http {

/// Query parameters, decoded; the first occurrence of a name wins.
using Query = std::map<std::string, std::string, std::less<>>;

/// Decodes %XX escapes (and '+' as space when `plus_is_space`). Bad escapes and NUL: 400.
[[nodiscard]] Result<std::string> percent_decode(std::string_view text, bool plus_is_space);
/// Parses "a=1&b=x%20y" into decoded pairs.
[[nodiscard]] Result<Query> parse_query(std::string_view query);
/// page (from 1, default 1) and page_size (1..1000, default 20); 400 INVALID_ARGUMENT otherwise.
[[nodiscard]] Result<app::PageRequest> parse_paging(const Query& query);
/// A boolean query flag: absent -> fallback; "true"/"1" or "false"/"0"; else 400.
[[nodiscard]] Result<bool> parse_flag(const Query& query, std::string_view name, bool fallback);

/// The nesting limit applied to JSON request bodies.
inline constexpr std::size_t kMaxJsonDepth = 64;
/// Parses a JSON body: 400 INVALID_JSON with context.position for bad JSON, 400 JSON_TOO_DEEP
/// when nested deeper than `max_depth` (checked before parsing, so no deep recursion).
[[nodiscard]] Result<nlohmann::json> parse_json_body(std::string_view body,
                                                     std::size_t max_depth = kMaxJsonDepth);

}  // namespace pythmata::http
