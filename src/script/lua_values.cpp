#include "lua_values.hpp"

#include <lua.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>

namespace pythmata::script::detail {

namespace {

char null_marker = 0;

/// How a Lua table converts: a JSON array of `length` elements or a JSON object.
struct TableShape {
    bool is_array = false;
    lua_Integer length = 0;
};

/// Classifies the table at absolute index `index` without raising: keys exactly 1..n make an
/// array; an empty table is an object only when it carries the object metatable.
TableShape table_shape(lua_State* state, int index, int object_mt_ref) {
    lua_Integer count = 0;
    lua_Integer max_key = 0;
    bool sequence = true;
    lua_pushnil(state);
    while (lua_next(state, index) != 0) {
        ++count;
        if (sequence) {
            int is_int = 0;
            const lua_Integer key = lua_tointegerx(state, -2, &is_int);
            if (lua_type(state, -2) == LUA_TNUMBER && is_int != 0 && key >= 1) {
                max_key = key > max_key ? key : max_key;
            } else {
                sequence = false;
            }
        }
        lua_pop(state, 1);
    }
    if (count == 0) {
        bool tagged_object = false;
        if (lua_getmetatable(state, index) != 0) {
            lua_rawgeti(state, LUA_REGISTRYINDEX, object_mt_ref);
            tagged_object = lua_rawequal(state, -1, -2) != 0;
            lua_pop(state, 2);
        }
        return {!tagged_object, 0};
    }
    if (sequence && max_key == count) {
        return {true, count};
    }
    return {false, count};
}

const char* number_name(double d) {
    if (std::isnan(d)) {
        return "NaN";
    }
    return d > 0 ? "inf" : "-inf";
}

bool convert(lua_State* state, int index, int object_mt_ref, int depth, expr::Value& out,
             ConversionError& error) {
    index = lua_absindex(state, index);
    switch (lua_type(state, index)) {
        case LUA_TNIL:
            out = nullptr;
            return true;
        case LUA_TBOOLEAN:
            out = lua_toboolean(state, index) != 0;
            return true;
        case LUA_TNUMBER: {
            if (lua_isinteger(state, index) != 0) {
                out = static_cast<std::int64_t>(lua_tointeger(state, index));
                return true;
            }
            const double d = lua_tonumber(state, index);
            if (!std::isfinite(d)) {
                error.reason = std::string("holds the non-finite number ") + number_name(d) +
                               ", which JSON cannot represent";
                return false;
            }
            out = d;
            return true;
        }
        case LUA_TSTRING: {
            std::size_t size = 0;
            const char* data = lua_tolstring(state, index, &size);
            if (!is_valid_utf8(std::string_view(data, size))) {
                error.reason = "holds a string that is not valid UTF-8";
                return false;
            }
            out = std::string(data, size);
            return true;
        }
        case LUA_TLIGHTUSERDATA:
            if (lua_touserdata(state, index) == null_sentinel()) {
                out = nullptr;
                return true;
            }
            error.reason = "holds a light userdata, which cannot be stored as a process variable";
            return false;
        case LUA_TTABLE:
            break;
        case LUA_TFUNCTION:
            error.reason =
                "holds a function, which cannot be stored as a process variable (use 'local' "
                "for helper functions)";
            return false;
        case LUA_TTHREAD:
            error.reason = "holds a coroutine, which cannot be stored as a process variable";
            return false;
        default:
            error.reason = "holds a userdata, which cannot be stored as a process variable";
            return false;
    }

    if (depth >= kMaxNesting) {
        error.reason = "is nested deeper than " + std::to_string(kMaxNesting) +
                       " levels (or contains a cycle)";
        return false;
    }
    if (lua_checkstack(state, 4) == 0) {
        error.reason = "is nested too deeply";
        return false;
    }
    const TableShape shape = table_shape(state, index, object_mt_ref);
    if (shape.is_array) {
        out = expr::Value::array();
        auto& items = out.get_ref<expr::Value::array_t&>();
        items.reserve(static_cast<std::size_t>(shape.length));
        for (lua_Integer i = 1; i <= shape.length; ++i) {
            lua_rawgeti(state, index, i);
            expr::Value item;
            const bool ok = convert(state, -1, object_mt_ref, depth + 1, item, error);
            lua_pop(state, 1);
            if (!ok) {
                error.path = "[" + std::to_string(i) + "]" + error.path;
                return false;
            }
            items.push_back(std::move(item));
        }
        return true;
    }
    out = expr::Value::object();
    auto& members = out.get_ref<expr::Value::object_t&>();
    lua_pushnil(state);
    while (lua_next(state, index) != 0) {
        std::string key;
        const int key_type = lua_type(state, -2);
        if (key_type == LUA_TSTRING) {
            std::size_t size = 0;
            const char* data = lua_tolstring(state, -2, &size);
            key.assign(data, size);
            if (!is_valid_utf8(key)) {
                lua_pop(state, 2);
                error.reason = "has a key that is not valid UTF-8";
                return false;
            }
        } else if (key_type == LUA_TNUMBER && lua_isinteger(state, -2) != 0) {
            key = std::to_string(lua_tointeger(state, -2));
        } else {
            const char* type_name = lua_typename(state, key_type);
            lua_pop(state, 2);
            error.reason = std::string("has a key of type ") + type_name +
                           " (only string and integer keys can be stored)";
            return false;
        }
        expr::Value member;
        if (!convert(state, -1, object_mt_ref, depth + 1, member, error)) {
            lua_pop(state, 2);
            error.path = "." + key + error.path;
            return false;
        }
        members.insert_or_assign(std::move(key), std::move(member));
        lua_pop(state, 1);
    }
    return true;
}

bool equals(lua_State* state, int index, int object_mt_ref, const expr::Value& value, int depth) {
    index = lua_absindex(state, index);
    switch (lua_type(state, index)) {
        case LUA_TNIL:
            return value.is_null();
        case LUA_TBOOLEAN:
            return value.is_boolean() && value.get<bool>() == (lua_toboolean(state, index) != 0);
        case LUA_TNUMBER:
            if (lua_isinteger(state, index) != 0) {
                const lua_Integer n = lua_tointeger(state, index);
                if (value.is_number_unsigned()) {
                    return n >= 0 && static_cast<std::uint64_t>(n) == value.get<std::uint64_t>();
                }
                return value.is_number_integer() && value.get<std::int64_t>() == n;
            }
            return value.is_number_float() && value.get<double>() == lua_tonumber(state, index);
        case LUA_TSTRING: {
            if (!value.is_string()) {
                return false;
            }
            std::size_t size = 0;
            const char* data = lua_tolstring(state, index, &size);
            return value.get_ref<const std::string&>() == std::string_view(data, size);
        }
        case LUA_TLIGHTUSERDATA:
            return value.is_null() && lua_touserdata(state, index) == null_sentinel();
        case LUA_TTABLE:
            break;
        default:
            return false;
    }
    if (depth >= kMaxNesting || lua_checkstack(state, 4) == 0) {
        return false;
    }
    const TableShape shape = table_shape(state, index, object_mt_ref);
    if (shape.is_array) {
        if (!value.is_array() || value.size() != static_cast<std::size_t>(shape.length)) {
            return false;
        }
        const auto& items = value.get_ref<const expr::Value::array_t&>();
        for (lua_Integer i = 1; i <= shape.length; ++i) {
            lua_rawgeti(state, index, i);
            const bool same = equals(state, -1, object_mt_ref, items[i - 1], depth + 1);
            lua_pop(state, 1);
            if (!same) {
                return false;
            }
        }
        return true;
    }
    if (!value.is_object() || value.size() != static_cast<std::size_t>(shape.length)) {
        return false;
    }
    const auto& members = value.get_ref<const expr::Value::object_t&>();
    lua_pushnil(state);
    while (lua_next(state, index) != 0) {
        if (lua_type(state, -2) != LUA_TSTRING) {
            lua_pop(state, 2);
            return false;
        }
        std::size_t size = 0;
        const char* data = lua_tolstring(state, -2, &size);
        const auto it = members.find(std::string(data, size));
        if (it == members.end() || !equals(state, -1, object_mt_ref, it->second, depth + 1)) {
            lua_pop(state, 2);
            return false;
        }
        lua_pop(state, 1);
    }
    return true;
}

}  // namespace

void* null_sentinel() {
    return &null_marker;
}

void push_json(lua_State* state, const expr::Value& value, int object_mt_ref, int depth) {
    if (depth > kMaxNesting) {
        luaL_error(state, "variable is nested deeper than %d levels", kMaxNesting);
    }
    luaL_checkstack(state, 4, "variable is nested too deeply");
    using Type = expr::Value::value_t;
    switch (value.type()) {
        case Type::null:
            if (depth == 0) {
                lua_pushnil(state);
            } else {
                lua_pushlightuserdata(state, null_sentinel());
            }
            return;
        case Type::boolean:
            lua_pushboolean(state, value.get<bool>() ? 1 : 0);
            return;
        case Type::number_integer:
            lua_pushinteger(state, value.get<std::int64_t>());
            return;
        case Type::number_unsigned: {
            const auto n = value.get<std::uint64_t>();
            if (n <= static_cast<std::uint64_t>(std::numeric_limits<lua_Integer>::max())) {
                lua_pushinteger(state, static_cast<lua_Integer>(n));
            } else {
                lua_pushnumber(state, static_cast<lua_Number>(n));
            }
            return;
        }
        case Type::number_float:
            lua_pushnumber(state, value.get<double>());
            return;
        case Type::string: {
            const auto& text = value.get_ref<const std::string&>();
            lua_pushlstring(state, text.data(), text.size());
            return;
        }
        case Type::array: {
            const auto& items = value.get_ref<const expr::Value::array_t&>();
            const std::size_t size = items.size();
            lua_createtable(state, size > 1'000'000 ? 1'000'000 : static_cast<int>(size), 0);
            for (std::size_t i = 0; i < size; ++i) {
                push_json(state, items[i], object_mt_ref, depth + 1);
                lua_rawseti(state, -2, static_cast<lua_Integer>(i + 1));
            }
            return;
        }
        case Type::object: {
            const auto& members = value.get_ref<const expr::Value::object_t&>();
            const std::size_t size = members.size();
            lua_createtable(state, 0, size > 1'000'000 ? 1'000'000 : static_cast<int>(size));
            for (const auto& member : members) {
                lua_pushlstring(state, member.first.data(), member.first.size());
                push_json(state, member.second, object_mt_ref, depth + 1);
                lua_rawset(state, -3);
            }
            lua_rawgeti(state, LUA_REGISTRYINDEX, object_mt_ref);
            lua_setmetatable(state, -2);
            return;
        }
        default:
            lua_pushnil(state);
            return;
    }
}

bool to_json(lua_State* state, int index, int object_mt_ref, expr::Value& out,
             ConversionError& error) {
    return convert(state, index, object_mt_ref, 0, out, error);
}

bool equals_json(lua_State* state, int index, int object_mt_ref, const expr::Value& value) {
    return equals(state, index, object_mt_ref, value, 0);
}

bool is_valid_utf8(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c < 0x80) {
            ++p;
            continue;
        }
        int extra = 0;
        std::uint32_t code = 0;
        std::uint32_t min = 0;
        if ((c & 0xE0) == 0xC0) {
            extra = 1;
            code = c & 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2;
            code = c & 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3;
            code = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (end - p <= extra) {
            return false;
        }
        for (int i = 1; i <= extra; ++i) {
            if ((p[i] & 0xC0) != 0x80) {
                return false;
            }
            code = (code << 6) | (p[i] & 0x3F);
        }
        if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) {
            return false;
        }
        p += extra + 1;
    }
    return true;
}

}  // namespace pythmata::script::detail
