#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "pythmata/common/result.hpp"
#include "pythmata/expr/statements.hpp"

namespace pythmata::script {

/// Bounds of one Lua run. A zero disables that bound (not recommended outside tests).
struct ScriptLimits {
    std::uint64_t max_instructions = 10'000'000;  ///< Lua VM instructions per run
    std::size_t max_memory = 32u << 20;           ///< bytes a Lua state may allocate
    std::chrono::milliseconds timeout{1'000};  ///< wall-clock bound per run (checked by the hook)
};

/// Why a script did not compile or did not run to its end. The message is meant for a human
/// (incident text, API error detail): compile errors name the line, runtime errors carry the Lua
/// or expression message with its line, limit hits are named, e.g. "script exceeded 10000000
/// instructions", "script exceeded its memory limit of 33554432 bytes", "script timed out after
/// 1000 ms".
struct ScriptError {
    std::string
        message;  ///< e.g. "instruction limit exceeded", "attempt to index a nil value (line 3)"
};

/// A compiled script task body. Immutable, thread-safe to run concurrently (each run uses its
/// own sandbox state; implementations may pool states per thread).
///
/// Languages (scriptFormat, case-insensitive):
///  - "lua" / "lua5.4": Lua 5.4 in a sandbox (base functions without load/dofile/loadfile/
///    require/collectgarbage, plus string, table, math, utf8; no io, os, debug, package, or
///    bytecode). Variables are visible as globals; globals assigned by the script that are JSON-
///    representable become instance variables. `return x` sets the result variable if any.
///  - "python", "python3", "py", "" (empty defaults to python): an expr::StatementBlock.
/// Unknown formats are refused at compile time.
///
/// Lua details:
///  - Process variables are read lazily: the first read of a global that is not a builtin asks
///    `vars.find(name)` and converts the JSON value (objects and arrays become tables; JSON null
///    is `nil` at the top level and the global `null` inside tables). Builtins shadow variables
///    of the same name (`type`, `string`, ...); a script may still assign such a name.
///  - Globals the script assigns are written back with `vars.set` after a successful run, as are
///    variable tables the script modified in place (`order.total = 5`). Tables become JSON arrays
///    when their keys are exactly 1..n, else objects (integer keys become strings); an empty table
///    is an object when it came from a JSON object, else an array. Assigning `nil` to a global
///    removes the variable (`vars.erase`).
///    Functions, coroutines, NaN and infinities, and strings that are not UTF-8 cannot be stored:
///    the run fails naming the variable (use `local` for helpers: `local function f() end`).
///  - A failing run (runtime error or limit) writes no variables at all.
///  - `print` is accepted and discarded. `setmetatable` refuses `__gc`. Library tables are
///    read-only. Each run starts with fresh globals: nothing leaks from one run to the next.
///  - Limits: instructions and the timeout are checked every 1000 VM instructions by a count hook
///    (the timeout reads std::chrono::steady_clock there, the layer's only clock read); memory is
///    enforced by the state's allocator. A single C library call (e.g. one pathological
///    string.find pattern) is not interrupted by the hook.
///
/// Python details: the statements run against a buffer over `vars`, applied only when every
/// statement succeeded (a failing script writes nothing). The run's result is the value the
/// script assigned to the variable `result` (which is also stored as a variable), else null.
class Script {
  public:
    /// Compiles `source` for `format`; for Lua also builds a first sandbox (kept for reuse by the
    /// calling thread), so a source that cannot even load within `limits` fails here.
    [[nodiscard]] static Result<Script, ScriptError> compile(std::string_view format,
                                                             std::string_view source,
                                                             const ScriptLimits& limits);

    /// Runs the script; reads and writes variables through `vars`. `result` receives the script's
    /// return value (null when none). Errors (including limit hits) are values.
    [[nodiscard]] Result<void, ScriptError> run(expr::VariableSink& vars,
                                                const expr::EvalContext& ctx,
                                                expr::Value* result = nullptr) const;

    /// The normalized language: "lua" or "python".
    [[nodiscard]] const std::string& language() const;

    class Impl;

  private:
    std::shared_ptr<const Impl> impl_;
};

}  // namespace pythmata::script
