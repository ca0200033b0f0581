#include "lua_sandbox.hpp"

#include <lua.hpp>

#include <cstdlib>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "lua_values.hpp"

namespace pythmata::script::detail {

namespace {

/// Marks, in the per-run `vars` table, a global that is known to be nil (assigned nil, or an
/// undefined variable already looked up) so later reads neither fall through to the builtins
/// nor ask the engine again.
char nil_slot_marker = 0;
void* nil_slot() {
    return &nil_slot_marker;
}

/// Values of the per-run `flags` table.
constexpr lua_Integer kReadTable = 1;  ///< a variable table the script read (may be modified)
constexpr lua_Integer kWritten = 2;    ///< a global the script assigned

/// Base library functions kept in the sandbox (load, dofile, loadfile, require,
/// collectgarbage and warn are left out; print and setmetatable are replaced).
constexpr const char* kSafeBaseFunctions[] = {
    "assert",   "error",    "getmetatable", "ipairs", "next",     "pairs",
    "pcall",    "rawequal", "rawget",       "rawlen", "rawset",   "select",
    "tonumber", "tostring", "type",         "xpcall", "_VERSION",
};

/// Libraries exposed read-only.
constexpr const char* kSafeLibraries[] = {"string", "table", "math", "utf8"};

LuaSandbox* sandbox_of(lua_State* state) {
    return *static_cast<LuaSandbox**>(lua_getextraspace(state));
}

void* limited_alloc(void* ud, void* ptr, std::size_t old_size, std::size_t new_size) {
    auto* memory = static_cast<LuaMemory*>(ud);
    // When ptr is null, old_size encodes the object type, not a size.
    const std::size_t old_bytes = ptr != nullptr ? old_size : 0;
    if (new_size == 0) {
        std::free(ptr);
        memory->used -= old_bytes;
        return nullptr;
    }
    if (memory->limit != 0 && new_size > old_bytes &&
        memory->used - old_bytes + new_size > memory->limit) {
        ++memory->refusals;
        return nullptr;
    }
    void* block = std::realloc(ptr, new_size);
    if (block != nullptr) {
        memory->used = memory->used - old_bytes + new_size;
    }
    return block;
}

void count_hook(lua_State* state, lua_Debug* /*ar*/) {
    LuaSandbox* sandbox = sandbox_of(state);
    if (!sandbox->on_hook()) {
        return;
    }
    // Raised at every hook call from now on (the interval drops to 1), so a script that
    // catches the error with pcall cannot keep running. The run reports the limit from the
    // sandbox's state, not from this error object.
    lua_sethook(state, count_hook, LUA_MASKCOUNT, 1);
    lua_pushliteral(state, "script limit exceeded");
    lua_error(state);
}

int print_discarding(lua_State* /*state*/) {
    return 0;
}

int read_only_newindex(lua_State* state) {
    return luaL_error(state, "attempt to modify the read-only library table '%s'",
                      lua_tostring(state, lua_upvalueindex(1)));
}

/// setmetatable without finalizers: a __gc metamethod would run outside the run that set it.
int safe_setmetatable(lua_State* state) {
    if (lua_type(state, 2) == LUA_TTABLE) {
        if (lua_getfield(state, 2, "__gc") != LUA_TNIL) {
            return luaL_error(state, "setmetatable: __gc metamethods are not allowed in scripts");
        }
        lua_pop(state, 1);
    }
    lua_settop(state, 2);
    lua_pushvalue(state, lua_upvalueindex(1));
    lua_insert(state, 1);
    lua_call(state, 2, 1);
    return 1;
}

/// _ENV.__index: assigned globals, then builtins, then the engine's variables (converted once
/// and cached for the run). Only trivially destructible C++ objects live here: Lua errors
/// longjmp through this frame.
int env_index(lua_State* state) {
    LuaSandbox* sandbox = sandbox_of(state);
    if (lua_type(state, 2) != LUA_TSTRING) {
        return 0;
    }
    const LuaSandbox::Refs& refs = sandbox->refs();
    lua_rawgeti(state, LUA_REGISTRYINDEX, refs.vars);  // 3
    lua_pushvalue(state, 2);
    if (lua_rawget(state, 3) != LUA_TNIL) {
        if (lua_touserdata(state, -1) == nil_slot()) {
            return 0;
        }
        return 1;
    }
    lua_pop(state, 1);
    lua_rawgeti(state, LUA_REGISTRYINDEX, refs.safe);
    lua_pushvalue(state, 2);
    if (lua_rawget(state, -2) != LUA_TNIL) {
        return 1;
    }
    lua_pop(state, 2);
    std::size_t size = 0;
    const char* name = lua_tolstring(state, 2, &size);
    if (size == 2 && name[0] == '_' && name[1] == 'G') {
        lua_pushvalue(state, 1);
        return 1;
    }
    const expr::Value* value = nullptr;
    bool failed = false;
    try {
        value = sandbox->sink()->find(std::string_view(name, size));
    } catch (const std::exception&) {
        failed = true;
    }
    if (failed) {
        return luaL_error(state, "could not read variable '%s'", name);
    }
    lua_pushvalue(state, 2);  // key for the cache
    if (value == nullptr || value->is_null()) {
        lua_pushlightuserdata(state, nil_slot());
        lua_rawset(state, 3);
        return 0;
    }
    push_json(state, *value, refs.object_mt);
    lua_pushvalue(state, -1);
    lua_insert(state, -3);  // value, key, value
    lua_rawset(state, 3);
    if (lua_type(state, -1) == LUA_TTABLE) {
        lua_rawgeti(state, LUA_REGISTRYINDEX, refs.flags);
        lua_pushvalue(state, 2);
        lua_pushinteger(state, kReadTable);
        lua_rawset(state, -3);
        lua_pop(state, 1);
    }
    return 1;
}

/// _ENV.__newindex: records the assignment in the per-run tables (the environment itself stays
/// empty so that every later assignment comes here too).
int env_newindex(lua_State* state) {
    LuaSandbox* sandbox = sandbox_of(state);
    if (lua_type(state, 2) != LUA_TSTRING) {
        return luaL_error(state, "global names must be strings (got a %s)",
                          luaL_typename(state, 2));
    }
    const LuaSandbox::Refs& refs = sandbox->refs();
    lua_rawgeti(state, LUA_REGISTRYINDEX, refs.vars);  // 4
    lua_pushvalue(state, 2);
    if (lua_isnil(state, 3)) {
        lua_pushlightuserdata(state, nil_slot());
    } else {
        lua_pushvalue(state, 3);
    }
    lua_rawset(state, 4);
    lua_rawgeti(state, LUA_REGISTRYINDEX, refs.flags);
    lua_pushvalue(state, 2);
    lua_pushinteger(state, kWritten);
    lua_rawset(state, -3);
    return 0;
}

/// Protected part of one run: fresh per-run tables, a fresh _ENV, then the chunk.
int run_chunk(lua_State* state) {
    LuaSandbox* sandbox = sandbox_of(state);
    const LuaSandbox::Refs& refs = sandbox->refs();
    lua_createtable(state, 0, 4);
    lua_rawseti(state, LUA_REGISTRYINDEX, refs.vars);
    lua_createtable(state, 0, 4);
    lua_rawseti(state, LUA_REGISTRYINDEX, refs.flags);
    lua_rawgeti(state, LUA_REGISTRYINDEX, refs.chunk);
    lua_createtable(state, 0, 0);
    lua_rawgeti(state, LUA_REGISTRYINDEX, refs.env_mt);
    lua_setmetatable(state, -2);
    lua_setupvalue(state, -2, 1);  // the main chunk's only upvalue is _ENV
    lua_call(state, 0, 1);
    return 1;
}

/// Makes a read-only proxy of the table at the top of the stack (replacing it).
void push_read_only_proxy(lua_State* state, const char* name) {
    const int real = lua_gettop(state);
    lua_createtable(state, 0, 0);
    lua_createtable(state, 0, 3);
    lua_pushvalue(state, real);
    lua_setfield(state, -2, "__index");
    lua_pushstring(state, name);
    lua_pushcclosure(state, read_only_newindex, 1);
    lua_setfield(state, -2, "__newindex");
    lua_pushboolean(state, 0);
    lua_setfield(state, -2, "__metatable");
    lua_setmetatable(state, -2);
    lua_replace(state, real);
}

std::string strip_chunk_name(std::string message) {
    constexpr std::string_view kPrefix = "script:";
    if (message.compare(0, kPrefix.size(), kPrefix) == 0) {
        message.replace(0, kPrefix.size(), "line ");
    }
    return message;
}

std::string error_text(lua_State* state, int index) {
    if (lua_type(state, index) == LUA_TSTRING) {
        std::size_t size = 0;
        const char* data = lua_tolstring(state, index, &size);
        return strip_chunk_name(std::string(data, size));
    }
    return std::string("script raised an error object of type ") + luaL_typename(state, index);
}

}  // namespace

/// Protected set-up of a new state: libraries, the safe builtins, metatables, registry slots,
/// and the chunk (its load status is kept in the sandbox; a syntax error is re-raised).
int setup_sandbox(lua_State* state) {
    LuaSandbox* sandbox = sandbox_of(state);
    const auto* source = static_cast<const std::string_view*>(lua_touserdata(state, 1));

    luaL_requiref(state, LUA_GNAME, luaopen_base, 1);
    lua_pop(state, 1);
    luaL_requiref(state, LUA_STRLIBNAME, luaopen_string, 1);
    lua_pushnil(state);
    lua_setfield(state, -2, "dump");  // bytecode is useless without load; remove it anyway
    lua_pop(state, 1);
    luaL_requiref(state, LUA_TABLIBNAME, luaopen_table, 1);
    lua_pop(state, 1);
    luaL_requiref(state, LUA_MATHLIBNAME, luaopen_math, 1);
    lua_pop(state, 1);
    luaL_requiref(state, LUA_UTF8LIBNAME, luaopen_utf8, 1);
    lua_pop(state, 1);

    // Strings share one metatable whose __index is the real string table: hide it.
    lua_pushliteral(state, "");
    lua_getmetatable(state, -1);
    lua_pushboolean(state, 0);
    lua_setfield(state, -2, "__metatable");
    lua_pop(state, 2);

    lua_createtable(state, 0, 32);  // safe builtins
    const int safe = lua_gettop(state);
    for (const char* name : kSafeBaseFunctions) {
        lua_getglobal(state, name);
        lua_setfield(state, safe, name);
    }
    lua_pushcfunction(state, print_discarding);
    lua_setfield(state, safe, "print");
    lua_getglobal(state, "setmetatable");
    lua_pushcclosure(state, safe_setmetatable, 1);
    lua_setfield(state, safe, "setmetatable");
    for (const char* name : kSafeLibraries) {
        lua_getglobal(state, name);
        push_read_only_proxy(state, name);
        lua_setfield(state, safe, name);
    }
    lua_pushlightuserdata(state, null_sentinel());
    lua_setfield(state, safe, "null");
    sandbox->refs_.safe = luaL_ref(state, LUA_REGISTRYINDEX);

    lua_createtable(state, 0, 3);  // _ENV metatable, shared by all runs, locked
    lua_pushcfunction(state, env_index);
    lua_setfield(state, -2, "__index");
    lua_pushcfunction(state, env_newindex);
    lua_setfield(state, -2, "__newindex");
    lua_pushboolean(state, 0);
    lua_setfield(state, -2, "__metatable");
    sandbox->refs_.env_mt = luaL_ref(state, LUA_REGISTRYINDEX);

    lua_createtable(state, 0, 1);  // tags tables converted from JSON objects, locked
    lua_pushboolean(state, 0);
    lua_setfield(state, -2, "__metatable");
    sandbox->refs_.object_mt = luaL_ref(state, LUA_REGISTRYINDEX);

    lua_pushboolean(state, 0);
    sandbox->refs_.vars = luaL_ref(state, LUA_REGISTRYINDEX);
    lua_pushboolean(state, 0);
    sandbox->refs_.flags = luaL_ref(state, LUA_REGISTRYINDEX);

    sandbox->load_status_ = luaL_loadbufferx(state, source->data(), source->size(), "=script", "t");
    if (sandbox->load_status_ != LUA_OK) {
        return lua_error(state);
    }
    sandbox->refs_.chunk = luaL_ref(state, LUA_REGISTRYINDEX);
    return 0;
}

LuaSandbox::LuaSandbox(const ScriptLimits& limits) : limits_(limits) {
    memory_.limit = limits.max_memory;
    if (limits.max_instructions != 0 && limits.max_instructions < 1000) {
        hook_interval_ = static_cast<int>(limits.max_instructions);
    }
}

LuaSandbox::~LuaSandbox() {
    if (state_ != nullptr) {
        lua_close(state_);
    }
}

Result<std::unique_ptr<LuaSandbox>, ScriptError> LuaSandbox::create(std::string_view source,
                                                                    const ScriptLimits& limits) {
    std::unique_ptr<LuaSandbox> sandbox(new LuaSandbox(limits));
    const std::string memory_message =
        "script exceeded its memory limit of " + std::to_string(limits.max_memory) + " bytes";
    sandbox->state_ = lua_newstate(limited_alloc, &sandbox->memory_);
    if (sandbox->state_ == nullptr) {
        return ScriptError{memory_message + " while creating its Lua state"};
    }
    lua_State* state = sandbox->state_;
    *static_cast<LuaSandbox**>(lua_getextraspace(state)) = sandbox.get();
    lua_pushcfunction(state, setup_sandbox);
    lua_pushlightuserdata(state, &source);
    const int status = lua_pcall(state, 1, 0, 0);
    if (status != LUA_OK) {
        std::string message;
        if (sandbox->load_status_ == LUA_ERRSYNTAX) {
            message = "lua syntax error: " + error_text(state, -1);
        } else if (status == LUA_ERRMEM || sandbox->load_status_ == LUA_ERRMEM) {
            message = memory_message + " while loading the script";
        } else {
            message = "lua load error: " + error_text(state, -1);
        }
        return ScriptError{std::move(message)};
    }
    lua_settop(state, 0);
    return sandbox;
}

bool LuaSandbox::on_hook() {
    if (limit_hit_ != LimitHit::kNone) {
        return true;
    }
    instructions_ += static_cast<std::uint64_t>(hook_interval_);
    if (limits_.max_instructions != 0 && instructions_ > limits_.max_instructions) {
        limit_hit_ = LimitHit::kInstructions;
        return true;
    }
    if (limits_.timeout.count() != 0 && std::chrono::steady_clock::now() >= deadline_) {
        limit_hit_ = LimitHit::kTimeout;
        return true;
    }
    return false;
}

std::string LuaSandbox::limit_message() const {
    switch (limit_hit_) {
        case LimitHit::kInstructions:
            return "script exceeded " + std::to_string(limits_.max_instructions) + " instructions";
        case LimitHit::kTimeout:
            return "script timed out after " + std::to_string(limits_.timeout.count()) + " ms";
        case LimitHit::kNone:
            break;
    }
    return "script stopped";
}

Result<void, ScriptError> LuaSandbox::run(expr::VariableSink& vars, expr::Value* result) {
    lua_State* state = state_;
    busy_ = true;
    sink_ = &vars;
    instructions_ = 0;
    limit_hit_ = LimitHit::kNone;
    const std::uint64_t refusals_before = memory_.refusals;
    const bool watch = limits_.max_instructions != 0 || limits_.timeout.count() != 0;
    if (watch) {
        if (limits_.timeout.count() != 0) {
            deadline_ = std::chrono::steady_clock::now() + limits_.timeout;
        }
        lua_sethook(state, count_hook, LUA_MASKCOUNT, hook_interval_);  // also resets the count
    }

    // Everything after the pcall only uses Lua API calls that cannot raise (no allocation), so
    // C++ code with destructors is safe here.
    struct Finish {
        LuaSandbox& self;
        ~Finish() {
            lua_settop(self.state_, 0);
            lua_pushboolean(self.state_, 0);
            lua_rawseti(self.state_, LUA_REGISTRYINDEX, self.refs_.vars);
            lua_pushboolean(self.state_, 0);
            lua_rawseti(self.state_, LUA_REGISTRYINDEX, self.refs_.flags);
            self.sink_ = nullptr;
            self.busy_ = false;
        }
    } finish{*this};

    lua_pushcfunction(state, run_chunk);
    const int status = lua_pcall(state, 0, 1, 0);
    if (status != LUA_OK) {
        if (limit_hit_ != LimitHit::kNone) {
            reusable_ = false;
            return ScriptError{limit_message()};
        }
        if (status == LUA_ERRMEM || memory_.refusals != refusals_before) {
            reusable_ = false;
            return ScriptError{"script exceeded its memory limit of " +
                               std::to_string(limits_.max_memory) + " bytes"};
        }
        return ScriptError{error_text(state, -1)};
    }
    if (limit_hit_ != LimitHit::kNone) {  // the script swallowed the limit error
        reusable_ = false;
        return ScriptError{limit_message()};
    }

    const int returned = lua_gettop(state);
    ConversionError conversion;
    if (result != nullptr) {
        expr::Value value;
        if (!to_json(state, returned, refs_.object_mt, value, conversion)) {
            return ScriptError{"the return value" +
                               (conversion.path.empty() ? "" : " at '" + conversion.path + "'") +
                               " " + conversion.reason};
        }
        *result = std::move(value);
    }

    // Collect every write first so that a value that cannot be stored leaves the variables
    // untouched.
    struct Write {
        std::string name;
        expr::Value value;
        bool erase = false;  // the script assigned nil
    };
    std::vector<Write> writes;
    lua_rawgeti(state, LUA_REGISTRYINDEX, refs_.flags);
    const int flags = lua_gettop(state);
    lua_rawgeti(state, LUA_REGISTRYINDEX, refs_.vars);
    const int values = lua_gettop(state);
    lua_pushnil(state);
    while (lua_next(state, flags) != 0) {
        std::size_t size = 0;
        const char* data = lua_tolstring(state, -2, &size);  // flags keys are always strings
        std::string name(data, size);
        const lua_Integer flag = lua_tointeger(state, -1);
        lua_pop(state, 1);
        lua_pushvalue(state, -1);
        lua_rawget(state, values);
        if (flag == kReadTable) {
            const expr::Value* original = vars.find(name);
            if (original != nullptr && equals_json(state, -1, refs_.object_mt, *original)) {
                lua_pop(state, 1);
                continue;
            }
        }
        Write write{std::move(name), expr::Value(), false};
        if (lua_touserdata(state, -1) == nil_slot()) {
            write.erase = true;
        } else if (!to_json(state, -1, refs_.object_mt, write.value, conversion)) {
            return ScriptError{"variable '" + write.name + conversion.path + "' " +
                               conversion.reason};
        }
        lua_pop(state, 1);
        writes.push_back(std::move(write));
    }
    for (Write& write : writes) {
        if (write.erase) {
            vars.erase(write.name);
        } else {
            vars.set(write.name, std::move(write.value));
        }
    }
    return {};
}

}  // namespace pythmata::script::detail
