#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pythmata/common/result.hpp"
#include "pythmata/expr/statements.hpp"
#include "pythmata/script/script.hpp"

struct lua_State;

namespace pythmata::script::detail {

/// Byte accounting of one Lua state, used by its allocator.
struct LuaMemory {
    std::size_t used = 0;
    std::size_t limit = 0;       ///< 0 = unlimited
    std::uint64_t refusals = 0;  ///< allocations refused because of the limit (ever)
};

/// Which limit stopped the current run, if any.
enum class LimitHit { kNone, kInstructions, kTimeout };

/// One Lua 5.4 state holding one compiled chunk in a sandboxed environment. Not thread-safe:
/// a sandbox is used by one thread at a time (the pool in script.cpp keeps them thread_local).
/// The chunk is loaded once; each run gets fresh globals.
class LuaSandbox {
  public:
    /// Creates the state, opens the safe libraries and loads `source` as text (bytecode is
    /// refused). Fails with the syntax error ("lua syntax error: line 3: ...") or when the
    /// state does not fit `limits.max_memory`.
    [[nodiscard]] static Result<std::unique_ptr<LuaSandbox>, ScriptError> create(
        std::string_view source, const ScriptLimits& limits);

    LuaSandbox(const LuaSandbox&) = delete;
    LuaSandbox& operator=(const LuaSandbox&) = delete;
    ~LuaSandbox();

    /// Runs the chunk once against `vars`; on success writes the assigned and modified
    /// variables back and stores the returned value (null when none) in `*result`.
    [[nodiscard]] Result<void, ScriptError> run(expr::VariableSink& vars, expr::Value* result);

    /// False after a limit hit: the pool then discards the state instead of reusing it.
    [[nodiscard]] bool reusable() const { return reusable_; }
    /// True while run() executes (guards against re-entrant use of a pooled sandbox).
    [[nodiscard]] bool busy() const { return busy_; }
    /// Bytes currently allocated by the state.
    [[nodiscard]] std::size_t memory_used() const { return memory_.used; }

    // Internals shared with the Lua C callbacks in lua_sandbox.cpp.
    struct Refs {
        int chunk = 0;
        int safe = 0;
        int env_mt = 0;
        int object_mt = 0;
        int vars = 0;
        int flags = 0;
    };
    [[nodiscard]] const Refs& refs() const { return refs_; }
    [[nodiscard]] expr::VariableSink* sink() const { return sink_; }
    [[nodiscard]] LimitHit limit_hit() const { return limit_hit_; }
    /// Called by the count hook: true when a limit is (now) exceeded.
    [[nodiscard]] bool on_hook();
    /// The message of the limit hit, for the hook's error.
    [[nodiscard]] std::string limit_message() const;

  private:
    explicit LuaSandbox(const ScriptLimits& limits);

    lua_State* state_ = nullptr;
    ScriptLimits limits_;
    LuaMemory memory_;
    Refs refs_;
    int load_status_ = 0;
    expr::VariableSink* sink_ = nullptr;
    std::uint64_t instructions_ = 0;
    int hook_interval_ = 1000;
    std::chrono::steady_clock::time_point deadline_{};
    LimitHit limit_hit_ = LimitHit::kNone;
    bool reusable_ = true;
    bool busy_ = false;

    friend int setup_sandbox(lua_State* state);
};

}  // namespace pythmata::script::detail
