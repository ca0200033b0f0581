#pragma once

#include <string>
#include <string_view>

#include "pythmata/expr/expression.hpp"

struct lua_State;

namespace pythmata::script::detail {

/// The light userdata that stands for JSON null inside Lua tables (the global `null`).
[[nodiscard]] void* null_sentinel();

/// Deepest table nesting converted in either direction (deeper means a cycle or a bomb).
inline constexpr int kMaxNesting = 100;

/// Pushes `value` as a Lua value: objects become tables tagged with the metatable at registry
/// reference `object_mt_ref`, arrays become sequences, top-level null becomes nil and nested
/// null the `null` sentinel. Must run inside a protected call: it raises Lua errors (memory,
/// nesting) and keeps only trivially destructible C++ objects on its frames for that reason.
void push_json(lua_State* state, const expr::Value& value, int object_mt_ref, int depth = 0);

/// Why a Lua value cannot become JSON: `path` locates the offending part relative to the
/// converted value (`.items[2].f`, empty for the value itself), `reason` says what it holds.
struct ConversionError {
    std::string path;
    std::string reason;  ///< e.g. "holds a function"
};

/// Converts the Lua value at `index` to JSON without raising Lua errors (safe outside a
/// protected call). On failure returns false and fills `error`.
[[nodiscard]] bool to_json(lua_State* state, int index, int object_mt_ref, expr::Value& out,
                           ConversionError& error);

/// True when the Lua value at `index` converts to exactly `value` (used to skip writing back
/// variable tables the script did not change). Never raises; false when unsure.
[[nodiscard]] bool equals_json(lua_State* state, int index, int object_mt_ref,
                               const expr::Value& value);

/// True when `text` is well-formed UTF-8 (no overlongs, surrogates or code points > U+10FFFF).
[[nodiscard]] bool is_valid_utf8(std::string_view text);

}  // namespace pythmata::script::detail
